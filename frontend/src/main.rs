//! Kokuban's browser app. Built for `wasm32-unknown-unknown` by Trunk (`Trunk.toml` at the
//! repository root). Everything the app decides lives in `kokuban-client` (plain Rust, tested
//! natively); this crate is the thin layer that talks to the DOM: components, the canvas
//! renderer, input listeners and the one module that owns the WebSocket.

mod app;
mod browser;
mod engine;
mod images;
mod input;
mod landing;
mod menus;
mod outbox;
mod render;
mod room;
mod sheet;
mod socket;
mod toolbar;
mod versions;

fn main() {
    // Panics become readable messages in the browser console instead of "unreachable executed".
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
