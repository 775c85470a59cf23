//! The room's controls at the top right: who is here (and our own name and colour), the
//! links to share, and the menu (export, theme, shortcuts, clearing the board). Each popover
//! is a [`Panel`]: one open at a time, closed by a choice, Esc or a click elsewhere.

use kokuban_client::panels::Panel;
use kokuban_client::prefs::{MEMBER_COLORS, hex};
use leptos::{ev, prelude::*};

use crate::engine::MemberView;
use crate::room::{EngineRef, icon};

/// Avatars shown before the rest are counted as "+N": us and two others, which is what fits
/// beside the other controls on a phone.
const AVATARS: usize = 3;

/// The members of the room, us first; ours opens the profile.
#[component]
pub fn Presence(engine: EngineRef) -> impl IntoView {
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
    let open = move || panels.with(|p| p.is_open(Panel::Profile));
    let shown = move || {
        ui.with(|u| {
            u.members
                .iter()
                .take(AVATARS)
                .cloned()
                .collect::<Vec<MemberView>>()
        })
    };
    let rest = move || ui.with(|u| u.members.len().saturating_sub(AVATARS));
    let members_open = move || panels.with(|p| p.is_open(Panel::Members));
    view! {
        <div class="presence" data-panel="profile">
            <For
                each=shown
                key=|m| (m.id, m.name.clone(), m.color.clone(), m.me, m.followed)
                children=move |m| {
                    let style = format!("--avatar:{}", m.color);
                    if m.me {
                        let title = format!("{} (you): change your name and colour", m.name);
                        view! {
                            <button
                                class="avatar me"
                                class:viewer=m.viewer
                                title=title.clone()
                                aria-label=title
                                aria-expanded=move || open().to_string()
                                style=style
                                on:click=move |_| panels.update(|p| p.toggle(Panel::Profile))
                            >
                                {m.initials.clone()}
                            </button>
                        }
                        .into_any()
                    } else {
                        let label = format!("Follow {}", m.name);
                        let id = kokuban_protocol::MemberId(m.id);
                        view! {
                            <button
                                class="avatar"
                                class:viewer=m.viewer
                                class:followed=m.followed
                                title=label.clone()
                                aria-label=label
                                aria-pressed=m.followed.to_string()
                                style=style
                                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.follow(id)))
                            >
                                {m.initials.clone()}
                            </button>
                        }
                        .into_any()
                    }
                }
            />
            {move || (rest() > 0).then(|| {
                let n = rest();
                let label = format!("{n} more: everyone in this board");
                view! {
                    <span class="more-wrap" data-panel="members">
                        <button
                            class="avatar more"
                            title=label.clone()
                            aria-label=label
                            aria-expanded=move || members_open().to_string()
                            on:click=move |_| panels.update(|p| p.toggle(Panel::Members))
                        >
                            {format!("+{n}")}
                        </button>
                        <Show when=members_open>
                            <Members engine=engine/>
                        </Show>
                    </span>
                }
            })}
            <Show when=open>
                <Profile engine=engine/>
            </Show>
        </div>
    }
}

/// Everyone in the room, in a list that scrolls: a room of hundreds fits, and each other
/// member can be followed from it as from their avatar.
#[component]
fn Members(engine: EngineRef) -> impl IntoView {
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
    // Us first, then by name: someone looked for is found where the alphabet says.
    let everyone = move || {
        let mut all = ui.with(|u| u.members.clone());
        all.sort_by_cached_key(|m| (!m.me, m.name.to_lowercase(), m.id));
        all
    };
    let count = move || ui.with(|u| u.members.len());
    view! {
        <div class="popover members" role="dialog" aria-label="Everyone in this board">
            <p class="members-count">{move || format!("{} here", count())}</p>
            <ul>
                <For
                    each=everyone
                    key=|m| (m.id, m.name.clone(), m.color.clone(), m.me, m.followed, m.viewer)
                    children=move |m| {
                        let style = format!("--avatar:{}", m.color);
                        let dot = view! { <span class="dot" style=style></span> };
                        let tag = match (m.me, m.viewer) {
                            (true, _) => " (you)",
                            (false, true) => " (viewing)",
                            (false, false) => "",
                        };
                        let text = format!("{}{tag}", m.name);
                        if m.me {
                            view! { <li class="member me">{dot}<span>{text}</span></li> }.into_any()
                        } else {
                            let id = kokuban_protocol::MemberId(m.id);
                            let label = if m.followed {
                                format!("Stop following {}", m.name)
                            } else {
                                format!("Follow {}", m.name)
                            };
                            view! {
                                <li class="member">
                                    <button
                                        class:followed=m.followed
                                        title=label.clone()
                                        aria-label=label
                                        aria-pressed=m.followed.to_string()
                                        on:click=move |_| {
                                            engine.with_value(|e| {
                                                e.act(|ed| if m.followed { ed.unfollow() } else { ed.follow(id) })
                                            });
                                            panels.update(|p| { p.close(); });
                                        }
                                    >
                                        {dot}
                                        <span>{text}</span>
                                    </button>
                                </li>
                            }
                            .into_any()
                        }
                    }
                />
            </ul>
        </div>
    }
}

/// Our name and colour.
#[component]
fn Profile(engine: EngineRef) -> impl IntoView {
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
    let name = ui.with_untracked(|u| u.name.clone());
    // Applied as it is typed: the popover may close (a click elsewhere) before a `change`.
    let set_name = move |ev: ev::Event| {
        let value = event_target_value(&ev);
        let color = ui.with_untracked(|u| u.color);
        engine.with_value(|e| e.act(|ed| ed.set_profile(&value, color)));
    };
    let colors = MEMBER_COLORS.map(|(color_name, c)| {
        view! {
            <button
                class="swatch"
                class:active=move || ui.with(|u| u.color == c)
                title=format!("Your colour: {color_name}")
                aria-label=format!("Your colour: {color_name}")
                style=format!("--swatch:{}", hex(c))
                on:click=move |_| {
                    let name = ui.with_untracked(|u| u.name.clone());
                    engine.with_value(|e| e.act(|ed| ed.set_profile(&name, c)));
                }
            ></button>
        }
    });
    view! {
        <div class="popover profile" role="dialog" aria-label="Your name and colour">
            <label>
                "Your name"
                <input
                    type="text"
                    maxlength="48"
                    value=name
                    aria-label="Your name"
                    on:input=set_name
                    on:keydown=move |ev: ev::KeyboardEvent| {
                        // The page's Esc skips text fields: this one closes its popover itself.
                        if ev.key() == "Enter" || ev.key() == "Escape" {
                            panels.maybe_update(|p| p.close());
                        }
                    }
                />
            </label>
            <div class="group">{colors}</div>
        </div>
    }
}

/// The links to the board.
#[component]
pub fn Share(engine: EngineRef) -> impl IntoView {
    let panels = engine.with_value(|e| e.panels());
    let open = move || panels.with(|p| p.is_open(Panel::Share));
    let copy = move |url: String, what: &'static str| {
        engine.with_value(|e| e.copy_link(url, what));
        panels.maybe_update(|p| p.close());
    };
    let reset = move |_| {
        panels.maybe_update(|p| p.close());
        let ok = crate::browser::window()
            .confirm_with_message(
                "Make new links for this board? Everyone who opened it with the current links \
                 is disconnected, and those links stop working; only the new links open it.",
            )
            .unwrap_or(false);
        if ok {
            engine.with_value(|e| e.reset_links());
        }
    };
    // Built each time the popover opens (a view is used once), from the links held then:
    // a reset replaces them.
    let items = move || {
        let (edit_url, view_url) = engine.with_value(|e| {
            let ed = e.editor.borrow();
            let link = ed.link();
            (
                link.and_then(|l| l.edit_url()),
                link.and_then(|l| l.view_url()),
            )
        });
        let can_reset = edit_url.is_some();
        let edit = edit_url.clone().map(|url| {
            view! {
                <button
                    role="menuitem"
                    title="Copy the edit link: whoever opens it can draw"
                    on:click=move |_| copy(url.clone(), "Edit link")
                >
                    {icon("link")}
                    "Copy the edit link"
                </button>
            }
        });
        let view_item = match view_url.clone() {
            Some(url) => view! {
                <button
                    role="menuitem"
                    title="Copy the view-only link: whoever opens it can watch, not draw"
                    on:click=move |_| copy(url.clone(), "View-only link")
                >
                    {icon("eye")}
                    "Copy the view-only link"
                </button>
            }
            .into_any(),
            None => view! {
                <button
                    role="menuitem"
                    disabled=true
                    title="The view-only link is only known to the board's original link"
                >
                    {icon("eye")}
                    "No view-only link known"
                </button>
            }
            .into_any(),
        };
        let reset_item = can_reset.then(|| {
            view! {
                <button
                    role="menuitem"
                    aria-label="Reset links"
                    title="Make new links: the current edit and view links stop working"
                    on:click=reset
                >
                    {icon("link")}
                    "Reset links…"
                </button>
            }
        });
        view! { {edit}{view_item}{reset_item} }
    };
    view! {
        <div class="menu" data-panel="share">
            <button
                class="btn"
                title="Share this board"
                aria-label="Share this board"
                aria-haspopup="menu"
                aria-expanded=move || open().to_string()
                on:click=move |_| panels.update(|p| p.toggle(Panel::Share))
            >
                {icon("link")}
            </button>
            <Show when=open>
                <div class="popover" role="menu" aria-label="Share this board">
                    {items}
                </div>
            </Show>
        </div>
    }
}

/// Export, theme, the shortcut sheet and clearing the board.
#[component]
pub fn Menu(engine: EngineRef) -> impl IntoView {
    let (ui, panels) = engine.with_value(|e| (e.ui(), e.panels()));
    let open = move || panels.with(|p| p.is_open(Panel::Menu));
    // Every item is a choice: it does its thing and the menu closes.
    let item = move |f: fn(&crate::engine::Engine)| {
        move |_| {
            panels.maybe_update(|p| p.close());
            engine.with_value(|e| f(e));
        }
    };
    let clear = move |_| {
        panels.maybe_update(|p| p.close());
        let ok = crate::browser::window()
            .confirm_with_message(
                "Clear the board for everyone? Undo (Ctrl+Z) in this tab draws it all again.",
            )
            .unwrap_or(false);
        if ok {
            engine.with_value(|e| e.act(|ed| ed.clear_board()));
        }
    };
    let dark = move || ui.with(|u| u.theme.name() == "dark");
    // The file picker stays in the page (the menu closes as it opens).
    let picker = NodeRef::<leptos::html::Input>::new();
    let pick = move |_| {
        panels.maybe_update(|p| p.close());
        if let Some(input) = picker.get() {
            input.click();
        }
    };
    let picked = move |_| {
        let Some(input) = picker.get() else { return };
        if let Some(files) = input.files() {
            for file in (0..files.length()).filter_map(|i| files.get(i)) {
                engine.with_value(|e| e.add_image(file.into(), None));
            }
        }
        // The same file picked again is a change too.
        input.set_value("");
    };
    view! {
        <div class="menu" data-panel="menu">
            <input
                type="file"
                class="file-picker"
                accept=crate::images::IMAGE_TYPES.join(",")
                multiple
                aria-label="Picture to add to the board"
                node_ref=picker
                on:change=picked
            />
            <button
                class="btn"
                title="Menu: export, theme, shortcuts"
                aria-label="Menu: export, theme, shortcuts"
                aria-haspopup="menu"
                aria-expanded=move || open().to_string()
                on:click=move |_| panels.update(|p| p.toggle(Panel::Menu))
            >
                {icon("menu")}
            </button>
            <Show when=open>
                <div class="popover" role="menu" aria-label="Menu">
                    <button role="menuitem" title="Download the whole drawing as a PNG image" on:click=item(|e| e.export_png(true))>
                        {icon("download")}"PNG — whole drawing"
                    </button>
                    <button role="menuitem" title="Download what is on screen as a PNG image" on:click=item(|e| e.export_png(false))>
                        {icon("download")}"PNG — current view"
                    </button>
                    <button role="menuitem" title="Download the whole drawing as an SVG image" on:click=item(|e| e.export_svg(true))>
                        {icon("download")}"SVG — whole drawing"
                    </button>
                    <button role="menuitem" title="Download what is on screen as an SVG image" on:click=item(|e| e.export_svg(false))>
                        {icon("download")}"SVG — current view"
                    </button>
                    <Show when=move || ui.with(|u| u.can_edit)>
                        <button
                            role="menuitem"
                            title="Add a PNG, JPEG, WebP or GIF picture (or paste one, or drop it on the board)"
                            aria-label="Add a picture"
                            on:click=pick
                        >
                            {icon("image")}"Add a picture…"
                        </button>
                    </Show>
                    <hr/>
                    <button
                        role="menuitem"
                        title="Switch between the light and the dark board"
                        on:click=item(|e| e.act(|ed| ed.toggle_theme()))
                    >
                        {move || if dark() { icon("sun") } else { icon("moon") }}
                        {move || if dark() { "Light board" } else { "Dark board" }}
                    </button>
                    <button
                        role="menuitem"
                        title="Show every keyboard shortcut — ?"
                        on:click=move |_| panels.update(|p| p.toggle(Panel::Help))
                    >
                        {icon("keyboard")}"Keyboard shortcuts"
                    </button>
                    <button
                        role="menuitem"
                        title="Earlier versions of the board, kept before every Clear and every few minutes"
                        aria-label="History"
                        on:click=move |_| engine.with_value(|e| e.toggle_history())
                    >
                        {icon("history")}"History"
                    </button>
                    <button
                        role="menuitem"
                        title="Ask everyone to follow your view (each may decline)"
                        aria-label="Ask everyone to follow me"
                        on:click=item(|e| e.act(|ed| ed.ask_everyone_to_follow()))
                    >
                        {icon("eye")}"Ask everyone to follow me"
                    </button>
                    <Show when=move || ui.with(|u| u.can_edit && u.has_content)>
                        <hr/>
                        <button role="menuitem" class="danger" title="Erase everything, for everyone (undo in this tab brings it back)" aria-label="Clear board" on:click=clear>
                            {icon("trash")}"Clear board"
                        </button>
                    </Show>
                </div>
            </Show>
        </div>
    }
}
