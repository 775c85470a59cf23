//! SVG export: the board (or a part of it) as a standalone SVG document, from the same path
//! geometry the canvas draws.

use std::fmt::Write as _;

use kokuban_board::{Board, Shape};
use kokuban_protocol::{Align, BlobHash, Form};

use crate::geom::{Rect, visual_bounds};
use crate::prefs::{Theme, hex};
use crate::shape::{
    Paint, TEXT_FONT_FAMILY, geometry, num, text_anchor, text_baseline, text_box, text_lines,
};

/// Whether `url` is a base64 `data:` URL of a raster image, and nothing that could break out
/// of the attribute it is written into.
fn is_image_data_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("data:image/") else {
        return false;
    };
    let Some((kind, data)) = rest.split_once(";base64,") else {
        return false;
    };
    matches!(kind, "png" | "jpeg" | "webp" | "gif")
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Space around the drawing when the whole board is exported, in pixels.
pub const MARGIN: f64 = 24.0;

/// The bounds of everything visible on the board (empty for an empty board).
pub fn content_bounds(board: &Board) -> Rect {
    board
        .strokes()
        .map(visual_bounds)
        .fold(Rect::EMPTY, Rect::union)
}

/// An SVG document of `area` (world pixels), or of the whole drawing when `None`, on the
/// theme's background. `image` gives an image's bytes as a `data:` URL, so that the document
/// stands alone; an image it cannot give is drawn as an empty frame.
pub fn export(
    board: &Board,
    area: Option<Rect>,
    theme: Theme,
    image: &dyn Fn(&BlobHash) -> Option<String>,
) -> String {
    let area = match area {
        Some(a) if !a.is_empty() => a,
        _ => {
            let c = content_bounds(board);
            if c.is_empty() {
                Rect {
                    x0: 0.0,
                    y0: 0.0,
                    x1: 1.0,
                    y1: 1.0,
                }
            } else {
                c.inflate(MARGIN)
            }
        }
    };
    let mut out = String::with_capacity(256 + board.point_count() * 16);
    let n = |out: &mut String, v: f64| num(out, v);
    out.push_str("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"");
    n(&mut out, area.width());
    out.push_str("\" height=\"");
    n(&mut out, area.height());
    out.push_str("\" viewBox=\"");
    for (i, v) in [area.x0, area.y0, area.width(), area.height()]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        n(&mut out, v);
    }
    out.push_str("\">\n<rect x=\"");
    n(&mut out, area.x0);
    out.push_str("\" y=\"");
    n(&mut out, area.y0);
    out.push_str("\" width=\"100%\" height=\"100%\" fill=\"");
    out.push_str(&hex(theme.background()));
    out.push_str("\"/>\n");
    for stroke in board.strokes() {
        if !visual_bounds(stroke).intersects(&area) {
            continue;
        }
        let color = hex(theme.display(stroke.color));
        let (dx, dy) = crate::geom::offset_px(stroke);
        let mut translate = String::new();
        if stroke.form != Form::default() {
            // Stretched or turned: the whole placement as one matrix.
            let m = crate::geom::placement(stroke);
            translate.push_str(" transform=\"matrix(");
            // The matrix to 1e-6 (a turn to hundredths would bend a long line), the
            // translation to hundredths of a pixel, as every coordinate.
            for v in [m.a, m.b, m.c, m.d] {
                let v = (v * 1e6).round() / 1e6;
                let _ = write!(translate, "{} ", if v == 0.0 { 0.0 } else { v });
            }
            n(&mut translate, m.e);
            translate.push(' ');
            n(&mut translate, m.f);
            translate.push_str(")\"");
        } else if (dx, dy) != (0.0, 0.0) {
            translate.push_str(" transform=\"translate(");
            n(&mut translate, dx);
            translate.push(' ');
            n(&mut translate, dy);
            translate.push_str(")\"");
        }
        match &stroke.shape {
            Shape::Ink(_) => {
                let Some(g) = geometry(&crate::geom::stretched(stroke)) else {
                    continue;
                };
                if let Some((lines, width)) = &g.hatch {
                    // The hachure under the outline, as the canvas draws it.
                    out.push_str("<path d=\"");
                    out.push_str(lines);
                    out.push('"');
                    out.push_str(&translate);
                    let _ = write!(out, " fill=\"none\" stroke=\"{color}\" stroke-width=\"");
                    n(&mut out, *width);
                    out.push_str("\" stroke-linecap=\"round\"");
                    opacity_attr(&mut out, g.alpha);
                    out.push_str("/>\n");
                }
                out.push_str("<path d=\"");
                out.push_str(&g.d);
                out.push('"');
                out.push_str(&translate);
                match g.paint {
                    Paint::Fill => {
                        let _ = write!(out, " fill=\"{color}\"");
                    }
                    Paint::Stroke { width } => {
                        match g.fill {
                            None => out.push_str(" fill=\"none\""),
                            Some(fill) => {
                                let _ = write!(out, " fill=\"{color}\"");
                                if fill < 1.0 {
                                    out.push_str(" fill-opacity=\"");
                                    n(&mut out, fill);
                                    out.push('"');
                                }
                            }
                        }
                        let _ = write!(out, " stroke=\"{color}\" stroke-width=\"");
                        n(&mut out, width);
                        out.push_str("\" stroke-linecap=\"round\" stroke-linejoin=\"round\"");
                        if let Some((on, off)) = g.dash {
                            out.push_str(" stroke-dasharray=\"");
                            n(&mut out, on);
                            out.push(' ');
                            n(&mut out, off);
                            out.push('"');
                        }
                    }
                }
                opacity_attr(&mut out, g.alpha);
                out.push_str("/>\n");
            }
            Shape::Text(text) => {
                let at = stroke.points[0];
                let size = stroke.width.px();
                out.push_str("<text");
                out.push_str(&translate);
                let _ = write!(
                    out,
                    " fill=\"{color}\" font-family=\"{TEXT_FONT_FAMILY}\" font-size=\""
                );
                n(&mut out, size);
                out.push('"');
                let look = stroke.look;
                opacity_attr(&mut out, look.opacity.unit());
                out.push_str(match look.align {
                    Align::Left => ">",
                    Align::Center => " text-anchor=\"middle\">",
                    Align::Right => " text-anchor=\"end\">",
                });
                let x = at.x_px() + text_anchor(look.align, text_box(text.as_str(), size).0);
                for (i, line) in text_lines(text.as_str()).enumerate() {
                    out.push_str("<tspan x=\"");
                    n(&mut out, x);
                    out.push_str("\" y=\"");
                    n(&mut out, at.y_px() + text_baseline(i, size));
                    out.push_str("\">");
                    escape(&mut out, line);
                    out.push_str("</tspan>");
                }
                out.push_str("</text>\n");
            }
            Shape::Image(blob) => {
                let r = crate::geom::local_bounds(stroke);
                let opacity = stroke.look.opacity;
                let place = |out: &mut String| {
                    out.push_str(" x=\"");
                    n(out, r.x0);
                    out.push_str("\" y=\"");
                    n(out, r.y0);
                    out.push_str("\" width=\"");
                    n(out, r.width());
                    out.push_str("\" height=\"");
                    n(out, r.height());
                    out.push('"');
                    out.push_str(&translate);
                    opacity_attr(out, opacity.unit());
                };
                match image(blob).filter(|url| is_image_data_url(url)) {
                    Some(url) => {
                        out.push_str("<image");
                        place(&mut out);
                        let _ = writeln!(out, " preserveAspectRatio=\"none\" href=\"{url}\"/>");
                    }
                    None => {
                        out.push_str("<rect");
                        place(&mut out);
                        let _ = writeln!(
                            out,
                            " fill=\"none\" stroke=\"{color}\" stroke-dasharray=\"4 4\"/>"
                        );
                    }
                }
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Writes ` opacity="…"` for a factor below 1; a full opacity is SVG's default and is left out.
fn opacity_attr(out: &mut String, alpha: f64) {
    if alpha < 1.0 {
        out.push_str(" opacity=\"");
        num(out, alpha);
        out.push('"');
    }
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{Bounded, Color, MemberId, Op, Placement, Point, Text, Tool, Width};

    use super::*;
    use crate::prefs::INK;
    use crate::rng::stroke_id_from;

    fn board() -> Board {
        let mut b = Board::new();
        let me = MemberId(1);
        b.apply(
            me,
            &Op::StrokeBegin {
                id: stroke_id_from(1),
                tool: Tool::Line,
                color: INK,
                width: Width::from_px(4.0),
                first: Point::from_px(0.0, 0.0, 0.5).unwrap(),
            },
        );
        b.apply(
            me,
            &Op::StrokePoints(
                kokuban_protocol::StrokePoints::new(
                    stroke_id_from(1),
                    1,
                    kokuban_protocol::Points::new(vec![Point::from_px(100.0, 50.0, 0.5).unwrap()])
                        .unwrap(),
                )
                .unwrap(),
            ),
        );
        b.apply(
            me,
            &Op::Text {
                id: stroke_id_from(2),
                at: Point::from_px(10.0, 60.0, 0.5).unwrap(),
                color: Color::rgb(255, 0, 0),
                size: Width::from_px(20.0),
                text: Text::new("a<b & c\nd").unwrap(),
            },
        );
        b
    }

    #[test]
    fn exports_paths_and_escaped_text_within_margins() {
        let svg = export(&board(), None, Theme::Light, &|_| None);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(
            "<path d=\"M0 0L100 50\" fill=\"none\" stroke=\"#1e1e1e\" stroke-width=\"4\""
        ));
        assert!(svg.contains(">a&lt;b &amp; c</tspan><tspan x=\"10\" y=\"105\">d</tspan>"));
        assert!(svg.contains("fill=\"#fbfaf7\""));
        // The view box holds the drawing plus the margin.
        assert!(svg.contains("viewBox=\"-27 -27 "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn dark_theme_moves_and_areas() {
        let mut b = board();
        let to = Bounded::new(vec![Placement::new(stroke_id_from(1), 80, 0).unwrap()]).unwrap();
        b.apply(MemberId(1), &Op::Move { to });
        let svg = export(&b, None, Theme::Dark, &|_| None);
        assert!(svg.contains("stroke=\"#f4f1e8\""));
        assert!(svg.contains("transform=\"translate(10 0)\""));
        // An area away from everything holds only the background.
        let far = Rect {
            x0: 1000.0,
            y0: 1000.0,
            x1: 1100.0,
            y1: 1100.0,
        };
        let empty = export(&b, Some(far), Theme::Dark, &|_| None);
        assert!(!empty.contains("<path") && !empty.contains("<text"));
        assert!(export(&Board::new(), None, Theme::Light, &|_| None).contains("width=\"1\""));
    }

    #[test]
    fn looks_show_as_fill_dashes_opacity_and_text_anchors() {
        use kokuban_protocol::{Align, Dash, Fill, Look, LookOf, Opacity};
        let mut b = board();
        let look = Look {
            fill: Fill::Tint,
            dash: Dash::Dashed,
            opacity: Opacity::new(50).unwrap(),
            align: Align::Center,
        };
        let to = [1, 2].map(|n| LookOf {
            id: stroke_id_from(n),
            look,
        });
        b.apply(
            MemberId(1),
            &Op::Look {
                to: Bounded::new(to.to_vec()).unwrap(),
            },
        );
        let svg = export(&b, None, Theme::Light, &|_| None);
        // A line has no inside to fill; its dashes follow its width (4 px).
        assert!(
            svg.contains("<path d=\"M0 0L100 50\" fill=\"none\" stroke=\"#1e1e1e\""),
            "{svg}"
        );
        assert!(
            svg.contains("stroke-dasharray=\"16 12\" opacity=\"0.5\""),
            "{svg}"
        );
        assert!(
            svg.contains("opacity=\"0.5\" text-anchor=\"middle\">"),
            "{svg}"
        );
    }

    #[test]
    fn a_hachured_rectangle_exports_its_lines_under_its_outline() {
        use kokuban_protocol::{Fill, Look, LookOf, Points, StrokePoints};
        let mut b = Board::new();
        let id = stroke_id_from(9);
        let me = MemberId(1);
        b.apply(
            me,
            &Op::StrokeBegin {
                id,
                tool: Tool::Rect,
                color: INK,
                width: Width::from_px(2.0),
                first: Point::from_px(0.0, 0.0, 0.5).unwrap(),
            },
        );
        let corner = Points::new(vec![Point::from_px(80.0, 40.0, 0.5).unwrap()]).unwrap();
        b.apply(
            me,
            &Op::StrokePoints(StrokePoints::new(id, 1, corner).unwrap()),
        );
        let look = Look {
            fill: Fill::Hachure,
            ..Look::default()
        };
        b.apply(
            me,
            &Op::Look {
                to: Bounded::new(vec![LookOf { id, look }]).unwrap(),
            },
        );
        let svg = export(&b, None, Theme::Light, &|_| None);
        let hatch = svg
            .find("stroke-width=\"1\" stroke-linecap=\"round\"/>")
            .unwrap();
        let outline = svg.find("<path d=\"M0 0H80V40H0Z\"").unwrap();
        assert!(hatch < outline, "{svg}");
        assert!(svg.matches('M').count() > 8, "{svg}");
    }

    /// An image is embedded as its data URL, at its box and opacity, so the file stands alone;
    /// one whose bytes are not at hand (or not a raster data URL) is an empty frame.
    #[test]
    fn images_are_embedded_and_a_missing_one_is_a_frame() {
        use kokuban_protocol::{BlobHash, Look, LookOf, PlacedImage};
        let mut b = Board::new();
        let (shown, missing) = (BlobHash([1; 32]), BlobHash([2; 32]));
        let at = |x: f64, y: f64| Point::from_px(x, y, 0.0).unwrap();
        for (n, blob, x) in [(1, shown, 0.0), (2, missing, 200.0)] {
            let image = PlacedImage::new(stroke_id_from(n), blob, at(x, 0.0), at(x + 120.0, 80.0));
            b.apply(MemberId(1), &Op::Image(image.unwrap()));
        }
        let look = Look {
            opacity: kokuban_protocol::Opacity::new(50).unwrap(),
            ..Look::default()
        };
        let to = Bounded::new(vec![LookOf {
            id: stroke_id_from(1),
            look,
        }])
        .unwrap();
        b.apply(MemberId(1), &Op::Look { to });
        let url = "data:image/png;base64,iVBORw0KGgo=";
        let svg = export(&b, None, Theme::Light, &|h| {
            (*h == shown).then(|| url.to_string())
        });
        assert!(
            svg.contains(&format!(
                "<image x=\"0\" y=\"0\" width=\"120\" height=\"80\" opacity=\"0.5\" preserveAspectRatio=\"none\" href=\"{url}\"/>"
            )),
            "{svg}"
        );
        assert!(
            svg.contains("<rect x=\"200\" y=\"0\" width=\"120\" height=\"80\" fill=\"none\""),
            "{svg}"
        );
        // Anything but a raster data URL is not written into the document.
        let hostile = export(&b, None, Theme::Light, &|_| {
            Some("javascript:alert(1)\"".into())
        });
        assert!(
            !hostile.contains("<image") && !hostile.contains("javascript"),
            "{hostile}"
        );
    }
}
