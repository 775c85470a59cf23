//! A layer: a canvas and its 2D context, kept together so that the renderer never holds one
//! without the other.

use kokuban_client::cache::DeviceRect;
use kokuban_client::prefs::{Theme, hex};
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::browser::document;

/// A canvas (on the page, or offscreen) and its 2D context.
pub struct Layer {
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
}

impl Layer {
    /// The layer of a canvas of the page.
    pub fn of(canvas: HtmlCanvasElement) -> Option<Layer> {
        let ctx = canvas
            .get_context("2d")
            .ok()
            .flatten()?
            .dyn_into::<CanvasRenderingContext2d>()
            .ok()?;
        Some(Layer { canvas, ctx })
    }

    /// A new canvas that is not on the page.
    pub fn offscreen() -> Option<Layer> {
        let canvas = document()
            .create_element("canvas")
            .ok()?
            .dyn_into::<HtmlCanvasElement>()
            .ok()?;
        Layer::of(canvas)
    }

    /// Its context.
    pub fn ctx(&self) -> &CanvasRenderingContext2d {
        &self.ctx
    }

    /// Its canvas.
    pub fn canvas(&self) -> &HtmlCanvasElement {
        &self.canvas
    }

    /// Its size in device pixels.
    pub fn size(&self) -> (f64, f64) {
        (
            f64::from(self.canvas.width()),
            f64::from(self.canvas.height()),
        )
    }

    /// The size of the element on the page, in CSS pixels.
    pub fn css_size(&self) -> (f64, f64) {
        (
            f64::from(self.canvas.client_width()),
            f64::from(self.canvas.client_height()),
        )
    }

    /// Sets its size in device pixels (which clears it); false if it already had that size.
    pub fn resize(&self, (width, height): (u32, u32)) -> bool {
        let (w, h) = (width.max(1), height.max(1));
        if self.canvas.width() == w && self.canvas.height() == h {
            return false;
        }
        self.canvas.set_width(w);
        self.canvas.set_height(h);
        true
    }

    /// Draws in device pixels from now on.
    pub fn identity(&self) {
        let _ = self.ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    }

    /// Fills all of it with the board's background.
    pub fn fill(&self, theme: Theme) {
        self.identity();
        let (w, h) = self.size();
        self.ctx.set_fill_style_str(&hex(theme.background()));
        self.ctx.fill_rect(0.0, 0.0, w, h);
    }

    /// Makes it transparent.
    pub fn clear(&self) {
        self.identity();
        let (w, h) = self.size();
        self.ctx.clear_rect(0.0, 0.0, w, h);
    }

    /// Restricts drawing to `r` (device pixels) and fills it with the background, until
    /// [`Layer::unclip`].
    pub fn clip_and_fill(&self, r: DeviceRect, theme: Theme) {
        let ctx = &self.ctx;
        ctx.save();
        self.identity();
        ctx.begin_path();
        ctx.rect(r.x, r.y, r.w, r.h);
        ctx.clip();
        ctx.set_fill_style_str(&hex(theme.background()));
        ctx.fill_rect(r.x, r.y, r.w, r.h);
    }

    /// Ends [`Layer::clip_and_fill`].
    pub fn unclip(&self) {
        self.ctx.restore();
    }

    /// Copies `other` onto this layer with its top-left corner at `(x, y)` device pixels.
    pub fn copy(&self, other: &Layer, x: f64, y: f64) {
        self.identity();
        let _ = self
            .ctx
            .draw_image_with_html_canvas_element(&other.canvas, x, y);
    }

    /// Copies `other` scaled by `scale`, its top-left corner at `(x, y)`.
    pub fn copy_scaled(&self, other: &Layer, x: f64, y: f64, scale: f64) {
        self.identity();
        let (w, h) = other.size();
        let _ = self.ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
            &other.canvas,
            x,
            y,
            w * scale,
            h * scale,
        );
    }
}
