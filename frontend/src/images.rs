//! Images on the board. A pasted, dropped or picked picture is uploaded to the room's blobs
//! (`POST /api/rooms/{room}/blobs` with the edit token), then placed by an `Image` op naming
//! its hash. Every tab fetches the bytes it has to show (`GET …/blobs/{hash}` with its own
//! token: an `<img>` cannot send one), decodes them once into an `<img>` on an object URL and
//! keeps it for the renderer, which draws a frame where a picture is still on its way.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use kokuban_client::Editor;
use kokuban_client::link::RoomLink;
use kokuban_protocol::BlobHash;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, HtmlCanvasElement, HtmlImageElement, Request, RequestInit, Response, Url};

use crate::browser::{document, window};

/// The image types the server stores (never SVG: it can carry script).
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];

/// The pictures this tab has asked for, by hash.
pub struct Images {
    editor: Rc<RefCell<Editor>>,
    shown: RefCell<HashMap<BlobHash, Entry>>,
    /// A picture arrived since the renderer last asked.
    arrived: Cell<bool>,
}

enum Entry {
    /// Asked for.
    Loading,
    Ready(HtmlImageElement),
    /// Not had (the network, a busy server, or an image of another board): the frame stays,
    /// and it is asked for again once `again` (ms) has passed.
    Failed {
        tries: u32,
        again: f64,
    },
}

/// The wait before a picture that could not be had is asked for again: doubling from two
/// seconds to five minutes, so that a blip heals at once and a picture that is not there
/// costs the server little.
fn retry_after_ms(tries: u32) -> f64 {
    (2000.0 * 2f64.powi(tries.min(10) as i32)).min(300_000.0)
}

impl Images {
    /// Fetches with the token of `editor`'s link at the time of each fetch (links can be
    /// reset while the tab is open).
    pub fn new(editor: Rc<RefCell<Editor>>) -> Rc<Self> {
        Rc::new(Self {
            editor,
            shown: RefCell::new(HashMap::new()),
            arrived: Cell::new(false),
        })
    }

    /// The decoded picture, once here; the first call for a hash sends for it.
    pub fn get(self: &Rc<Self>, blob: &BlobHash) -> Option<HtmlImageElement> {
        let mut shown = self.shown.borrow_mut();
        let tries = match shown.get(blob) {
            Some(Entry::Ready(img)) => return Some(img.clone()),
            Some(Entry::Loading) => return None,
            Some(&Entry::Failed { again, .. }) if crate::browser::now() < again => return None,
            Some(&Entry::Failed { tries, .. }) => tries,
            None => 0,
        };
        shown.insert(*blob, Entry::Loading);
        let me = self.clone();
        let blob = *blob;
        // Later, outside the frame that asked (which holds the editor).
        leptos::task::spawn_local(async move {
            let link = me.editor.borrow().link().cloned();
            let img = match link {
                Some(link) => match fetch(&link, &blob).await {
                    Some(bytes) => decode(&bytes).await,
                    None => None,
                },
                None => None,
            };
            let entry = match img {
                Some(img) => Entry::Ready(img),
                None => {
                    let wait = retry_after_ms(tries);
                    // The board is drawn again then, which asks for it again.
                    let later = me.clone();
                    crate::browser::after(wait, move || later.arrived.set(true));
                    Entry::Failed {
                        tries: tries + 1,
                        again: crate::browser::now() + wait,
                    }
                }
            };
            me.shown.borrow_mut().insert(blob, entry);
            me.arrived.set(true);
        });
        None
    }

    /// Whether a picture arrived (or failed, or may be asked for again) since the last call:
    /// the board must be drawn again where it shows.
    pub fn take_arrived(&self) -> bool {
        self.arrived.replace(false)
    }

    /// Keeps a picture this tab uploaded, so that it is not fetched back.
    fn keep(&self, blob: BlobHash, img: HtmlImageElement) {
        self.shown.borrow_mut().insert(blob, Entry::Ready(img));
        self.arrived.set(true);
    }

    /// The picture as a PNG `data:` URL (for a standalone SVG), if it is here.
    pub fn data_url(&self, blob: &BlobHash) -> Option<String> {
        let img = match self.shown.borrow().get(blob) {
            Some(Entry::Ready(img)) => img.clone(),
            _ => return None,
        };
        let canvas: HtmlCanvasElement =
            document().create_element("canvas").ok()?.dyn_into().ok()?;
        canvas.set_width(img.natural_width());
        canvas.set_height(img.natural_height());
        let ctx = canvas
            .get_context("2d")
            .ok()??
            .dyn_into::<web_sys::CanvasRenderingContext2d>()
            .ok()?;
        ctx.draw_image_with_html_image_element(&img, 0.0, 0.0)
            .ok()?;
        canvas.to_data_url().ok()
    }

    /// Uploads `file` to the room and returns its hash and its size in pixels; the error is a
    /// sentence for the user.
    pub async fn upload(&self, file: &Blob) -> Result<(BlobHash, (f64, f64)), String> {
        let kind = file.type_();
        if !IMAGE_TYPES.contains(&kind.as_str()) {
            return Err("Only PNG, JPEG, WebP and GIF pictures can be added.".into());
        }
        let link = self.editor.borrow().link().cloned();
        let Some((link, edit)) = link.and_then(|l| l.edit.clone().map(|e| (l, e))) else {
            return Err("This link may only view the board.".into());
        };
        // Decoded first: bytes the browser cannot show are not worth sending.
        let img = decode(file)
            .await
            .ok_or("This picture cannot be read.".to_string())?;
        let unprepared = |_| "Could not prepare the upload.".to_string();
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_body(file);
        let path = format!("/api/rooms/{}/blobs", link.room);
        let request = Request::new_with_str_and_init(&path, &init).map_err(unprepared)?;
        let headers = request.headers();
        headers
            .set("Authorization", &format!("Bearer {}", edit.as_str()))
            .map_err(unprepared)?;
        headers.set("Content-Type", &kind).map_err(unprepared)?;
        let response: Response = JsFuture::from(window().fetch_with_request(&request))
            .await
            .map_err(|_| "The picture was not added: the server cannot be reached.".to_string())?
            .dyn_into()
            .map_err(|_| "Unexpected answer from the server.".to_string())?;
        let answer = crate::browser::Answer::of(&response).await?;
        if response.status() != 201 {
            let why = answer
                .text("error")
                .unwrap_or_else(|| format!("error {}", response.status()));
            return Err(format!("The picture was not added: {why}."));
        }
        let blob = answer
            .text("hash")
            .and_then(|h| BlobHash::parse(&h).ok())
            .ok_or("Unexpected answer from the server.".to_string())?;
        let size = (
            f64::from(img.natural_width()),
            f64::from(img.natural_height()),
        );
        self.keep(blob, img);
        Ok((blob, size))
    }
}

/// The bytes of `blob` as the room serves them to `link`'s token.
async fn fetch(link: &RoomLink, blob: &BlobHash) -> Option<Blob> {
    let token = link.token()?;
    let init = RequestInit::new();
    init.set_method("GET");
    let path = format!("/api/rooms/{}/blobs/{blob}", link.room);
    let request = Request::new_with_str_and_init(&path, &init).ok()?;
    request
        .headers()
        .set("Authorization", &format!("Bearer {}", token.as_str()))
        .ok()?;
    let response: Response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    JsFuture::from(response.blob().ok()?)
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// `bytes` decoded into an `<img>` (its object URL is let go once decoded).
async fn decode(bytes: &Blob) -> Option<HtmlImageElement> {
    let url = Url::create_object_url_with_blob(bytes).ok()?;
    let img = HtmlImageElement::new().ok()?;
    img.set_src(&url);
    let decoded = JsFuture::from(img.decode()).await;
    let _ = Url::revoke_object_url(&url);
    decoded.ok()?;
    (img.natural_width() > 0 && img.natural_height() > 0).then_some(img)
}
