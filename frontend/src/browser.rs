//! Small wrappers over browser APIs, so that the rest of the app reads as what it does.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, BlobPropertyBag, Document, HtmlAnchorElement, Storage, Url, Window};

/// The window (always present in a page).
pub fn window() -> Window {
    web_sys::window().expect("a browser window")
}

/// The document.
pub fn document() -> Document {
    window().document().expect("a document")
}

/// Milliseconds on the page's monotonic clock.
pub fn now() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// Milliseconds since the Unix epoch on the wall clock (what "last opened" is kept in).
pub fn wall_ms() -> f64 {
    js_sys::Date::now()
}

/// Remembers in this browser's list of recent boards that `link` was opened now.
pub fn remember_board(link: &kokuban_client::link::RoomLink) {
    use kokuban_client::recent::{KEY, RecentBoards};
    let mut recent = RecentBoards::parse(load(KEY).as_deref());
    recent.opened(link, wall_ms());
    store(KEY, &recent.to_stored());
}

/// Remembers in this browser's list of recent boards the title `room`'s board has now.
pub fn remember_title(room: &str, title: Option<&str>) {
    use kokuban_client::recent::{KEY, RecentBoards};
    let mut recent = RecentBoards::parse(load(KEY).as_deref());
    if recent.titled(room, title) {
        store(KEY, &recent.to_stored());
    }
}

/// Remembers in this browser's list of recent boards a picture of `room`'s board.
pub fn remember_thumbnail(room: &str, thumbnail: Option<String>) {
    use kokuban_client::recent::{KEY, RecentBoards};
    let mut recent = RecentBoards::parse(load(KEY).as_deref());
    if recent.pictured(room, thumbnail) {
        store(KEY, &recent.to_stored());
    }
}

/// Whether the browser believes it has a network.
pub fn online() -> bool {
    window().navigator().on_line()
}

fn storage() -> Option<Storage> {
    // Storage can be disabled (privacy settings): the app then simply forgets.
    window().local_storage().ok().flatten()
}

/// A value from localStorage.
pub fn load(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

/// Stores a value in localStorage (silently ignored when storage is unavailable or full).
pub fn store(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

/// 32 bytes from the browser's CSPRNG.
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(crypto) = window().crypto() {
        let _ = crypto.get_random_values_with_u8_array(&mut seed);
    }
    if seed == [0; 32] {
        // No Web Crypto (very old browsers): the clock and Math.random, still unique enough
        // for stroke ids within a room.
        let t = now().to_bits() ^ (js_sys::Date::now().to_bits() << 1);
        let r = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        seed[..8].copy_from_slice(&t.to_le_bytes());
        seed[8..16].copy_from_slice(&r.to_le_bytes());
    }
    seed
}

/// Whether the system asks for a dark theme.
pub fn prefers_dark() -> bool {
    window()
        .match_media("(prefers-color-scheme: dark)")
        .ok()
        .flatten()
        .is_some_and(|m| m.matches())
}

/// Whether this is a Mac (shortcuts use ⌘ there).
pub fn is_mac() -> bool {
    window()
        .navigator()
        .user_agent()
        .is_ok_and(|ua| ua.contains("Macintosh") || ua.contains("Mac OS"))
}

/// Offers `blob` as a download named `name`.
pub fn download(name: &str, blob: &Blob) {
    let Ok(url) = Url::create_object_url_with_blob(blob) else {
        return;
    };
    if let Ok(a) = document().create_element("a")
        && let Ok(a) = a.dyn_into::<HtmlAnchorElement>()
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    // Revoked on the next turn, once the download has started.
    let revoke = Closure::once_into_js(move || {
        let _ = Url::revoke_object_url(&url);
    });
    let _ = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 1000);
}

/// A text blob of `mime` type.
pub fn text_blob(text: &str, mime: &str) -> Option<Blob> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    Blob::new_with_str_sequence_and_options(&parts, &options).ok()
}

/// Copies text to the clipboard; resolves to whether it worked.
pub async fn copy_text(text: &str) -> bool {
    let navigator = window().navigator();
    // The Clipboard API exists only in secure contexts (https, localhost): elsewhere the
    // caller shows the link instead.
    let available = js_sys::Reflect::get(&navigator, &"clipboard".into())
        .is_ok_and(|c| !c.is_undefined() && !c.is_null());
    if !available {
        return false;
    }
    let promise = navigator.clipboard().write_text(text);
    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
}

/// A JSON answer of the server, read for its text fields.
pub struct Answer(JsValue);

impl Answer {
    /// The body of `response` as JSON; the error is a sentence for the user.
    pub async fn of(response: &web_sys::Response) -> Result<Answer, String> {
        let json = response
            .json()
            .map_err(|_| "Unexpected answer.".to_string())?;
        wasm_bindgen_futures::JsFuture::from(json)
            .await
            .map(Answer)
            .map_err(|_| "Unexpected answer from the server.".to_string())
    }

    /// The text field `name`, if the answer has one.
    pub fn text(&self, name: &str) -> Option<String> {
        js_sys::Reflect::get(&self.0, &name.into())
            .ok()
            .and_then(|v| v.as_string())
    }
}

/// `location.origin`.
pub fn origin() -> String {
    window().location().origin().unwrap_or_default()
}

/// Runs `f` after `ms` milliseconds.
pub fn after(ms: f64, f: impl FnOnce() + 'static) {
    let cb = Closure::once_into_js(f);
    let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(
        cb.unchecked_ref(),
        ms.clamp(0.0, f64::from(i32::MAX)) as i32,
    );
}
