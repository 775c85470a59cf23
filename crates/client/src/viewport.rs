//! The camera over the infinite board: which world point is at the screen's top-left corner,
//! and how many screen pixels one world pixel covers.

use crate::geom::{Pt, Rect};

/// Closest zoom out.
pub const MIN_ZOOM: f64 = 0.05;
/// Closest zoom in.
pub const MAX_ZOOM: f64 = 16.0;
/// Zoom to fit magnifies a small drawing at most this much: enough to fill the screen with a
/// scribble, not so much that a single dot becomes a blob.
pub const FIT_MAX_ZOOM: f64 = 4.0;

/// `screen = (world - origin) * zoom`.
///
/// Invariant: `zoom` is within `MIN_ZOOM..=MAX_ZOOM` and finite, `origin` is finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    origin: Pt,
    zoom: f64,
}

impl Default for Viewport {
    fn default() -> Self {
        Self {
            origin: Pt::new(0.0, 0.0),
            zoom: 1.0,
        }
    }
}

impl Viewport {
    /// A camera with `origin` at the top-left corner, at `zoom` (clamped).
    pub fn new(origin: Pt, zoom: f64) -> Self {
        let mut v = Self::default();
        if origin.x.is_finite() && origin.y.is_finite() {
            v.origin = origin;
        }
        v.zoom = clamp_zoom(zoom);
        v
    }

    /// The world point at the screen's top-left corner.
    pub fn origin(&self) -> Pt {
        self.origin
    }

    /// Screen pixels per world pixel.
    pub fn zoom(&self) -> f64 {
        self.zoom
    }

    /// Where a world point appears on screen.
    pub fn to_screen(&self, w: Pt) -> Pt {
        Pt::new(
            (w.x - self.origin.x) * self.zoom,
            (w.y - self.origin.y) * self.zoom,
        )
    }

    /// The world point under a screen point.
    pub fn to_world(&self, s: Pt) -> Pt {
        Pt::new(
            s.x / self.zoom + self.origin.x,
            s.y / self.zoom + self.origin.y,
        )
    }

    /// The world rectangle a screen of `width × height` CSS pixels shows.
    pub fn visible(&self, width: f64, height: f64) -> Rect {
        Rect::spanning(
            self.to_world(Pt::new(0.0, 0.0)),
            self.to_world(Pt::new(width, height)),
        )
    }

    /// Moves the board by `(dx, dy)` screen pixels (the content follows the hand), snapped to
    /// whole device pixels so that a cached bitmap of the board can be shifted exactly.
    pub fn pan(&mut self, dx: f64, dy: f64, device_pixel_ratio: f64) {
        let ratio = if device_pixel_ratio.is_finite() && device_pixel_ratio > 0.0 {
            device_pixel_ratio
        } else {
            1.0
        };
        let snap = |v: f64| (v * ratio).round() / ratio;
        let (dx, dy) = (snap(dx), snap(dy));
        if dx.is_finite() && dy.is_finite() {
            self.origin.x -= dx / self.zoom;
            self.origin.y -= dy / self.zoom;
        }
    }

    /// Multiplies the zoom by `factor`, keeping the world point under `anchor` (a screen point:
    /// the pointer, or the pinch's centre) where it is.
    pub fn zoom_at(&mut self, anchor: Pt, factor: f64) {
        if !factor.is_finite() || factor <= 0.0 {
            return;
        }
        let before = self.to_world(anchor);
        self.zoom = clamp_zoom(self.zoom * factor);
        let after = self.to_world(anchor);
        self.origin.x += before.x - after.x;
        self.origin.y += before.y - after.y;
    }

    /// Frames `content` (world) in a screen of `width × height`, with `margin` screen pixels
    /// around it: zooming out for a large drawing and in (up to [`FIT_MAX_ZOOM`]) for a small
    /// one. Empty content resets.
    pub fn fit(&mut self, content: Rect, width: f64, height: f64, margin: f64) {
        if content.is_empty() || width <= 0.0 || height <= 0.0 {
            *self = Self::default();
            return;
        }
        let avail_w = (width - 2.0 * margin).max(1.0);
        let avail_h = (height - 2.0 * margin).max(1.0);
        let zoom = (avail_w / content.width().max(1.0))
            .min(avail_h / content.height().max(1.0))
            .min(FIT_MAX_ZOOM);
        self.zoom = clamp_zoom(zoom);
        let c = content.center();
        self.origin = Pt::new(
            c.x - width / 2.0 / self.zoom,
            c.y - height / 2.0 / self.zoom,
        );
    }
}

fn clamp_zoom(z: f64) -> f64 {
    if z.is_finite() {
        z.clamp(MIN_ZOOM, MAX_ZOOM)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Pt, b: Pt) -> bool {
        a.dist(b) < 1e-9
    }

    #[test]
    fn screen_and_world_round_trip() {
        let v = Viewport::new(Pt::new(100.0, -50.0), 2.0);
        let w = Pt::new(110.0, -40.0);
        assert!(close(v.to_screen(w), Pt::new(20.0, 20.0)));
        assert!(close(v.to_world(v.to_screen(w)), w));
        let r = v.visible(200.0, 100.0);
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (100.0, -50.0, 200.0, 0.0));
    }

    #[test]
    fn zoom_keeps_the_point_under_the_pointer() {
        let mut v = Viewport::default();
        let anchor = Pt::new(300.0, 200.0);
        let under = v.to_world(anchor);
        v.zoom_at(anchor, 3.0);
        assert_eq!(v.zoom(), 3.0);
        assert!(close(v.to_world(anchor), under));
        v.zoom_at(anchor, 1000.0);
        assert_eq!(v.zoom(), MAX_ZOOM);
        assert!(close(v.to_world(anchor), under));
        v.zoom_at(anchor, f64::NAN);
        assert_eq!(v.zoom(), MAX_ZOOM);
    }

    #[test]
    fn pan_moves_content_with_the_hand_in_whole_device_pixels() {
        let mut v = Viewport::new(Pt::new(0.0, 0.0), 2.0);
        let w = Pt::new(10.0, 10.0);
        let before = v.to_screen(w);
        v.pan(5.3, -2.0, 1.0);
        let after = v.to_screen(w);
        assert!(close(after, Pt::new(before.x + 5.0, before.y - 2.0)));
        v.pan(0.5, 0.0, 2.0);
        assert!(close(v.to_screen(w), Pt::new(after.x + 0.5, after.y)));
    }

    #[test]
    fn fit_frames_the_drawing() {
        let mut v = Viewport::default();
        let content = Rect::spanning(Pt::new(1000.0, 1000.0), Pt::new(3000.0, 2000.0));
        v.fit(content, 1000.0, 600.0, 50.0);
        assert_eq!(v.zoom(), 0.45);
        let c = v.to_screen(content.center());
        assert!(close(c, Pt::new(500.0, 300.0)));
        let r = v.visible(1000.0, 600.0);
        assert!(r.contains_rect(&content));
        // A small drawing is centred and magnified to fill the screen...
        let small = Rect::spanning(Pt::new(0.0, 0.0), Pt::new(250.0, 100.0));
        v.fit(small, 1000.0, 600.0, 50.0);
        assert_eq!(v.zoom(), 3.6);
        assert!(close(v.to_screen(small.center()), Pt::new(500.0, 300.0)));
        // ...but a dot only up to the fit's own limit.
        v.fit(
            Rect::spanning(Pt::new(0.0, 0.0), Pt::new(10.0, 10.0)),
            1000.0,
            600.0,
            50.0,
        );
        assert_eq!(v.zoom(), FIT_MAX_ZOOM);
        v.fit(Rect::EMPTY, 1000.0, 600.0, 50.0);
        assert_eq!(v, Viewport::default());
    }
}
