//! The overlay above the board: the selection, the marquee, laser trails and others' cursors. It is a layer
//! of its own so that the board's pixels are only ink and background.

use kokuban_client::Editor;
use kokuban_client::geom::{Pt, visual_bounds};
use kokuban_client::prefs::hex;
use kokuban_client::presence::{LaserTrail, cursor_on_screen};
use kokuban_client::tools::Handle;
use kokuban_client::viewport::Viewport;
use web_sys::CanvasRenderingContext2d;

use super::layer::Layer;

/// The selection's and the marquee's colour.
const ACCENT: &str = "#4c6ef5";
/// A stretch handle's side, in screen pixels.
const HANDLE_PX: f64 = 9.0;

/// The selection's handles: squares to stretch it, a knob on a stem to turn it.
fn draw_handles(ctx: &CanvasRenderingContext2d, view: &Viewport, handles: &[(Handle, Pt)]) {
    let top = handles
        .iter()
        .find(|(h, _)| *h == Handle::Stretch(0, -1))
        .map(|(_, at)| view.to_screen(*at));
    if handles.is_empty() {
        return;
    }
    let corner = |hx, hy| {
        handles
            .iter()
            .find(|(h, _)| *h == Handle::Stretch(hx, hy))
            .map(|(_, at)| view.to_screen(*at))
    };
    ctx.set_line_width(1.0);
    if let (Some(a), Some(c)) = (corner(-1, -1), corner(1, 1)) {
        // The frame the handles stretch: the shapes' own, their lines' width left out.
        ctx.stroke_rect(a.x, a.y, c.x - a.x, c.y - a.y);
    }
    ctx.set_fill_style_str("#ffffff");
    ctx.set_line_width(1.5);
    for (handle, at) in handles {
        let p = view.to_screen(*at);
        match handle {
            Handle::Stretch(..) => {
                let h = HANDLE_PX / 2.0;
                ctx.fill_rect(p.x - h, p.y - h, HANDLE_PX, HANDLE_PX);
                ctx.stroke_rect(p.x - h, p.y - h, HANDLE_PX, HANDLE_PX);
            }
            Handle::Turn => {
                if let Some(top) = top {
                    ctx.begin_path();
                    ctx.move_to(top.x, top.y);
                    ctx.line_to(p.x, p.y);
                    ctx.stroke();
                }
                ctx.begin_path();
                let _ = ctx.arc(p.x, p.y, HANDLE_PX / 2.0 + 0.5, 0.0, std::f64::consts::TAU);
                ctx.fill();
                ctx.stroke();
            }
        }
    }
}

/// Draws the overlay for `now`; `drawn` says whether it holds anything, so that an idle
/// overlay is not cleared on every frame.
pub fn draw(layer: &Layer, editor: &Editor, now: f64, ratio: f64, drawn: &mut bool) {
    let presence = editor.presence();
    let tools = editor.tools();
    let busy = presence.is_animating(now)
        || !editor.laser().is_empty(now)
        || !tools.selection().is_empty()
        || tools.marquee().is_some();
    if !busy && !*drawn {
        return;
    }
    *drawn = busy;
    layer.clear();
    let ctx = layer.ctx();
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    let view = editor.viewport();
    ctx.set_line_width(1.5);
    ctx.set_stroke_style_str(ACCENT);
    let dash = js_sys::Array::of2(&5.0.into(), &4.0.into());
    let _ = ctx.set_line_dash(&dash);
    let board = editor.board();
    for id in tools.selection() {
        if let Some(s) = board.get(id) {
            let b = visual_bounds(s).inflate(4.0 / view.zoom());
            let (a, c) = (
                view.to_screen(Pt::new(b.x0, b.y0)),
                view.to_screen(Pt::new(b.x1, b.y1)),
            );
            ctx.stroke_rect(a.x, a.y, c.x - a.x, c.y - a.y);
        }
    }
    let _ = ctx.set_line_dash(&js_sys::Array::new());
    draw_handles(ctx, view, &tools.handles(board, view.zoom()));
    let _ = ctx.set_line_dash(&dash);
    if let Some(m) = tools.marquee() {
        let (a, c) = (
            view.to_screen(Pt::new(m.x0, m.y0)),
            view.to_screen(Pt::new(m.x1, m.y1)),
        );
        ctx.set_fill_style_str("rgba(76, 110, 245, 0.08)");
        ctx.fill_rect(a.x, a.y, c.x - a.x, c.y - a.y);
        ctx.stroke_rect(a.x, a.y, c.x - a.x, c.y - a.y);
    }
    let _ = ctx.set_line_dash(&js_sys::Array::new());
    let own = (editor.laser(), editor.prefs().color);
    for (trail, color) in presence.laser_trails(now).chain(std::iter::once(own)) {
        draw_trail(ctx, view, trail, &hex(color), now);
    }
    ctx.set_font("600 12px system-ui, sans-serif");
    let screen = layer.css_size();
    for (cursor, alpha, name, color) in presence.visible_cursors(now) {
        let p = view.to_screen(cursor.at);
        if !cursor_on_screen(p, screen) {
            continue;
        }
        let color = hex(color);
        ctx.set_global_alpha(alpha);
        ctx.set_fill_style_str(&color);
        ctx.begin_path();
        ctx.move_to(p.x, p.y);
        ctx.line_to(p.x + 3.5, p.y + 15.0);
        ctx.line_to(p.x + 7.0, p.y + 10.0);
        ctx.line_to(p.x + 13.0, p.y + 10.0);
        ctx.close_path();
        ctx.fill();
        ctx.set_stroke_style_str("#ffffff");
        ctx.set_line_width(1.0);
        ctx.stroke();
        let width = ctx.measure_text(name).map_or(40.0, |m| m.width());
        let (x, y) = (p.x + 12.0, p.y + 14.0);
        ctx.set_fill_style_str(&color);
        ctx.fill_rect(x, y, width + 10.0, 18.0);
        ctx.set_fill_style_str("#ffffff");
        let _ = ctx.fill_text(name, x + 5.0, y + 13.0);
    }
    ctx.set_global_alpha(1.0);
}

/// A laser trail: segments that fade with the age of their newer end, and a dot at its head.
fn draw_trail(
    ctx: &CanvasRenderingContext2d,
    view: &Viewport,
    trail: &LaserTrail,
    color: &str,
    now: f64,
) {
    let points: Vec<_> = trail
        .visible(now)
        .map(|(p, alpha)| (view.to_screen(p), alpha))
        .collect();
    ctx.set_stroke_style_str(color);
    ctx.set_fill_style_str(color);
    ctx.set_line_cap("round");
    ctx.set_line_width(4.0);
    for pair in points.windows(2) {
        let ((a, _), (b, alpha)) = (pair[0], pair[1]);
        ctx.set_global_alpha(alpha * 0.8);
        ctx.begin_path();
        ctx.move_to(a.x, a.y);
        ctx.line_to(b.x, b.y);
        ctx.stroke();
    }
    if let Some(&(head, alpha)) = points.last() {
        ctx.set_global_alpha(alpha);
        ctx.begin_path();
        let _ = ctx.arc(head.x, head.y, 4.0, 0.0, std::f64::consts::TAU);
        ctx.fill();
    }
    ctx.set_global_alpha(1.0);
}
