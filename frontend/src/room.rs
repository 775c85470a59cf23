//! The room page: the board canvases and the controls around them. Components only read the
//! [`Ui`] snapshot and call the engine; all logic lives in the client crate.

use std::rc::Rc;

use kokuban_client::link::RoomLink;
use kokuban_client::prefs::{MEMBER_COLORS, PALETTE, Size, hex};
use kokuban_client::tools::ToolKind;
use leptos::{ev, html, prelude::*};
use wasm_bindgen::JsCast;

use crate::engine::{Engine, Ui};

type EngineRef = StoredValue<Rc<Engine>, LocalStorage>;

/// An icon from `assets/icons`, drawn in the current text colour.
pub fn icon(name: &'static str) -> impl IntoView {
    view! { <span class="icon" aria-hidden="true" style=format!("--icon:url(/icons/{name}.svg)")></span> }
}

/// The room at `link`.
#[component]
pub fn Room(link: RoomLink) -> impl IntoView {
    let engine = StoredValue::new_local(Engine::start(link));
    let ui = engine.with_value(|e| e.ui());
    let board = NodeRef::<html::Canvas>::new();
    let overlay = NodeRef::<html::Canvas>::new();
    Effect::new(move |_| {
        if let (Some(b), Some(o)) = (board.get(), overlay.get()) {
            engine.with_value(|e| e.attach(b, o));
        }
    });
    // The theme colours the whole page, not only the room.
    Effect::new(move |_| {
        let theme = ui.with(|u| u.theme.name());
        if let Some(root) = crate::browser::document().document_element() {
            let _ = root.set_attribute("data-theme", theme);
        }
    });
    let can_edit = move || ui.with(|u| u.can_edit);

    view! {
        <canvas id="board" node_ref=board></canvas>
        <canvas id="overlay" node_ref=overlay></canvas>
        <header class="bar corner top-left">
            <a class="logo" href="/" title="Kokuban — new board">
                <img src="/icons/kokuban.svg" alt="" width="24" height="24"/>
                <span>"Kokuban"</span>
            </a>
            <Status ui=ui/>
        </header>
        <Show
            when=can_edit
            fallback=|| view! { <div class="bar badge">{icon("eye")}"View only"</div> }
        >
            <Toolbar engine=engine ui=ui/>
        </Show>
        <div class="bar corner top-right">
            <Presence engine=engine ui=ui/>
            <Share engine=engine/>
            <Export engine=engine ui=ui/>
            <button
                class="btn"
                title="Light / dark theme"
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.toggle_theme()))
            >
                {move || if ui.with(|u| u.theme.name() == "dark") { icon("sun") } else { icon("moon") }}
            </button>
        </div>
        <Zoom engine=engine ui=ui/>
        <Show when=move || ui.with(|u| u.status == "closed")>
            <div class="banner" role="alert">
                <span>{move || ui.with(|u| u.status_label.clone())}</span>
                <button class="primary" on:click=|_| { let _ = crate::browser::window().location().reload(); }>
                    "Reload"
                </button>
            </div>
        </Show>
        <Toasts engine=engine/>
        <TextEditor engine=engine/>
    }
}

#[component]
fn Status(ui: RwSignal<Ui>) -> impl IntoView {
    view! {
        <div id="status" class="status" data-status=move || ui.with(|u| u.status) role="status">
            <span class="dot"></span>
            <span>{move || ui.with(|u| u.status_label.clone())}</span>
        </div>
    }
}

#[component]
fn Toolbar(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let tools = ToolKind::ALL.map(|k| {
        let title = format!("{} — {}", k.label(), k.shortcut().to_ascii_uppercase());
        view! {
            <button
                class="btn tool"
                class:active=move || ui.with(|u| u.tool == k)
                data-tool=k.name()
                title=title
                aria-label=k.label()
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_tool(k)))
            >
                {icon(k.name())}
            </button>
        }
    });
    let swatches = PALETTE.map(|(name, color)| {
        view! {
            <button
                class="swatch"
                class:active=move || ui.with(|u| u.ink == color)
                title=name
                aria-label=name
                style=format!("--swatch:{}", hex(color))
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_ink(color)))
            ></button>
        }
    });
    let sizes = Size::ALL.map(|size| {
        let dot = match size {
            Size::S => 4,
            Size::M => 7,
            Size::L => 11,
            Size::Xl => 15,
        };
        view! {
            <button
                class="btn size"
                class:active=move || ui.with(|u| u.size == size)
                title=format!("Size {}", size.name().to_ascii_uppercase())
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.set_size(size)))
            >
                <span class="size-dot" style=format!("width:{dot}px;height:{dot}px")></span>
            </button>
        }
    });
    view! {
        <nav class="bar toolbar" aria-label="Tools">
            <div class="group">{tools}</div>
            <div class="sep"></div>
            <div class="group">{swatches}</div>
            <div class="sep"></div>
            <div class="group">{sizes}</div>
            <div class="sep"></div>
            <div class="group">
                <button
                    class="btn"
                    title="Undo — Ctrl+Z"
                    disabled=move || !ui.with(|u| u.undo.0)
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.undo()))
                >
                    {icon("undo")}
                </button>
                <button
                    class="btn"
                    title="Redo — Ctrl+Shift+Z"
                    disabled=move || !ui.with(|u| u.undo.1)
                    on:click=move |_| engine.with_value(|e| e.act(|ed| ed.redo()))
                >
                    {icon("redo")}
                </button>
            </div>
        </nav>
    }
}

#[component]
fn Presence(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let editing = RwSignal::new(false);
    view! {
        <div class="presence">
            <For
                each=move || ui.with(|u| u.members.clone())
                key=|m| (m.id, m.name.clone(), m.color.clone())
                children=move |m| {
                    let me = m.me;
                    let title = if me { format!("{} (you) — click to change", m.name) } else { m.name.clone() };
                    view! {
                        <button
                            class="avatar"
                            class:me=me
                            class:viewer=m.viewer
                            title=title
                            style=format!("--avatar:{}", m.color)
                            on:click=move |_| if me { editing.update(|v| *v = !*v) }
                        >
                            {m.initials.clone()}
                        </button>
                    }
                }
            />
            <Show when=move || editing.get()>
                <Profile engine=engine ui=ui editing=editing/>
            </Show>
        </div>
    }
}

#[component]
fn Profile(engine: EngineRef, ui: RwSignal<Ui>, editing: RwSignal<bool>) -> impl IntoView {
    let name = ui.with_untracked(|u| u.name.clone());
    let set_name = move |ev: ev::Event| {
        let value = event_target_value(&ev);
        let color = ui.with_untracked(|u| u.color);
        engine.with_value(|e| e.act(|ed| ed.set_profile(&value, color)));
    };
    let colors = MEMBER_COLORS.map(|(color_name, c)| {
        view! {
            <button
                class="swatch"
                title=format!("Your colour: {color_name}")
                class:active=move || ui.with(|u| u.color == c)
                style=format!("--swatch:{}", hex(c))
                on:click=move |_| {
                    let name = ui.with_untracked(|u| u.name.clone());
                    engine.with_value(|e| e.act(|ed| ed.set_profile(&name, c)));
                }
            ></button>
        }
    });
    view! {
        <div class="popover profile">
            <label>
                "Your name"
                <input
                    type="text"
                    maxlength="48"
                    value=name
                    on:change=set_name
                    on:keydown=move |ev: ev::KeyboardEvent| if ev.key() == "Enter" { editing.set(false) }
                />
            </label>
            <div class="group">{colors}</div>
        </div>
    }
}

#[component]
fn Share(engine: EngineRef) -> impl IntoView {
    let (edit_url, view_url) = engine.with_value(|e| {
        let ed = e.editor.borrow();
        let link = ed.link();
        (
            link.and_then(|l| l.edit_url()),
            link.and_then(|l| l.view_url()),
        )
    });
    let edit = edit_url.map(|url| {
        view! {
            <button
                class="btn"
                title="Copy the edit link: whoever opens it can draw"
                on:click=move |_| engine.with_value(|e| e.copy_link(url.clone(), "Edit link"))
            >
                {icon("link")}
            </button>
        }
    });
    let view_button = match view_url {
        Some(url) => view! {
            <button
                class="btn"
                title="Copy the view-only link: whoever opens it can watch, not draw"
                on:click=move |_| engine.with_value(|e| e.copy_link(url.clone(), "View-only link"))
            >
                {icon("eye")}
            </button>
        }
        .into_any(),
        None => view! {
            <button class="btn" disabled=true title="The view-only link is only known to the board's original link">
                {icon("eye")}
            </button>
        }
        .into_any(),
    };
    view! { <div class="group share">{edit}{view_button}</div> }
}

#[component]
fn Export(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let clear = move |_| {
        let ok = crate::browser::window()
            .confirm_with_message("Clear the board for everyone? This cannot be undone.")
            .unwrap_or(false);
        if ok {
            engine.with_value(|e| e.act(|ed| ed.clear_board()));
        }
    };
    view! {
        <details class="menu">
            <summary class="btn" title="Export">{icon("download")}</summary>
            <div class="popover">
                <button on:click=move |_| engine.with_value(|e| e.export_png(true))>"PNG — whole drawing"</button>
                <button on:click=move |_| engine.with_value(|e| e.export_png(false))>"PNG — current view"</button>
                <button on:click=move |_| engine.with_value(|e| e.export_svg(true))>"SVG — whole drawing"</button>
                <button on:click=move |_| engine.with_value(|e| e.export_svg(false))>"SVG — current view"</button>
                <Show when=move || ui.with(|u| u.can_edit && u.has_content)>
                    <hr/>
                    <button class="danger" on:click=clear>{icon("trash")}"Clear board"</button>
                </Show>
            </div>
        </details>
    }
}

#[component]
fn Zoom(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    view! {
        <div class="bar corner bottom-left zoom">
            <button class="btn" title="Zoom out — −" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_out()))>
                {icon("zoom-out")}
            </button>
            <button class="btn pct" title="Reset zoom — 0" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.reset_zoom()))>
                {move || format!("{}%", ui.with(|u| u.zoom))}
            </button>
            <button class="btn" title="Zoom in — +" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_in()))>
                {icon("zoom-in")}
            </button>
            <button class="btn" title="Zoom to fit — F" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_to_fit()))>
                {icon("fit")}
            </button>
        </div>
    }
}

#[component]
fn Toasts(engine: EngineRef) -> impl IntoView {
    let toasts = engine.with_value(|e| e.toasts());
    view! {
        <div class="toasts" aria-live="polite">
            <For
                each=move || toasts.get()
                key=|t| t.0
                children=|t| view! { <div class="toast">{t.1}</div> }
            />
        </div>
    }
}

#[component]
fn TextEditor(engine: EngineRef) -> impl IntoView {
    let text = engine.with_value(|e| e.text());
    let area = NodeRef::<html::Textarea>::new();
    Effect::new(move |_| {
        if text.with(Option::is_some)
            && let Some(a) = area.get()
        {
            let _ = a.focus();
            // An edited text opens with the caret at its end, the box as tall as its lines.
            let end = a.value().encode_utf16().count() as u32;
            let _ = a.set_selection_range(end, end);
            grow(&a);
        }
    });
    let commit = move |value: Option<String>| engine.with_value(|e| e.commit_text(value));
    view! {
        {move || text.get().map(|edit| {
            let style = format!(
                "left:{}px;top:{}px;font-size:{}px;color:{}",
                edit.screen.x,
                edit.screen.y,
                edit.font_px,
                hex(edit.color)
            );
            view! {
                <textarea
                    class="text-editor"
                    node_ref=area
                    rows="1"
                    prop:value=edit.text.clone()
                    placeholder="Type, then Enter"
                    style=style
                    on:keydown=move |ev: ev::KeyboardEvent| {
                        if ev.key() == "Escape" {
                            commit(None);
                        } else if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            commit(Some(event_target_value(&ev)));
                        }
                    }
                    on:input=move |ev: ev::Event| {
                        if let Some(t) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()) {
                            grow(&t);
                        }
                    }
                    on:blur=move |ev: ev::FocusEvent| commit(Some(event_target_value(&ev)))
                ></textarea>
            }
        })}
    }
}

/// Makes the text editor as tall as its text.
fn grow(t: &web_sys::HtmlElement) {
    let _ = t.style().set_property("height", "auto");
    let _ = t
        .style()
        .set_property("height", &format!("{}px", t.scroll_height()));
}
