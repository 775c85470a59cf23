//! The room page: the board canvases and the controls around them. Components only read the
//! [`Ui`] snapshot and call the engine; all logic lives in the client crate.

use std::rc::Rc;

use kokuban_client::connection::Remedy;
use kokuban_client::link::RoomLink;
use kokuban_client::panels::Panel;
use kokuban_client::prefs::hex;
use leptos::{ev, html, prelude::*};
use wasm_bindgen::JsCast;

use crate::engine::{Engine, Ui};
use crate::menus::{Menu, Presence, Share};
use crate::sheet::ShortcutSheet;
use crate::toolbar::{SelectionBar, Toolbar, ViewerBar};
use crate::versions::{HistoryPanel, VersionBar};

/// The room's engine, shared by its components.
pub type EngineRef = StoredValue<Rc<Engine>, LocalStorage>;

/// An icon from `assets/icons`, drawn in the current text colour.
pub fn icon(name: &'static str) -> impl IntoView {
    view! { <span class="icon" aria-hidden="true" style=format!("--icon:url(/icons/{name}.svg)")></span> }
}

/// The room at `link`.
#[component]
pub fn Room(link: RoomLink) -> impl IntoView {
    let engine = StoredValue::new_local(Engine::start(link));
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
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
    // A pointer going down outside the open popover closes it (drawing on the board, too).
    let _ = window_event_listener(ev::pointerdown, move |e| {
        let inside = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.closest("[data-panel]").ok().flatten())
            .and_then(|el| el.get_attribute("data-panel"))
            .and_then(|name| Panel::from_name(&name));
        panels.maybe_update(|p| p.pointer_down(inside));
    });
    // The title names the browser tab and the board in this browser's list of recent boards.
    let title = Memo::new(move |_| ui.with(|u| u.title.clone()));
    let room = link_room(engine);
    Effect::new(move |_| {
        let title = title.get();
        crate::browser::document().set_title(&match &title {
            Some(t) => format!("{t} — Kokuban"),
            None => "Kokuban".into(),
        });
        crate::browser::remember_title(&room, title.as_deref());
    });
    // A picture of the board as it is left, for the landing page's list.
    let picture = {
        let room = link_room(engine);
        move || {
            let thumbnail = engine.with_value(|e| e.thumbnail());
            crate::browser::remember_thumbnail(&room, thumbnail);
        }
    };
    let on_hide = picture.clone();
    let _ = window_event_listener_untyped("visibilitychange", move |_| {
        if crate::browser::document().hidden() {
            on_hide();
        }
    });
    let _ = window_event_listener_untyped("pagehide", move |_| picture());
    let open = move || ui.with(|u| u.closed.is_none());
    let can_edit = move || ui.with(|u| u.can_edit);

    view! {
        <canvas id="board" node_ref=board></canvas>
        <canvas id="overlay" node_ref=overlay aria-hidden="true"></canvas>
        <header class="bar corner top-left">
            <a class="logo" href="/" title="Kokuban: start a new board" aria-label="Kokuban: start a new board">
                <img src="/icons/kokuban.svg" alt="" width="24" height="24"/>
                <span>"Kokuban"</span>
            </a>
            <BoardTitle engine=engine ui=ui/>
            <Status ui=ui/>
        </header>
        // A board that cannot be reached shows no tools: the banner says what to do instead.
        <Show when=open>
            <Show
                when=move || ui.with(|u| u.version.is_none())
                fallback=move || view! { <VersionBar engine=engine ui=ui/> }
            >
            <Show
                when=can_edit
                fallback=move || {
                    view! {
                        <div class="bar badge">{icon("eye")}"View only"</div>
                        <ViewerBar engine=engine/>
                    }
                }
            >
                <Toolbar engine=engine/>
                <SelectionBar engine=engine/>
            </Show>
            </Show>
        </Show>
        {move || ui.with(|u| u.following.clone()).map(|name| view! {
            <div class="bar badge following" role="status" aria-live="polite">
                {format!("Following {name} — Esc to stop")}
            </div>
        })}
        {move || ui.with(|u| u.asked_by.clone()).map(|name| {
            let answer = move |follow: bool| {
                move |_| engine.with_value(|e| e.act(|ed| ed.answer_ask_to_follow(follow)))
            };
            view! {
                <div class="bar badge asked" role="alert">
                    <span>{format!("{name} asks everyone to follow")}</span>
                    <button class="btn" aria-label=format!("Follow {name} as asked") on:click=answer(true)>
                        "Follow"
                    </button>
                    <button class="btn" aria-label=format!("Decline to follow {name}") on:click=answer(false)>
                        "Decline"
                    </button>
                </div>
            }
        })}
        <div class="bar corner top-right">
            <Presence engine=engine/>
            <Share engine=engine/>
            <Menu engine=engine/>
            <button
                class="btn theme"
                title="Light or dark board"
                aria-label="Light or dark board"
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.toggle_theme()))
            >
                {move || if ui.with(|u| u.theme.name() == "dark") { icon("sun") } else { icon("moon") }}
            </button>
            <span class="help" data-panel="help">
                <button
                    class="btn"
                    title="Keyboard shortcuts — ?"
                    aria-label="Keyboard shortcuts"
                    on:click=move |_| panels.update(|p| p.toggle(Panel::Help))
                >
                    {icon("keyboard")}
                </button>
            </span>
        </div>
        <Zoom engine=engine ui=ui/>
        <Banner engine=engine ui=ui/>
        <ShortcutSheet engine=engine/>
        <HistoryPanel engine=engine ui=ui/>
        <Toasts engine=engine/>
        <TextEditor engine=engine/>
    }
}

/// The room id of the engine's link.
fn link_room(engine: EngineRef) -> String {
    engine.with_value(|e| {
        e.editor
            .borrow()
            .link()
            .map(|l| l.room.as_str().to_owned())
            .unwrap_or_default()
    })
}

/// The board's title: a field an editor renames the board with (Enter or leaving the field
/// sets it for everyone, Esc puts back what it was), plain text for a viewer.
#[component]
fn BoardTitle(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let title = Memo::new(move |_| ui.with(|u| u.title.clone().unwrap_or_default()));
    let field = NodeRef::<html::Input>::new();
    let now =
        move || engine.with_value(|e| e.editor.borrow().title().unwrap_or_default().to_owned());
    // A rename by someone else shows at once, except while this field is being typed in:
    // what is typed is not overwritten, and leaving the field shows the title again.
    Effect::new(move |_| {
        let title = title.get();
        if let Some(input) = field.get() {
            let typing = crate::browser::document()
                .active_element()
                .is_some_and(|a| &a == input.unchecked_ref::<web_sys::Element>());
            if !typing {
                input.set_value(&title);
            }
        }
    });
    let set = move |ev: ev::Event| {
        let value = event_target_value(&ev);
        engine.with_value(|e| e.act(|ed| ed.set_title(&value)));
    };
    view! {
        <Show
            when=move || ui.with(|u| u.can_edit)
            fallback=move || view! {
                <span class="title" aria-label="Board title">{title}</span>
            }
        >
            <input
                class="title"
                type="text"
                node_ref=field
                placeholder="Untitled board"
                title="Board title: everyone sees it"
                aria-label="Board title"
                on:change=set
                on:blur=move |_| {
                    if let Some(input) = field.get() {
                        input.set_value(&now());
                    }
                }
                on:keydown=move |ev: ev::KeyboardEvent| {
                    let Some(input) = field.get() else { return };
                    match ev.key().as_str() {
                        "Enter" => {
                            let _ = input.blur();
                        }
                        "Escape" => {
                            input.set_value(&now());
                            let _ = input.blur();
                        }
                        _ => {}
                    }
                }
            />
        </Show>
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

/// Why the board cannot be used, and the way out: a new board for a link that cannot open
/// one, a reload for an outdated app.
#[component]
fn Banner(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let busy = RwSignal::new(false);
    let new_board = move |_| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            match crate::landing::create_room().await {
                Ok(url) => {
                    let _ = crate::browser::window().location().set_href(&url);
                }
                Err(e) => {
                    engine.with_value(|en| en.toast(e));
                    busy.set(false);
                }
            }
        });
    };
    let action = move || match ui.with(|u| u.closed) {
        Some(Remedy::Reload) => view! {
            <button
                class="primary"
                title="Reload the page with the new version"
                on:click=|_| { let _ = crate::browser::window().location().reload(); }
            >
                "Reload"
            </button>
        }
        .into_any(),
        _ => view! {
            <button
                id="new-board"
                class="primary"
                title="Create a new board and open it"
                disabled=move || busy.get()
                on:click=new_board
            >
                {icon("pen")}
                {move || if busy.get() { "Creating…" } else { "New board" }}
            </button>
        }
        .into_any(),
    };
    view! {
        <Show when=move || ui.with(|u| u.closed.is_some())>
            <div id="banner" class="banner" role="alert">
                <span>{move || ui.with(|u| u.status_label.clone())}</span>
                {action}
            </div>
        </Show>
    }
}

#[component]
fn Zoom(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    view! {
        <div class="bar corner bottom-left zoom">
            <button class="btn" title="Zoom out — −" aria-label="Zoom out" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_out()))>
                {icon("zoom-out")}
            </button>
            <button class="btn pct" title="Zoom to 100% — 0" aria-label="Zoom to 100%" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.reset_zoom()))>
                {move || format!("{}%", ui.with(|u| u.zoom))}
            </button>
            <button class="btn" title="Zoom in — +" aria-label="Zoom in" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_in()))>
                {icon("zoom-in")}
            </button>
            <button class="btn" title="Zoom to fit the drawing — F" aria-label="Zoom to fit the drawing" on:click=move |_| engine.with_value(|e| e.act(|ed| ed.zoom_to_fit()))>
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
                "left:{}px;top:{}px;font-size:{}px;color:{};text-align:{}",
                edit.screen.x,
                edit.screen.y,
                edit.font_px,
                hex(edit.color),
                edit.align
            );
            view! {
                <textarea
                    class="text-editor"
                    aria-label="Text"
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
