//! How the wheel, the trackpad and two fingers move the camera.
//!
//! The conventions are those of Excalidraw, tldraw and Figma, which is what people coming from
//! them reach for: the wheel and a two-finger trackpad scroll *pan*; Ctrl (⌘ on a Mac) with the
//! wheel *zooms* around the pointer. A trackpad pinch arrives in Chromium, Firefox and Safari
//! as a wheel event with Ctrl held and small deltas, so it zooms as the fingers spread. A touch
//! pinch (two fingers on a touch screen) pans with the fingers' midpoint and zooms by how far
//! apart they moved.

use crate::geom::Pt;
use crate::viewport::Viewport;

/// `WheelEvent.deltaMode` 1 (lines) in pixels: what browsers scroll for one line.
pub const LINE_PX: f64 = 16.0;
/// The largest zoom step one wheel event makes, as a change of `ln(zoom)`: a mouse wheel's
/// notch (a delta of 100 or more) zooms by about the zoom buttons' 25%, never more.
const MAX_WHEEL_ZOOM_STEP: f64 = 0.223;
/// Browsers turn a trackpad pinch into Ctrl+wheel events whose `deltaY` is `-100 × ln(scale)`:
/// dividing by this gives back the scale the fingers made.
const PINCH_DELTA_PER_LN_ZOOM: f64 = 100.0;

/// What a wheel event does to the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WheelMove {
    /// Move the board by this many screen pixels (the content follows, as with a drag).
    Pan {
        /// Rightwards.
        dx: f64,
        /// Downwards.
        dy: f64,
    },
    /// Multiply the zoom by this factor around the pointer.
    Zoom(f64),
}

/// A wheel delta in pixels, whatever unit the browser reported it in (`deltaMode` 0 pixels,
/// 1 lines, 2 pages of `page_px`).
pub fn wheel_pixels(delta: f64, mode: u32, page_px: f64) -> f64 {
    let px = match mode {
        1 => delta * LINE_PX,
        2 => delta * page_px,
        _ => delta,
    };
    if px.is_finite() { px } else { 0.0 }
}

/// What a wheel event of `(dx, dy)` pixels does: Ctrl or ⌘ (or a trackpad pinch) zooms,
/// anything else pans; Shift turns a mouse's vertical wheel into a sideways pan.
pub fn wheel(dx: f64, dy: f64, ctrl: bool, shift: bool) -> WheelMove {
    if ctrl {
        return WheelMove::Zoom(wheel_zoom_factor(dy));
    }
    if shift && dx == 0.0 {
        return WheelMove::Pan { dx: -dy, dy: 0.0 };
    }
    // Scrolling down shows what is below: the content moves up.
    WheelMove::Pan { dx: -dx, dy: -dy }
}

/// The zoom factor of a Ctrl+wheel movement of `delta_y` pixels: exactly the scale of a
/// trackpad pinch, and about one zoom step for a notch of a mouse wheel.
pub fn wheel_zoom_factor(delta_y: f64) -> f64 {
    if !delta_y.is_finite() {
        return 1.0;
    }
    let step =
        (-delta_y / PINCH_DELTA_PER_LN_ZOOM).clamp(-MAX_WHEEL_ZOOM_STEP, MAX_WHEEL_ZOOM_STEP);
    step.exp()
}

/// Two fingers moved from `from` to `to` (screen points): the board follows their midpoint and
/// zooms by the change of their distance, so that the world points under the fingers stay
/// under them.
pub fn pinch(view: &mut Viewport, from: (Pt, Pt), to: (Pt, Pt), device_pixel_ratio: f64) {
    let (m0, m1) = (from.0.lerp(from.1, 0.5), to.0.lerp(to.1, 0.5));
    let (d0, d1) = (from.0.dist(from.1), to.0.dist(to.1));
    view.pan(m1.x - m0.x, m1.y - m0.y, device_pixel_ratio);
    // Fingers that (nearly) touch say nothing reliable about scale.
    if d0 > 1.0 && d1 > 1.0 {
        view.zoom_at(m1, d1 / d0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_pans_and_ctrl_wheel_zooms() {
        // A mouse wheel notch down: the board scrolls up, as a page would.
        assert_eq!(
            wheel(0.0, 100.0, false, false),
            WheelMove::Pan {
                dx: 0.0,
                dy: -100.0
            }
        );
        // A two-finger trackpad scroll moves both ways at once.
        assert_eq!(
            wheel(-12.5, 30.0, false, false),
            WheelMove::Pan {
                dx: 12.5,
                dy: -30.0
            }
        );
        // Shift with a plain wheel pans sideways.
        assert_eq!(
            wheel(0.0, 100.0, false, true),
            WheelMove::Pan {
                dx: -100.0,
                dy: 0.0
            }
        );
        let WheelMove::Zoom(out) = wheel(0.0, 100.0, true, false) else {
            panic!("Ctrl+wheel zooms")
        };
        let WheelMove::Zoom(inward) = wheel(0.0, -100.0, true, false) else {
            panic!("Ctrl+wheel zooms")
        };
        assert!(out < 1.0 && inward > 1.0);
        // One notch is about one zoom step of the buttons (25%), and opposite notches cancel.
        assert!((inward - 1.25).abs() < 0.01, "{inward}");
        assert!((inward * out - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_trackpad_pinch_zooms_by_the_fingers_scale() {
        // Chromium reports a pinch to 110% as deltaY = -100 × ln(1.1).
        let f = wheel_zoom_factor(-100.0 * 1.1f64.ln());
        assert!((f - 1.1).abs() < 1e-12, "{f}");
        assert_eq!(wheel_zoom_factor(f64::NAN), 1.0);
    }

    #[test]
    fn wheel_deltas_in_lines_and_pages_become_pixels() {
        assert_eq!(wheel_pixels(3.0, 0, 800.0), 3.0);
        assert_eq!(wheel_pixels(3.0, 1, 800.0), 48.0);
        assert_eq!(wheel_pixels(-1.0, 2, 800.0), -800.0);
        assert_eq!(wheel_pixels(f64::INFINITY, 0, 800.0), 0.0);
    }

    #[test]
    fn a_pinch_keeps_the_world_under_the_fingers() {
        let mut v = Viewport::default();
        let (a, b) = (Pt::new(100.0, 100.0), Pt::new(200.0, 100.0));
        let under_a = v.to_world(a);
        // The fingers spread to twice their distance around the same midpoint...
        let (a1, b1) = (Pt::new(50.0, 100.0), Pt::new(250.0, 100.0));
        pinch(&mut v, (a, b), (a1, b1), 1.0);
        assert!((v.zoom() - 2.0).abs() < 1e-12);
        assert!(v.to_world(a1).dist(under_a) < 1e-9);
        // ...then both move right by 40 px: the board follows them.
        let before = v.to_world(Pt::new(90.0, 100.0));
        pinch(
            &mut v,
            (a1, b1),
            (Pt::new(90.0, 100.0), Pt::new(290.0, 100.0)),
            1.0,
        );
        assert!((v.zoom() - 2.0).abs() < 1e-12);
        assert!(v.to_world(Pt::new(130.0, 100.0)).dist(before) < 1e-9);
    }
}
