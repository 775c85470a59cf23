//! The landing page: one button that creates a board and opens it.

use kokuban_client::link::with_view_token;
use kokuban_client::recent::{KEY, RecentBoards, ago};
use kokuban_protocol::{RoomId, Token};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

use crate::browser::{load, store, window};
use crate::room::icon;

/// `/`.
#[component]
pub fn Landing() -> impl IntoView {
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let create = move |_| {
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            match create_room().await {
                Ok(url) => {
                    let _ = window().location().set_href(&url);
                }
                Err(e) => {
                    error.set(Some(e));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <main class="landing">
            <img src="/icons/kokuban.svg" alt="" width="96" height="96"/>
            <h1>"Kokuban"</h1>
            <p>"A whiteboard for drawing together, live. Make a board, share the link, and everyone's ink appears as it is drawn."</p>
            <button id="new-board" class="primary" title="Create a new board and open it" on:click=create disabled=move || busy.get()>
                {icon("pen")}
                {move || if busy.get() { "Creating…" } else { "New board" }}
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Recent/>
        </main>
    }
}

/// The boards this browser opened, newest first, each with a way to forget it.
#[component]
fn Recent() -> impl IntoView {
    let recent = RwSignal::new(RecentBoards::parse(load(KEY).as_deref()));
    let now = crate::browser::wall_ms();
    let forget = move |room: &str| {
        recent.update(|r| r.remove(room));
        store(KEY, &recent.with_untracked(RecentBoards::to_stored));
    };
    let rows = move || {
        recent.with(|r| {
            r.boards()
                .iter()
                .map(|b| {
                    let room = b.room.clone();
                    let when = ago(b.opened_ms, now);
                    // A board is named by its title where it has one, else by its id.
                    let name = b.title.clone().unwrap_or_else(|| b.room.clone());
                    let label = name.clone();
                    // An empty board keeps the picture's place, so that the names line up.
                    let picture = match b.thumbnail.clone() {
                        Some(src) => view! {
                            <img class="thumb" src=src alt="" width="64" height="40"/>
                        }
                        .into_any(),
                        None => view! { <span class="thumb" aria-hidden="true"></span> }.into_any(),
                    };
                    view! {
                        <li>
                            {picture}
                            <a
                                href=b.link.clone()
                                class:untitled=b.title.is_none()
                                title=format!("Open board {}", b.room)
                            >
                                {name}
                            </a>
                            <span class="when">{when}</span>
                            <button
                                class="forget"
                                title="Remove this board from the list (the board itself stays)"
                                aria-label=format!("Remove board {label} from the list")
                                on:click=move |_| forget(&room)
                            >
                                "×"
                            </button>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <Show when=move || recent.with(|r| !r.boards().is_empty())>
            <section class="recent" aria-label="Boards opened in this browser">
                <h2>"Opened in this browser"</h2>
                <ul>{rows}</ul>
            </section>
        </Show>
    }
}

/// `POST /api/rooms`; returns the edit link (with the view token kept in its fragment).
pub async fn create_room() -> Result<String, String> {
    let response = post("/api/rooms", None).await?;
    if response.status() == 429 {
        return Err(
            "Many boards were created from your address just now. Try again in a minute."
                .to_string(),
        );
    }
    if response.status() != 201 {
        return Err(format!(
            "The server could not create a board (status {}). Try again in a moment.",
            response.status()
        ));
    }
    let (edit, view) = links(response).await?;
    Ok(with_view_token(&edit, &view))
}

/// `POST /api/rooms/{room}/links` with the edit token; returns the new edit and view links.
pub async fn reset_links(room: &RoomId, edit: &Token) -> Result<(String, String), String> {
    let response = post(&format!("/api/rooms/{room}/links"), Some(edit)).await?;
    match response.status() {
        200 => links(response).await,
        403 => Err("this link may no longer reset them (were they reset already?)".into()),
        status => Err(format!(
            "the server answered {status}; try again in a moment"
        )),
    }
}

/// An empty `POST`, with the token as its bearer if given.
async fn post(path: &str, bearer: Option<&Token>) -> Result<Response, String> {
    let init = RequestInit::new();
    init.set_method("POST");
    let request = Request::new_with_str_and_init(path, &init)
        .map_err(|_| "Could not prepare the request.".to_string())?;
    if let Some(token) = bearer {
        request
            .headers()
            .set("Authorization", &format!("Bearer {}", token.as_str()))
            .map_err(|_| "Could not prepare the request.".to_string())?;
    }
    let response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .map_err(|_| {
            "The server cannot be reached. Check your connection and try again.".to_string()
        })?;
    response
        .dyn_into()
        .map_err(|_| "Unexpected answer from the server.".to_string())
}

/// The `edit_url` and `view_url` of an answer.
async fn links(response: Response) -> Result<(String, String), String> {
    let answer = crate::browser::Answer::of(&response).await?;
    let edit = answer
        .text("edit_url")
        .ok_or("The server's answer has no edit link.")?;
    let view = answer.text("view_url").unwrap_or_default();
    Ok((edit, view))
}
