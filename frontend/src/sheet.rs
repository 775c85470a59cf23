//! The shortcut sheet (`?`): every shortcut of the app, from the same table the keyboard
//! handler uses (see `kokuban_client::keymap`).

use kokuban_client::keymap::sheet;
use kokuban_client::panels::Panel;
use leptos::prelude::*;

use crate::room::{EngineRef, icon};

/// The sheet, while it is open.
#[component]
pub fn ShortcutSheet(engine: EngineRef) -> impl IntoView {
    let panels = engine.with_value(|e| e.panels());
    let open = move || panels.with(|p| p.is_open(Panel::Help));
    let sections = move || {
        sheet(crate::browser::is_mac())
            .into_iter()
            .map(|section| {
                let lines = section
                    .lines
                    .into_iter()
                    .map(|(keys, what)| view! { <dt><kbd>{keys}</kbd></dt><dd>{what}</dd> })
                    .collect_view();
                view! {
                    <section>
                        <h3>{section.title}</h3>
                        <dl>{lines}</dl>
                    </section>
                }
            })
            .collect_view()
    };
    view! {
        <Show when=open>
            <div class="backdrop"></div>
            <div
                id="shortcuts"
                class="sheet"
                role="dialog"
                aria-modal="true"
                aria-labelledby="shortcuts-title"
                data-panel="help"
            >
                <header>
                    <h2 id="shortcuts-title">"Keyboard shortcuts"</h2>
                    <button
                        class="btn"
                        title="Close — Esc"
                        aria-label="Close the shortcut list"
                        on:click=move |_| panels.maybe_update(|p| p.close())
                    >
                        {icon("close")}
                    </button>
                </header>
                <div class="sections">{sections}</div>
            </div>
        </Show>
    }
}
