//! The root component: the landing page at `/`, a room at `/r/{room}`.

use kokuban_client::link::{Page, parse};
use leptos::prelude::*;

use crate::browser::window;
use crate::landing::Landing;
use crate::room::Room;

/// The whole page, chosen by the URL.
#[component]
pub fn App() -> impl IntoView {
    let loc = window().location();
    let page = parse(
        &loc.pathname().unwrap_or_default(),
        &loc.hash().unwrap_or_default(),
    );
    // A new fragment (someone pasted another link into this tab) is a new page.
    let _ = window_event_listener(leptos::ev::hashchange, |_| {
        let _ = window().location().reload();
    });
    match page {
        Page::Landing => view! { <Landing/> }.into_any(),
        Page::Room(link) => view! { <Room link=link/> }.into_any(),
    }
}
