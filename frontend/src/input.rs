//! Browser input → editor calls: pointer events (with their coalesced samples), the wheel,
//! and the keyboard. All decisions are the editor's; this only translates.

use std::cell::RefCell;
use std::rc::Rc;

use kokuban_client::geom::Pt;
use kokuban_client::navigate::wheel_pixels;
use kokuban_client::{Editor, Input, PointerKind};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AddEventListenerOptions, HtmlCanvasElement, HtmlElement, KeyboardEvent, PointerEvent,
    WheelEvent,
};

use crate::browser::{document, window};

/// Listens on the board canvas and the window for as long as the page lives.
pub fn attach(canvas: &HtmlCanvasElement, editor: Rc<RefCell<Editor>>) {
    let target = canvas.clone();
    listen(canvas, "pointerdown", {
        let editor = editor.clone();
        move |e: PointerEvent| {
            e.prevent_default();
            let _ = target.set_pointer_capture(e.pointer_id());
            // Drawing takes the keyboard back from any open text field.
            if let Some(active) = document().active_element()
                && let Ok(el) = active.dyn_into::<HtmlElement>()
            {
                let _ = el.blur();
            }
            editor.borrow_mut().pointer_down(input(&e, e.button()));
        }
    });
    listen(canvas, "pointermove", {
        let editor = editor.clone();
        move |e: PointerEvent| {
            // Every sample the hardware produced since the last event, so fast strokes keep
            // their shape (browsers deliver one pointermove per frame).
            let coalesced = e.get_coalesced_events();
            let mut samples: Vec<Input> = coalesced
                .iter()
                .filter_map(|c| c.dyn_into::<PointerEvent>().ok())
                .map(|c| input(&c, 0))
                .collect();
            if samples.is_empty() {
                samples.push(input(&e, 0));
            }
            editor.borrow_mut().pointer_move(&samples);
        }
    });
    listen(canvas, "pointerup", {
        let editor = editor.clone();
        move |e: PointerEvent| editor.borrow_mut().pointer_up(input(&e, e.button()))
    });
    listen(canvas, "pointercancel", {
        let editor = editor.clone();
        move |e: PointerEvent| editor.borrow_mut().pointer_cancel(e.pointer_id())
    });
    listen(canvas, "pointerleave", {
        let editor = editor.clone();
        move |e: PointerEvent| {
            if e.pointer_type() != "touch" {
                editor.borrow_mut().pointer_leave();
            }
        }
    });
    listen(canvas, "wheel", {
        let editor = editor.clone();
        move |e: WheelEvent| {
            e.prevent_default();
            // Line and page deltas (some mice) become pixels.
            let page = window()
                .inner_height()
                .ok()
                .and_then(|h| h.as_f64())
                .unwrap_or(800.0);
            let px = |d| wheel_pixels(d, e.delta_mode(), page);
            editor.borrow_mut().wheel(
                Pt::new(f64::from(e.client_x()), f64::from(e.client_y())),
                px(e.delta_x()),
                px(e.delta_y()),
                e.ctrl_key() || e.meta_key(),
                e.shift_key(),
            );
        }
    });
    listen(canvas, "contextmenu", |e: web_sys::Event| {
        e.prevent_default()
    });

    let win = window();
    listen(&win, "keydown", {
        let editor = editor.clone();
        move |e: KeyboardEvent| {
            if typing(&e) {
                return;
            }
            let handled =
                editor
                    .borrow_mut()
                    .key_down(&e.key(), e.ctrl_key() || e.meta_key(), e.shift_key());
            if handled {
                e.prevent_default();
            }
        }
    });
    listen(&win, "keyup", move |e: KeyboardEvent| {
        editor.borrow_mut().key_up(&e.key());
    });
}

/// Whether a key event belongs to a text field.
fn typing(e: &KeyboardEvent) -> bool {
    e.target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA"))
}

fn input(e: &PointerEvent, button: i16) -> Input {
    let kind = match e.pointer_type().as_str() {
        "pen" => PointerKind::Pen,
        "touch" => PointerKind::Touch,
        _ => PointerKind::Mouse,
    };
    Input {
        id: e.pointer_id(),
        screen: Pt::new(f64::from(e.client_x()), f64::from(e.client_y())),
        pressure: f64::from(e.pressure()),
        kind,
        button,
        time_ms: e.time_stamp(),
        shift: e.shift_key(),
    }
}

fn listen<E: JsCast + 'static>(
    target: &web_sys::EventTarget,
    event: &str,
    mut f: impl FnMut(E) + 'static,
) {
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        if let Ok(e) = e.dyn_into::<E>() {
            f(e);
        }
    });
    let options = AddEventListenerOptions::new();
    // Not passive: the canvas cancels wheel scrolling and touch gestures itself.
    options.set_passive(false);
    let _ = target.add_event_listener_with_callback_and_add_event_listener_options(
        event,
        cb.as_ref().unchecked_ref(),
        &options,
    );
    // Listeners live as long as the page.
    cb.forget();
}
