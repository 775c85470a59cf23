//! The History panel: the versions of the board the server keeps (before every Clear, and
//! every few minutes of drawing). Choosing one shows it in the canvas in place of the live
//! board, read-only, under a bar that offers to bring it back for everyone (editors only)
//! or to go back to the live board (Esc too).

use std::rc::Rc;

use kokuban_board::Board;
use kokuban_client::panels::Panel;
use kokuban_client::versions::{Listing, parse};
use kokuban_protocol::{RoomId, Token};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use crate::browser::window;
use crate::engine::{Engine, Ui};
use crate::room::{EngineRef, icon};

/// What the panel lists.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Versions {
    /// Asked for, not there yet.
    #[default]
    Loading,
    /// The versions, newest first, and whether view links may read them.
    Listed(Listing),
    /// Why they could not be read.
    Failed(String),
}

impl Engine {
    /// Opens the History panel (or closes it) and reads the versions afresh.
    pub fn toggle_history(self: &Rc<Self>) {
        let panels = self.panels();
        panels.update(|p| p.toggle(Panel::History));
        if !panels.with_untracked(|p| p.is_open(Panel::History)) {
            return;
        }
        let Some((room, token)) = self.room_and_token() else {
            return;
        };
        let versions = self.versions();
        versions.set(Versions::Loading);
        leptos::task::spawn_local(async move {
            let listed = get(&format!("/api/rooms/{room}/checkpoints"), &token).await;
            let listed = match listed {
                Ok(r) => text(r).await.and_then(|t| parse(&t)),
                Err(e) => Err(e),
            };
            versions.set(match listed {
                Ok(list) => Versions::Listed(list),
                Err(e) => Versions::Failed(e),
            });
        });
    }

    /// Reads version `id` and shows it in place of the live board.
    pub fn show_version(self: &Rc<Self>, id: u64) {
        let Some((room, token)) = self.room_and_token() else {
            return;
        };
        let me = self.clone();
        leptos::task::spawn_local(async move {
            let path = format!("/api/rooms/{room}/checkpoints/{id}");
            let board = match get(&path, &token).await {
                Ok(r) => bytes(r).await.and_then(|b| {
                    Board::from_snapshot(&b).map_err(|_| {
                        "This version was written by a newer server: reload the page.".to_string()
                    })
                }),
                Err(e) => Err(e),
            };
            match board {
                Ok(board) => me.act(|ed| ed.show_version(id, board)),
                Err(e) => me.toast(format!("The version could not be shown: {e}")),
            }
        });
    }

    /// Lets view links read the versions, or not (an editor's choice, for everyone).
    pub fn set_history_for_viewers(self: &Rc<Self>, allowed: bool) {
        let Some((room, token)) = self.room_and_token() else {
            return;
        };
        let me = self.clone();
        leptos::task::spawn_local(async move {
            let path = format!("/api/rooms/{room}/history");
            let body = format!("{{\"viewers\": {allowed}}}");
            match put(&path, &token, &body).await {
                Ok(_) => me.versions().update(|v| {
                    if let Versions::Listed(listing) = v {
                        listing.viewers = allowed;
                    }
                }),
                Err(e) => me.toast(format!("The history's access was not changed: {e}")),
            }
        });
    }

    /// The room and the token of the link this tab opened it with.
    fn room_and_token(&self) -> Option<(RoomId, Token)> {
        let editor = self.editor.borrow();
        let link = editor.link()?;
        Some((link.room.clone(), link.token()?.clone()))
    }
}

/// A `GET` with the token as its bearer; the response if it is a 200.
async fn get(path: &str, token: &Token) -> Result<Response, String> {
    send("GET", path, token, None).await
}

/// A `PUT` of JSON with the token as its bearer; the response if it is a 200.
async fn put(path: &str, token: &Token, json: &str) -> Result<Response, String> {
    send("PUT", path, token, Some(json)).await
}

/// `method path` with the token as its bearer, and `json` as its body if given; the response
/// if it is a 200.
async fn send(
    method: &str,
    path: &str,
    token: &Token,
    json: Option<&str>,
) -> Result<Response, String> {
    let unprepared = |_| "Could not prepare the request.".to_string();
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(json) = json {
        init.set_body(&json.into());
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(unprepared)?;
    let headers = request.headers();
    headers
        .set("Authorization", &format!("Bearer {}", token.as_str()))
        .map_err(unprepared)?;
    if json.is_some() {
        headers
            .set("Content-Type", "application/json")
            .map_err(unprepared)?;
    }
    let response: Response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .map_err(|_| "the server cannot be reached.".to_string())?
        .dyn_into()
        .map_err(|_| "unexpected answer from the server.".to_string())?;
    answer(response).await
}

/// The response if it is a 200; otherwise what went wrong, in the server's words where it
/// gives some.
async fn answer(response: Response) -> Result<Response, String> {
    match response.status() {
        200 => Ok(response),
        403 => {
            let said = text(response).await.ok().and_then(|t| {
                let json = js_sys::JSON::parse(&t).ok()?;
                js_sys::Reflect::get(&json, &"error".into())
                    .ok()?
                    .as_string()
            });
            Err(said
                .filter(|s| s.contains("history"))
                .map(|s| format!("{s}."))
                .unwrap_or_else(|| "this link may no longer open the board.".into()))
        }
        404 => Err("the server no longer keeps it.".into()),
        429 => Err("too many requests; try again in a moment.".into()),
        status => Err(format!(
            "the server answered {status}; try again in a moment."
        )),
    }
}

async fn text(response: Response) -> Result<String, String> {
    let promise = response
        .text()
        .map_err(|_| "unexpected answer.".to_string())?;
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| "unexpected answer from the server.".to_string())
}

async fn bytes(response: Response) -> Result<Vec<u8>, String> {
    let promise = response
        .array_buffer()
        .map_err(|_| "unexpected answer.".to_string())?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|_| "the answer was cut short.".to_string())?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// When a version was kept, as the user reads time: "14:03", or "3 Dec, 14:03" on another day.
pub fn when(id: u64) -> String {
    let at = js_sys::Date::new(&(id as f64).into());
    let today = js_sys::Date::new_0();
    let time = format!("{:02}:{:02}", at.get_hours(), at.get_minutes());
    let same_day = at.get_date() == today.get_date()
        && at.get_month() == today.get_month()
        && at.get_full_year() == today.get_full_year();
    if same_day {
        time
    } else {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS[at.get_month() as usize % 12];
        format!("{} {month}, {time}", at.get_date())
    }
}

/// The History panel, while it is open.
#[component]
pub fn HistoryPanel(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let (panels, versions) = engine.with_value(|e| (e.panels(), e.versions()));
    let open = move || panels.with(|p| p.is_open(Panel::History));
    let list = move || match versions.get() {
        Versions::Loading => view! { <p class="note">"Reading the versions…"</p> }.into_any(),
        Versions::Failed(e) => {
            view! { <p class="note">{format!("The versions could not be read: {e}")}</p> }
                .into_any()
        }
        Versions::Listed(list) if list.versions.is_empty() => view! {
            <p class="note">
                "No versions yet. The board is kept before every Clear, and every few minutes \
                 while people draw."
            </p>
        }
        .into_any(),
        Versions::Listed(list) => list
            .versions
            .into_iter()
            .map(|v| {
                let id = v.id;
                let at = when(id);
                let (what, by) = (v.what(), v.by());
                let label = format!("Show the version of {at}: {what}");
                let current = move || ui.with(|u| u.version == Some(id));
                view! {
                    <li>
                        <button
                            class="version"
                            class:current=current
                            aria-current=move || current().then_some("true")
                            aria-label=label.clone()
                            title=label
                            on:click=move |_| engine.with_value(|e| e.show_version(id))
                        >
                            <strong>{at}</strong>
                            <span>{what}</span>
                            <span class="by">{by}</span>
                        </button>
                    </li>
                }
            })
            .collect_view()
            .into_any(),
    };
    view! {
        <Show when=open>
            <aside id="history" class="versions" role="dialog" aria-label="History" data-panel="history">
                <header>
                    <h2>"History"</h2>
                    <button
                        class="btn"
                        title="Close the history — Esc"
                        aria-label="Close the history"
                        on:click=move |_| panels.maybe_update(|p| p.close())
                    >
                        {icon("close")}
                    </button>
                </header>
                <ul>{list}</ul>
                <Show when=move || ui.with(|u| u.can_restore)>
                    <label class="access">
                        <input
                            type="checkbox"
                            aria-label="View links may see the history"
                            prop:checked=move || versions.with(|v| !matches!(v, Versions::Listed(l) if !l.viewers))
                            on:change=move |ev| {
                                let allowed = event_target_checked(&ev);
                                engine.with_value(|e| e.set_history_for_viewers(allowed));
                            }
                        />
                        "View links may see the history"
                    </label>
                </Show>
            </aside>
        </Show>
    }
}

/// The bar over a version shown in place of the live board.
#[component]
pub fn VersionBar(engine: EngineRef, ui: RwSignal<Ui>) -> impl IntoView {
    let at = move || ui.with(|u| u.version.map(when).unwrap_or_default());
    let restore = move |_| {
        let at = at();
        let ok = window()
            .confirm_with_message(&format!(
                "Bring the version of {at} back for everyone? What is on the board now is \
                 cleared; Undo (Ctrl+Z) in this tab brings it back."
            ))
            .unwrap_or(false);
        if ok {
            engine.with_value(|e| e.act(|ed| ed.restore_version()));
        }
    };
    view! {
        <div class="bar badge version" role="status" aria-live="polite">
            {icon("history")}
            <span>{move || format!("The board at {} — read-only", at())}</span>
            <Show when=move || ui.with(|u| u.can_restore)>
                <button class="btn primary" aria-label="Restore this version" title="Bring this version back for everyone" on:click=restore>
                    "Restore"
                </button>
            </Show>
            <button
                class="btn"
                aria-label="Back to the live board"
                title="Back to the live board — Esc"
                on:click=move |_| engine.with_value(|e| e.act(|ed| ed.show_live()))
            >
                "Back to live"
            </button>
        </div>
    }
}
