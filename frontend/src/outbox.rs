//! Keeps this tab's outbox in localStorage, by the rules of `kokuban_client::outbox`: adopts a
//! stored one when the room opens, writes it when it changes (before any op goes out under a
//! new number), beats its heartbeat while the tab lives, hands it over when the page goes
//! away, and asks before a tab with unsaved changes is closed. This module only reads and
//! writes storage and wires page events; every decision is the client crate's.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kokuban_client::Editor;
use kokuban_client::outbox::{self, HEARTBEAT_MS, Keeper, Outbox, Superseded, Write};
use kokuban_protocol::{ClientKey, RoomId};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::Storage;

use crate::browser::{document, random_seed, window};
use crate::socket::Socket;

/// What the user is told when the outbox cannot be written.
const NOT_KEPT: &str = "This browser does not let the board keep your unsaved changes: keep the tab open until they are sent.";

fn storage() -> Option<Storage> {
    window().local_storage().ok().flatten()
}

fn wall() -> f64 {
    js_sys::Date::now()
}

/// A fresh client key: 16 bytes from the browser's secure random source.
pub fn fresh_key() -> ClientKey {
    let mut key = [0u8; 16];
    key.copy_from_slice(&random_seed()[..16]);
    ClientKey(key)
}

/// The outbox this tab starts `room` with (a stored one no live tab owns, claimed, or a
/// fresh one) and the keeper that writes it from now on.
pub fn adopt(room: &RoomId) -> (Outbox, Keeper) {
    let tab: String = random_seed()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let prefix = outbox::prefix(room);
    let mut entries = Vec::new();
    if let Some(s) = storage() {
        for i in 0..s.length().unwrap_or(0) {
            if let Ok(Some(name)) = s.key(i)
                && name.starts_with(&prefix)
                && let Ok(Some(value)) = s.get_item(&name)
            {
                entries.push((name, value));
            }
        }
    }
    // The tab's own storage survives a reload, not the tab: a reloaded tab carries on with the
    // outbox it had, rather than another one waiting.
    let session = window().session_storage().ok().flatten();
    let mine = format!("{prefix}tab");
    let preferred = session
        .as_ref()
        .and_then(|s| s.get_item(&mine).ok().flatten());
    let mut a = outbox::adopt(
        room,
        &entries,
        preferred.as_deref(),
        &tab,
        wall(),
        fresh_key(),
    );
    if a.adopted {
        // Two tabs opened at once may both pick it: the last claim wins, and the other, reading
        // it back, starts with a fresh key instead.
        let claimed = apply(&a.keeper.claim(&a.outbox, wall()));
        if !claimed || !a.keeper.owns(read(a.keeper.name()).as_deref()) {
            a = outbox::adopt(room, &[], None, &tab, wall(), fresh_key());
        }
    }
    if let Some(s) = session {
        let _ = s.set_item(&mine, a.keeper.name());
    }
    (a.outbox, a.keeper)
}

/// The entry `name` as storage holds it now.
fn read(name: &str) -> Option<String> {
    storage()?.get_item(name).ok().flatten()
}

/// Performs a write; false when storage refused it (disabled, or full).
fn apply(write: &Write) -> bool {
    let Some(s) = storage() else { return false };
    match write {
        Write::Put(name, value) => s.set_item(name, value).is_ok(),
        Write::Remove(name) => s.remove_item(name).is_ok(),
    }
}

/// The outbox of this tab's room, kept.
pub struct Kept {
    keeper: RefCell<Keeper>,
    editor: Rc<RefCell<Editor>>,
    socket: Option<Socket>,
    /// The user was told the outbox cannot be kept (once).
    warned: Cell<bool>,
    /// Another tab took the outbox over: this one has stopped.
    superseded: Cell<bool>,
}

impl Kept {
    /// Keeps the outbox of `editor` with `keeper` for the life of the page.
    pub fn start(keeper: Keeper, editor: Rc<RefCell<Editor>>, socket: Option<Socket>) -> Rc<Kept> {
        let kept = Rc::new(Kept {
            keeper: RefCell::new(keeper),
            editor,
            socket,
            warned: Cell::new(false),
            superseded: Cell::new(false),
        });
        kept.listen();
        if let Some(s) = &kept.socket {
            let me = kept.clone();
            s.guard(move || me.owned());
        }
        kept
    }

    /// Writes the outbox if it is due (at once with `force`), called with the editor after
    /// it took the frame's ops and before they are sent. False when another tab owns the
    /// outbox now: the editor has stopped, nothing may be sent, and [`Kept::stop`] must
    /// follow once the editor is released.
    pub fn persist(&self, editor: &mut Editor, force: bool) -> bool {
        if self.superseded.get() {
            return false;
        }
        let due = self
            .keeper
            .borrow_mut()
            .due(editor.session(), wall(), force, read);
        match due {
            Ok(None) => true,
            Ok(Some(write)) => {
                if !apply(&write) && !self.warned.replace(true) {
                    editor.notify(NOT_KEPT);
                }
                true
            }
            Err(Superseded) => {
                self.superseded.set(true);
                editor.superseded();
                false
            }
        }
    }

    /// Closes the connection of a tab whose outbox another tab took over.
    pub fn stop(&self) {
        if let Some(s) = &self.socket {
            s.stop();
        }
    }

    /// Whether this tab still owns its outbox, as storage holds it now.
    fn owned(&self) -> bool {
        let keeper = self.keeper.borrow();
        keeper.owns(read(keeper.name()).as_deref())
    }

    fn tick(&self, force: bool) {
        let ok = self.persist(&mut self.editor.borrow_mut(), force);
        if !ok {
            self.stop();
        }
    }

    fn listen(self: &Rc<Self>) {
        let w = window();
        // The heartbeat runs on a timer, not on animation frames: a hidden tab gets no frames
        // but must still say it is alive.
        let me = self.clone();
        let beat = Closure::<dyn FnMut()>::new(move || me.tick(false));
        let _ = w.set_interval_with_callback_and_timeout_and_arguments_0(
            beat.as_ref().unchecked_ref(),
            (HEARTBEAT_MS / 2.0) as i32,
        );
        // A tab being hidden may never run again (mobile browsers discard them): write now.
        let me = self.clone();
        let hidden = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if document().hidden() {
                me.tick(true);
            }
        });
        let _ = document()
            .add_event_listener_with_callback("visibilitychange", hidden.as_ref().unchecked_ref());
        // The page goes away (closed, reloaded, navigated): the next tab to open the room takes
        // the outbox over at once instead of waiting for the heartbeat to go stale.
        let me = self.clone();
        let gone = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if me.superseded.get() {
                return;
            }
            let editor = me.editor.borrow();
            let release = me
                .keeper
                .borrow_mut()
                .release(editor.session(), wall(), read);
            if let Some(write) = release {
                apply(&write);
            }
        });
        let _ = w.add_event_listener_with_callback("pagehide", gone.as_ref().unchecked_ref());
        // Closing a tab with changes the room has not confirmed asks first.
        let me = self.clone();
        let leaving = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let unsaved = me.editor.borrow().session().outstanding() > 0;
            if unsaved && let Ok(e) = e.dyn_into::<web_sys::Event>() {
                e.prevent_default();
                // Older browsers ask only when `returnValue` is set.
                let _ = js_sys::Reflect::set(&e, &"returnValue".into(), &"".into());
            }
        });
        let _ =
            w.add_event_listener_with_callback("beforeunload", leaving.as_ref().unchecked_ref());
        // The page lives as long as the room: these are never removed.
        beat.forget();
        hidden.forget();
        gone.forget();
        leaving.forget();
    }
}
