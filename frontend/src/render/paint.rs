//! Drawing strokes and text on a layer. Each stroke's geometry is built once into a `Path2D`
//! (from the SVG path data of the client crate) and reused until the stroke changes; which
//! strokes to draw, and whether their geometry must be built, the [`Scene`] decides.

use kokuban_board::{Board, Shape, Stroke};
use std::rc::Rc;

use kokuban_client::geom::{Pt, Rect, local_bounds, placement, stretched};
use kokuban_client::prefs::{Theme, hex};
use kokuban_client::scene::{Draw, Scene, StrokeMap};
use kokuban_client::shape::{
    Paint, StrokeGeometry, TEXT_FONT_FAMILY, geometry, text_anchor, text_baseline, text_box,
    text_lines,
};
use kokuban_client::viewport::Viewport;
use kokuban_protocol::Align;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement, Path2d};

use super::layer::Layer;
use crate::images::Images;

/// A stroke as the canvas draws it: its colour in the theme, and its path once built.
struct Painted {
    color: String,
    path: Option<(Path2d, StrokeGeometry)>,
}

/// The built geometry of the strokes drawn so far.
#[derive(Default)]
pub struct Paths(StrokeMap<Painted>);

impl Paths {
    /// Forgets every path and colour (a new theme).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Forgets the strokes that are gone from `board`.
    pub fn retain(&mut self, board: &Board) {
        self.0.retain(|id, _| board.get(id).is_some());
    }
}

/// Where and how strokes are drawn: the layer, the camera it is drawn with, and the theme.
pub struct Canvas<'a> {
    /// The pictures, as they arrive.
    pub images: Rc<Images>,
    /// The layer drawn on.
    pub layer: &'a Layer,
    /// The camera of that layer.
    pub camera: Viewport,
    /// Device pixels per CSS pixel.
    pub ratio: f64,
    /// Colours.
    pub theme: Theme,
}

impl Canvas<'_> {
    /// Draws `strokes`, bottom first, where they touch `region`.
    pub fn strokes<'s>(
        &self,
        scene: &mut Scene,
        paths: &mut Paths,
        strokes: impl Iterator<Item = &'s Stroke>,
        region: Rect,
    ) {
        for s in strokes {
            self.stroke(scene, paths, s, region);
        }
        self.layer.ctx().set_global_alpha(1.0);
    }

    /// Draws one stroke if it touches `region` (the caller resets the global alpha after a
    /// run of strokes).
    pub fn stroke(&self, scene: &mut Scene, paths: &mut Paths, s: &Stroke, region: Rect) {
        let how = scene.draw(s, region);
        if how == Draw::Skip {
            return;
        }
        if how == Draw::Build {
            paths.0.remove(&s.id);
        }
        let painted = paths.0.entry(s.id).or_insert_with(|| Painted {
            color: hex(self.theme.display(s.color)),
            path: None,
        });
        let ctx = self.layer.ctx();
        let k = self.camera.zoom() * self.ratio;
        // The stroke's form and offset, then the camera: its path stays as drawn.
        let m = placement(s);
        let o = self.camera.origin();
        let _ = ctx.set_transform(
            k * m.a,
            k * m.b,
            k * m.c,
            k * m.d,
            k * (m.e - o.x),
            k * (m.f - o.y),
        );
        match &s.shape {
            Shape::Text(text) => draw_text(ctx, &painted.color, s, text.as_str()),
            Shape::Image(blob) => draw_image(ctx, self.images.get(blob), s),
            Shape::Ink(_) => {
                if painted.path.is_none() {
                    painted.path = geometry(&stretched(s))
                        .and_then(|g| Path2d::new_with_path_string(&g.d).ok().map(|p| (p, g)));
                }
                if let Some((path, g)) = &painted.path {
                    draw_path(ctx, &painted.color, path, g);
                }
            }
        }
    }
}

fn draw_text(ctx: &CanvasRenderingContext2d, color: &str, s: &Stroke, text: &str) {
    let size = s.width.px();
    let at = s.points[0];
    ctx.set_global_alpha(s.look.opacity.unit());
    ctx.set_fill_style_str(color);
    ctx.set_font(&format!("{size}px {TEXT_FONT_FAMILY}"));
    ctx.set_text_align(match s.look.align {
        Align::Left => "left",
        Align::Center => "center",
        Align::Right => "right",
    });
    let x = at.x_px() + text_anchor(s.look.align, text_box(text, size).0);
    for (i, line) in text_lines(text).enumerate() {
        let _ = ctx.fill_text(line, x, at.y_px() + text_baseline(i, size));
    }
    ctx.set_text_align("left");
}

/// A picture filling its box, or a frame where it has not arrived (or cannot be had).
fn draw_image(ctx: &CanvasRenderingContext2d, img: Option<HtmlImageElement>, s: &Stroke) {
    let r = local_bounds(s);
    ctx.set_global_alpha(s.look.opacity.unit());
    match img {
        Some(img) => {
            let _ = ctx.draw_image_with_html_image_element_and_dw_and_dh(
                &img,
                r.x0,
                r.y0,
                r.width(),
                r.height(),
            );
        }
        None => {
            ctx.set_fill_style_str("rgba(128, 128, 128, 0.12)");
            ctx.fill_rect(r.x0, r.y0, r.width(), r.height());
            ctx.set_stroke_style_str("rgba(128, 128, 128, 0.6)");
            ctx.set_line_width(1.0);
            let _ = ctx.set_line_dash(&js_sys::Array::of2(&4.0.into(), &4.0.into()));
            ctx.stroke_rect(r.x0, r.y0, r.width(), r.height());
            let _ = ctx.set_line_dash(&js_sys::Array::new());
        }
    }
}

fn draw_path(ctx: &CanvasRenderingContext2d, color: &str, path: &Path2d, g: &StrokeGeometry) {
    match g.paint {
        Paint::Fill => {
            ctx.set_global_alpha(g.alpha);
            ctx.set_fill_style_str(color);
            ctx.fill_with_path_2d(path);
        }
        Paint::Stroke { width } => {
            if let Some(fill) = g.fill {
                ctx.set_global_alpha(g.alpha * fill);
                ctx.set_fill_style_str(color);
                ctx.fill_with_path_2d(path);
            }
            ctx.set_global_alpha(g.alpha);
            ctx.set_stroke_style_str(color);
            ctx.set_line_cap("round");
            ctx.set_line_join("round");
            if let Some((d, hatch_width)) = &g.hatch
                && let Ok(lines) = Path2d::new_with_path_string(d)
            {
                ctx.set_line_width(*hatch_width);
                ctx.stroke_with_path(&lines);
            }
            ctx.set_line_width(width);
            if let Some((on, off)) = g.dash {
                let pattern = js_sys::Array::of2(&on.into(), &off.into());
                let _ = ctx.set_line_dash(&pattern);
            }
            ctx.stroke_with_path(path);
            if g.dash.is_some() {
                let _ = ctx.set_line_dash(&js_sys::Array::new());
            }
        }
    }
}

/// Renders the board (or `area` of it) into a new canvas at `scale` device pixels per world
/// pixel, for a PNG export of the whole drawing.
pub fn render_offscreen(
    board: &Board,
    area: Rect,
    scale: f64,
    theme: Theme,
    images: &Rc<Images>,
) -> Option<HtmlCanvasElement> {
    let layer = Layer::offscreen()?;
    layer.resize((
        (area.width() * scale).ceil().max(1.0) as u32,
        (area.height() * scale).ceil().max(1.0) as u32,
    ));
    layer.fill(theme);
    let canvas = Canvas {
        images: images.clone(),
        layer: &layer,
        camera: Viewport::new(Pt::new(area.x0, area.y0), 1.0),
        ratio: scale,
        theme,
    };
    canvas.strokes(
        &mut Scene::new(),
        &mut Paths::default(),
        board.strokes(),
        area,
    );
    Some(layer.canvas().clone())
}
