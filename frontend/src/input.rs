//! Browser input → editor calls: pointer events (with their coalesced samples), the wheel,
//! the keyboard and the clipboard. All decisions are the editor's (and the panels'); this only
//! translates.

use std::cell::RefCell;
use std::rc::Rc;

use kokuban_client::clipboard::CLIP_MIME;
use kokuban_client::geom::Pt;
use kokuban_client::keymap::shortcut;
use kokuban_client::navigate::wheel_pixels;
use kokuban_client::panels::Panels;
use kokuban_client::{Editor, Input, PointerKind};
use leptos::prelude::{RwSignal, Update, WithUntracked};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AddEventListenerOptions, ClipboardEvent, DragEvent, HtmlCanvasElement, HtmlElement,
    KeyboardEvent, PointerEvent, WheelEvent,
};

use crate::browser::{document, window};

/// What becomes of a picture pasted or dropped (at a point on screen, for a drop).
pub type AddImage = Rc<dyn Fn(web_sys::Blob, Option<Pt>)>;

/// Listens on the board canvas, the window and the document for as long as the page lives.
pub fn attach(
    canvas: &HtmlCanvasElement,
    editor: Rc<RefCell<Editor>>,
    panels: RwSignal<Panels>,
    add_image: AddImage,
) {
    attach_drop(canvas, &editor, add_image.clone());
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
            if in_text_field(&e) {
                return;
            }
            let ctrl = e.ctrl_key() || e.meta_key();
            let Some(s) = shortcut(&e.key(), ctrl, e.shift_key(), e.alt_key()) else {
                return;
            };
            // The sheet (`?`) and Esc over an open popover are the page's.
            if panels.with_untracked(|p| p.takes(s)) {
                panels.update(|p| {
                    p.shortcut(s);
                });
                e.prevent_default();
                return;
            }
            if editor.borrow_mut().perform(s) {
                e.prevent_default();
            }
        }
    });
    listen(&win, "keyup", {
        let editor = editor.clone();
        move |e: KeyboardEvent| editor.borrow_mut().key_up(&e.key())
    });
    attach_clipboard(editor, add_image);
}

/// Pictures dropped on the board from the desktop or another page are added where they fall.
fn attach_drop(canvas: &HtmlCanvasElement, editor: &Rc<RefCell<Editor>>, add_image: AddImage) {
    listen(canvas, "dragover", {
        let editor = editor.clone();
        move |e: DragEvent| {
            // Cancelling it is what lets the board take a drop.
            if editor.borrow().can_edit() {
                e.prevent_default();
            }
        }
    });
    let target = canvas.clone();
    let editor = editor.clone();
    listen(canvas, "drop", move |e: DragEvent| {
        e.prevent_default();
        if !editor.borrow().can_edit() {
            return;
        }
        let rect = target.get_bounding_client_rect();
        let at = Pt::new(
            f64::from(e.client_x()) - rect.left(),
            f64::from(e.client_y()) - rect.top(),
        );
        let files = e.data_transfer().and_then(|d| d.files());
        for file in image_files(files) {
            add_image(file, Some(at));
        }
    });
}

/// The pictures among `files` (other files are not for a board).
fn image_files(files: Option<web_sys::FileList>) -> Vec<web_sys::Blob> {
    let Some(files) = files else {
        return Vec::new();
    };
    (0..files.length())
        .filter_map(|i| files.get(i))
        .filter(|f| f.type_().starts_with("image/"))
        .map(web_sys::Blob::from)
        .collect()
}

/// Copy, cut and paste of drawings through the system clipboard. Browsers let a page touch
/// the clipboard only in these events (which Ctrl/⌘+C, X and V fire), and always in them, in
/// any context: no permission prompt, no secure origin needed. Text fields keep their own.
fn attach_clipboard(editor: Rc<RefCell<Editor>>, add_image: AddImage) {
    let doc: web_sys::EventTarget = document().into();
    // With no text selected, a browser only fires `copy` and `cut` when the page asked for
    // them by cancelling `before…`: it does so while drawings are selected.
    for before in ["beforecopy", "beforecut"] {
        listen(&doc, before, {
            let editor = editor.clone();
            move |e: web_sys::Event| {
                if !in_text_field(&e) && editor.borrow().has_selection() {
                    e.prevent_default();
                }
            }
        });
    }
    listen(&doc, "beforepaste", {
        let editor = editor.clone();
        move |e: web_sys::Event| {
            if !in_text_field(&e) && editor.borrow().can_edit() {
                e.prevent_default();
            }
        }
    });
    for cut in [false, true] {
        listen(&doc, if cut { "cut" } else { "copy" }, {
            let editor = editor.clone();
            move |e: ClipboardEvent| {
                // Text the user selected on the page (the shortcut sheet, say) is theirs to copy.
                if in_text_field(&e) || text_selected() {
                    return;
                }
                let copied = if cut {
                    editor.borrow_mut().cut()
                } else {
                    editor.borrow().copy()
                };
                if let (Some(text), Some(data)) = (copied, e.clipboard_data()) {
                    // Our own type for Kokuban, and the same JSON as text for everyone else.
                    let _ = data.set_data(CLIP_MIME, &text);
                    let _ = data.set_data("text/plain", &text);
                    e.prevent_default();
                }
            }
        });
    }
    listen(&doc, "paste", move |e: ClipboardEvent| {
        if in_text_field(&e) {
            return;
        }
        let Some(data) = e.clipboard_data() else {
            return;
        };
        // A copied picture (a screenshot, an image copied in another page) comes as a file.
        let pictures = image_files(data.files());
        if !pictures.is_empty() {
            if editor.borrow().can_edit() {
                e.prevent_default();
                for picture in pictures {
                    add_image(picture, None);
                }
            }
            return;
        }
        let text = data
            .get_data(CLIP_MIME)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| data.get_data("text/plain").ok())
            .unwrap_or_default();
        if editor.borrow_mut().paste(&text) {
            e.prevent_default();
        }
    });
}

/// Whether some text of the page is selected.
fn text_selected() -> bool {
    window()
        .get_selection()
        .ok()
        .flatten()
        .is_some_and(|s| !s.is_collapsed())
}

/// Whether an event happened in a text field (which handles keys and the clipboard itself).
fn in_text_field(e: &web_sys::Event) -> bool {
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
