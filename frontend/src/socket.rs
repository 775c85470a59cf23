//! The one place that owns the room's WebSocket: opens it, feeds its frames to the editor,
//! sends what the editor queued, and reconnects when the policy says so.
//!
//! Every connection gets a generation number; handlers of a connection that was replaced
//! check it and do nothing, so a late `close` of an old socket can never tear down a new one.

use std::cell::RefCell;
use std::rc::Rc;

use kokuban_client::connection::Next;
use kokuban_client::{Command, Editor};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::browser::{after, now, online, window};

/// Client-initiated close: normal closure.
const NORMAL_CLOSE: u16 = 1000;

struct Inner {
    url: String,
    editor: Rc<RefCell<Editor>>,
    ws: Option<WebSocket>,
    generation: u64,
    stopped: bool,
    waiting_for_network: bool,
    // The handlers of the current socket; dropped (and detached) with it.
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    // Asked before each Hello: false when another tab owns this tab's key now.
    guard: Option<Rc<dyn Fn() -> bool>>,
}

/// A room's connection. Cloning shares it.
#[derive(Clone)]
pub struct Socket(Rc<RefCell<Inner>>);

impl Socket {
    /// Connects to `url` and keeps connected for the life of the page.
    pub fn start(url: String, editor: Rc<RefCell<Editor>>) -> Socket {
        let socket = Socket(Rc::new(RefCell::new(Inner {
            url,
            editor,
            ws: None,
            generation: 0,
            stopped: false,
            waiting_for_network: false,
            handlers: Vec::new(),
            guard: None,
        })));
        socket.watch_network();
        socket.connect();
        socket
    }

    /// Sends frames on the open socket (the editor only hands out frames once welcomed).
    pub fn send(&self, frames: Vec<Vec<u8>>) {
        if frames.is_empty() {
            return;
        }
        let inner = self.0.borrow();
        let Some(ws) = inner
            .ws
            .as_ref()
            .filter(|ws| ws.ready_state() == WebSocket::OPEN)
        else {
            return;
        };
        for f in frames {
            if ws.send_with_u8_array(&f).is_err() {
                break;
            }
        }
    }

    /// Sets what is asked before each Hello: a tab whose outbox another tab took over must not
    /// say Hello under its key (the other tab sends its ops now).
    pub fn guard(&self, ours: impl Fn() -> bool + 'static) {
        self.0.borrow_mut().guard = Some(Rc::new(ours));
    }

    /// Closes the connection for good; the editor has been told why.
    pub fn stop(&self) {
        let generation = {
            let mut inner = self.0.borrow_mut();
            if inner.stopped {
                return;
            }
            inner.stopped = true;
            inner.generation
        };
        self.closed(generation, NORMAL_CLOSE);
    }

    /// Connects again now after the connection stopped for good (this tab was given new
    /// links); does nothing while the connection is alive or trying.
    pub fn resume(&self) {
        {
            let mut inner = self.0.borrow_mut();
            if !inner.stopped {
                return;
            }
            inner.stopped = false;
        }
        self.connect();
    }

    /// Closes the socket as if the network had failed (tests and debugging).
    pub fn drop_connection(&self) {
        let ws = self.0.borrow().ws.clone();
        if let Some(ws) = ws {
            let _ = ws.close_with_code(4000);
        }
    }

    fn connect(&self) {
        let mut inner = self.0.borrow_mut();
        if inner.stopped {
            return;
        }
        inner.generation += 1;
        let generation = inner.generation;
        inner.waiting_for_network = false;
        if let Some(old) = inner.ws.take() {
            detach(&old);
            let _ = old.close_with_code(NORMAL_CLOSE);
        }
        inner.handlers.clear();
        let ws = match WebSocket::new(&inner.url) {
            Ok(ws) => ws,
            Err(_) => {
                drop(inner);
                self.closed(generation, 1006);
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);

        let me = self.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| me.opened(generation));
        let me = self.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            if let Ok(e) = e.dyn_into::<MessageEvent>() {
                me.message(generation, e);
            }
        });
        let me = self.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let code = e.dyn_into::<CloseEvent>().map_or(1006, |c| c.code());
            me.closed(generation, code);
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        inner.handlers = vec![on_open, on_message, on_close];
        inner.ws = Some(ws);
    }

    fn opened(&self, generation: u64) {
        let (editor, guard) = {
            let inner = self.0.borrow();
            if inner.generation != generation {
                return;
            }
            (inner.editor.clone(), inner.guard.clone())
        };
        if guard.is_some_and(|ours| !ours()) {
            editor.borrow_mut().superseded();
            self.stop();
            return;
        }
        let inner = self.0.borrow();
        let hello = inner.editor.borrow_mut().hello();
        if let (Some(ws), Some(hello)) = (inner.ws.as_ref(), hello) {
            let _ = ws.send_with_u8_array(&hello);
        }
    }

    fn message(&self, generation: u64, e: MessageEvent) {
        let command = {
            let inner = self.0.borrow();
            if inner.generation != generation {
                return;
            }
            let bytes = js_sys::Uint8Array::new(&e.data()).to_vec();
            inner.editor.borrow_mut().receive(&bytes, now())
        };
        match command {
            None => {}
            Some(Command::Reconnect) => self.closed(generation, NORMAL_CLOSE),
            Some(Command::Close) => {
                self.0.borrow_mut().stopped = true;
                self.closed(generation, NORMAL_CLOSE);
            }
        }
    }

    fn closed(&self, generation: u64, code: u16) {
        let next = {
            let mut inner = self.0.borrow_mut();
            if inner.generation != generation {
                return;
            }
            // Whatever happens next, this connection is over.
            inner.generation += 1;
            if let Some(ws) = inner.ws.take() {
                detach(&ws);
                let _ = ws.close_with_code(NORMAL_CLOSE);
            }
            let next = inner
                .editor
                .borrow_mut()
                .disconnected(code, online(), now());
            if next == Next::WaitForNetwork {
                inner.waiting_for_network = true;
            }
            if next == Next::Stop {
                inner.stopped = true;
            }
            next
        };
        if let Next::RetryIn(ms) = next {
            let me = self.clone();
            let generation = self.0.borrow().generation;
            after(ms, move || {
                // Unless something else (the network coming back) connected meanwhile.
                if me.0.borrow().generation == generation {
                    me.connect();
                }
            });
        }
    }

    fn watch_network(&self) {
        let me = self.clone();
        let on_online = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            // A socket that outlived a short outage carries on (`Stay`): reconnecting would
            // only cost a resume, and its status is "Connected" again.
            let next = me.0.borrow().editor.borrow_mut().online();
            let idle = {
                let inner = me.0.borrow();
                inner.ws.is_none() || inner.waiting_for_network
            };
            if matches!(next, Next::RetryIn(_)) && idle {
                me.connect();
            }
        });
        let me = self.clone();
        let on_offline = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            me.0.borrow().editor.borrow_mut().offline();
        });
        let w = window();
        let _ = w.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        let _ = w.add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref());
        // The page lives as long as the room: these listeners are never removed.
        on_online.forget();
        on_offline.forget();
    }
}

fn detach(ws: &WebSocket) {
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onclose(None);
}
