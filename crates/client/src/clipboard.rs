//! Copy and paste of drawings: within a board, between boards, between tabs and browsers.
//!
//! A copy is a [`Clip`]: the selected strokes and text items in drawing order, with their
//! moves applied, in world pixels. It travels through the system clipboard as JSON, under the
//! MIME type [`CLIP_MIME`] and also as `text/plain` (the one type every browser lets a page
//! read back), so a copy in one tab pastes in any other tab or board:
//!
//! ```json
//! {"kokuban": 1, "items": [
//!   {"type": "ink", "tool": "pen", "color": "#1e1e1e", "width": 4.0,
//!    "points": [[10.0, 20.0, 0.5], [11.5, 20.25, 0.6]]},
//!   {"type": "text", "at": [40.0, 60.0], "color": "#e03131", "size": 24.0, "text": "Hello",
//!    "look": {"fill": "none", "dash": "solid", "opacity": 0.5, "align": "center"}}
//! ]}
//! ```
//!
//! An image is `{"type": "image", "hash": "<sha-256 hex>", "at": [x, y], "to": [x, y]}`: its
//! blob by hash and its box corner to corner. The blob belongs to the board it was uploaded
//! to, so an image pasted into another board shows only where that board holds the same blob.
//!
//! An item stretched or turned carries `"form": {"sx": 1.5, "sy": 1.5, "turn": 90}`: its stretch
//! along each of its axes as a factor (negative: mirrored) and its turn in degrees clockwise,
//! about the centre of its points; left out for an item as drawn.
//!
//! `look` is left out for an item of the default look (no fill, solid, opaque, left-aligned);
//! `fill` is one of `none`, `tint`, `solid`, `hachure`, `dash` one of `solid`, `dashed`, `dotted`, `align`
//! one of `left`, `center`, `right`, and `opacity` lies in `0.1..=1`.
//!
//! `tool` is one of `pen`, `highlighter`, `line`, `arrow`, `rect`, `ellipse`; `points` are
//! `[x, y, pressure]` with pressure in `0..=1`; colours are `#rrggbb` (or `#rrggbbaa`). A paste
//! creates *new* items with fresh ids through the ops every client already applies
//! (`StrokeBegin`, `StrokePoints`, `StrokeEnd`, `Text`): it never moves or revives the
//! originals. Clipboard content is untrusted: it is parsed into the protocol's checked types
//! and bounded (items, points, text) before it becomes an op.

use kokuban_board::{Board, IMAGE_COLOR, IMAGE_WIDTH, Shape, Stroke};
use kokuban_protocol::limits::{MAX_POINTS_PER_BATCH, MAX_POINTS_PER_STROKE, SUBPIXELS};
use kokuban_protocol::{
    BlobHash, Bounded, Color, Form, FormOf, Look, LookOf, Op, PlacedImage, Point, Points, StrokeId,
    StrokePoints, Text, Tool, Width,
};

use crate::geom::{Pt, Rect, image_op, visual_bounds};
use crate::prefs::parse_hex;
use crate::rng::{Entropy, new_stroke_id};

/// The clipboard type of a copied drawing (its JSON is also offered as `text/plain`).
pub const CLIP_MIME: &str = "application/x-kokuban+json";
/// The format's version, in the `kokuban` field.
pub const CLIP_VERSION: u32 = 1;
/// A paste creates at most this many items: a larger clip is refused rather than flooding the
/// room with ops.
pub const MAX_CLIP_ITEMS: usize = 1000;
/// Clipboard text longer than this is not even parsed.
pub const MAX_CLIP_BYTES: usize = 16 * 1024 * 1024;

/// Copied strokes and text items, in drawing order, where they were (world pixels).
///
/// Invariant: every item is valid for the protocol (points within bounds, at most
/// [`MAX_POINTS_PER_STROKE`] per stroke, text within its limits), and there are at most
/// [`MAX_CLIP_ITEMS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    items: Vec<(Item, Look, Form)>,
    /// Where the copied items were drawn, as the board showed them.
    bounds: Rect,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Ink {
        tool: Tool,
        color: Color,
        width: Width,
        points: Vec<Point>,
    },
    Text {
        at: Point,
        color: Color,
        size: Width,
        text: Text,
    },
    Image {
        blob: BlobHash,
        at: Point,
        to: Point,
    },
}

/// New items made by a paste: the ops that create them, and their ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pasted {
    /// `StrokeBegin`/`StrokePoints`/`StrokeEnd` and `Text` ops, in drawing order.
    pub ops: Vec<Op>,
    /// The new items.
    pub ids: Vec<StrokeId>,
}

impl Clip {
    /// The visible, finished items of `ids` on `board`, in drawing order (None if there are
    /// none). At most the first [`MAX_CLIP_ITEMS`] are kept.
    pub fn of(board: &Board, ids: &[StrokeId]) -> Option<Clip> {
        let mut items = Vec::new();
        let mut bounds = Rect::EMPTY;
        // The board's order, not the selection's: a paste must stack items as they were.
        for s in board
            .strokes()
            .filter(|s| s.finished && ids.contains(&s.id))
        {
            if items.len() == MAX_CLIP_ITEMS {
                break;
            }
            let item = Item::of(s);
            bounds = bounds.union(item.bounds(s.form));
            items.push((item, s.look, s.form));
        }
        (!items.is_empty()).then_some(Clip { items, bounds })
    }

    /// Every visible, finished item of `board`, in drawing order, however many there are (to
    /// draw the board again after a Clear; not for the clipboard). None on an empty board.
    pub fn everything(board: &Board) -> Option<Clip> {
        let items: Vec<(Item, Look, Form)> = board
            .strokes()
            .filter(|s| s.finished)
            .map(|s| (Item::of(s), s.look, s.form))
            .collect();
        let bounds = items
            .iter()
            .map(|(item, _, form)| item.bounds(*form))
            .fold(Rect::EMPTY, Rect::union);
        (!items.is_empty()).then_some(Clip { items, bounds })
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing (never true of a clip made by [`Clip::of`] or parsed).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The area the items covered where they were copied from (world pixels).
    pub fn bounds(&self) -> Rect {
        self.bounds
    }

    /// The clip as JSON (see the module documentation).
    pub fn to_json(&self) -> String {
        let json = Json {
            kokuban: CLIP_VERSION,
            items: self
                .items
                .iter()
                .map(|(item, look, form)| item.to_json(*look, *form))
                .collect(),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses clipboard text; None unless it is a Kokuban clip of this version with at least
    /// one valid item. Invalid items are skipped, a clip over [`MAX_CLIP_ITEMS`] is refused.
    pub fn from_json(text: &str) -> Option<Clip> {
        if text.len() > MAX_CLIP_BYTES || !text.trim_start().starts_with('{') {
            return None;
        }
        let json: Json = serde_json::from_str(text).ok()?;
        if json.kokuban != CLIP_VERSION || json.items.len() > MAX_CLIP_ITEMS {
            return None;
        }
        let items: Vec<(Item, Look, Form)> =
            json.items.iter().filter_map(Item::from_json).collect();
        if items.is_empty() {
            return None;
        }
        let bounds = items
            .iter()
            .map(|(item, _, form)| item.bounds(*form))
            .fold(Rect::EMPTY, Rect::union);
        Some(Clip { items, bounds })
    }

    /// New copies of the items, moved so that the clip's centre lands on `center` (world
    /// pixels, rounded to whole fixed-point units), each with a fresh id.
    pub fn paste_at(&self, center: Pt, rng: &mut dyn Entropy) -> Pasted {
        let from = self.bounds.center();
        let units = |v: f64| {
            let u = (v * f64::from(SUBPIXELS)).round();
            if u.is_finite() {
                u.clamp(f64::from(i32::MIN / 2), f64::from(i32::MAX / 2)) as i32
            } else {
                0
            }
        };
        self.paste_moved((units(center.x - from.x), units(center.y - from.y)), rng)
    }

    /// New copies of the items, moved by `(dx, dy)` fixed-point units, each with a fresh id.
    pub fn paste_moved(&self, (dx, dy): (i32, i32), rng: &mut dyn Entropy) -> Pasted {
        let mut pasted = Pasted::default();
        for (item, look, form) in &self.items {
            let id = new_stroke_id(rng);
            pasted.ids.push(id);
            let looked = (*look != Look::default())
                .then(|| Bounded::new(vec![LookOf { id, look: *look }]).ok())
                .flatten()
                .map(|to| Op::Look { to });
            let formed = (*form != Form::default())
                .then(|| Bounded::new(vec![FormOf { id, form: *form }]).ok())
                .flatten()
                .map(|to| Op::Form { to });
            let dressed = looked.into_iter().chain(formed);
            match item {
                Item::Ink {
                    tool,
                    color,
                    width,
                    points,
                } => {
                    let moved: Vec<Point> = points.iter().map(|p| p.offset(dx, dy)).collect();
                    pasted.ops.push(Op::StrokeBegin {
                        id,
                        tool: *tool,
                        color: *color,
                        width: *width,
                        first: moved[0],
                    });
                    let mut start = 1u32;
                    for chunk in moved[1..].chunks(MAX_POINTS_PER_BATCH) {
                        if let Ok(points) = Points::new(chunk.to_vec())
                            && let Ok(batch) = StrokePoints::new(id, start, points)
                        {
                            pasted.ops.push(Op::StrokePoints(batch));
                        }
                        start += chunk.len() as u32;
                    }
                    pasted.ops.push(Op::StrokeEnd { id });
                    pasted.ops.extend(dressed);
                }
                Item::Text {
                    at,
                    color,
                    size,
                    text,
                } => {
                    pasted.ops.push(Op::Text {
                        id,
                        at: at.offset(dx, dy),
                        color: *color,
                        size: *size,
                        text: text.clone(),
                    });
                    pasted.ops.extend(dressed);
                }
                Item::Image { blob, at, to } => {
                    let corners = [at.offset(dx, dy), to.offset(dx, dy)];
                    pasted.ops.extend(image_op(id, *blob, &corners));
                    pasted.ops.extend(dressed);
                }
            }
        }
        pasted
    }
}

impl Item {
    fn of(s: &Stroke) -> Item {
        match &s.shape {
            Shape::Ink(tool) => Item::Ink {
                tool: *tool,
                color: s.color,
                width: s.width,
                points: s.placed_points().collect(),
            },
            Shape::Text(text) => Item::Text {
                at: s.placed_points().next().unwrap_or(s.points[0]),
                color: s.color,
                size: s.width,
                text: text.clone(),
            },
            Shape::Image(blob) => {
                let mut corners = s.placed_points();
                let at = corners.next().unwrap_or(s.points[0]);
                Item::Image {
                    blob: *blob,
                    at,
                    to: corners.next().unwrap_or(at),
                }
            }
        }
    }

    /// Where the item is, as the board would show it in `form`.
    fn bounds(&self, form: Form) -> Rect {
        let mut stroke = self.stroke();
        stroke.form = form;
        visual_bounds(&stroke)
    }

    /// The item as a stroke of a board, for the board's own geometry.
    fn stroke(&self) -> Stroke {
        let (shape, color, width, points) = match self {
            Item::Ink {
                tool,
                color,
                width,
                points,
            } => (Shape::Ink(*tool), *color, *width, points.clone()),
            Item::Text {
                at,
                color,
                size,
                text,
            } => (Shape::Text(text.clone()), *color, *size, vec![*at]),
            Item::Image { blob, at, to } => (
                Shape::Image(*blob),
                IMAGE_COLOR,
                IMAGE_WIDTH,
                vec![*at, *to],
            ),
        };
        Stroke {
            id: crate::rng::stroke_id_from(0),
            author: kokuban_protocol::MemberId(0),
            shape,
            color,
            width,
            points,
            finished: true,
            erased: false,
            offset: (0, 0),
            look: Look::default(),
            form: Form::default(),
        }
    }

    fn to_json(&self, look: Look, form: Form) -> JsonItem {
        let look = (look != Look::default()).then(|| JsonLook::of(look));
        let form = (form != Form::default()).then(|| JsonForm::of(form));
        let point = |p: &Point| [p.x_px(), p.y_px(), p.pressure_unit()];
        match self {
            Item::Ink {
                tool,
                color,
                width,
                points,
            } => JsonItem::Ink {
                tool: JsonTool::of(*tool),
                color: color_hex(*color),
                width: width.px(),
                points: points.iter().map(point).collect(),
                look,
                form,
            },
            Item::Text {
                at,
                color,
                size,
                text,
            } => JsonItem::Text {
                at: [at.x_px(), at.y_px()],
                color: color_hex(*color),
                size: size.px(),
                text: text.as_str().to_string(),
                look,
                form,
            },
            Item::Image { blob, at, to } => JsonItem::Image {
                hash: blob.to_string(),
                at: [at.x_px(), at.y_px()],
                to: [to.x_px(), to.y_px()],
                look,
                form,
            },
        }
    }

    /// The item, its look (an opacity out of range is read as opaque) and its form (one out
    /// of range is brought into it).
    fn from_json(item: &JsonItem) -> Option<(Item, Look, Form)> {
        let width = |px: f64| (px.is_finite() && px > 0.0).then(|| Width::from_px(px));
        match item {
            JsonItem::Ink {
                tool,
                color,
                width: w,
                points,
                look,
                form,
            } => {
                if points.is_empty() || points.len() > MAX_POINTS_PER_STROKE as usize {
                    return None;
                }
                let points = points
                    .iter()
                    .map(|&[x, y, p]| Point::from_px(x, y, p).ok())
                    .collect::<Option<Vec<Point>>>()?;
                Some((
                    Item::Ink {
                        tool: tool.tool(),
                        color: parse_color(color)?,
                        width: width(*w)?,
                        points,
                    },
                    JsonLook::read(look.as_ref()),
                    JsonForm::read(form.as_ref()),
                ))
            }
            JsonItem::Text {
                at,
                color,
                size,
                text,
                look,
                form,
            } => {
                let text = Text::new(text.trim_end()).ok()?;
                if text.as_str().trim().is_empty() {
                    return None;
                }
                Some((
                    Item::Text {
                        at: Point::from_px(at[0], at[1], 0.5).ok()?,
                        color: parse_color(color)?,
                        size: width(*size)?,
                        text,
                    },
                    JsonLook::read(look.as_ref()),
                    JsonForm::read(form.as_ref()),
                ))
            }
            JsonItem::Image {
                hash,
                at,
                to,
                look,
                form,
            } => {
                let at = Point::from_px(at[0], at[1], 0.0).ok()?;
                let to = Point::from_px(to[0], to[1], 0.0).ok()?;
                // Checked as the op will be: a box with a width and a height.
                let blob = BlobHash::parse(hash).ok()?;
                PlacedImage::new(crate::rng::stroke_id_from(0), blob, at, to).ok()?;
                Some((
                    Item::Image { blob, at, to },
                    JsonLook::read(look.as_ref()),
                    JsonForm::read(form.as_ref()),
                ))
            }
        }
    }
}

/// `#rrggbb`, or `#rrggbbaa` for a translucent colour.
fn color_hex(c: Color) -> String {
    let [r, g, b, a] = c.components();
    if a == 0xff {
        format!("#{r:02x}{g:02x}{b:02x}")
    } else {
        format!("#{r:02x}{g:02x}{b:02x}{a:02x}")
    }
}

fn parse_color(s: &str) -> Option<Color> {
    match s.len() {
        7 => parse_hex(s),
        9 => {
            let v = u32::from_str_radix(s.strip_prefix('#')?, 16).ok()?;
            Color::new(v).ok()
        }
        _ => None,
    }
}

/// Plain clipboard text as the content of a text item: line breaks kept, tabs as spaces,
/// other control characters dropped, cut to what a text item may hold. None if nothing
/// printable is left.
pub fn plain_text(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.replace("\r\n", "\n").chars() {
        let c = match c {
            '\t' => ' ',
            '\r' => '\n',
            c if c.is_control() && c != '\n' => continue,
            c => c,
        };
        if out.len() + c.len_utf8() > kokuban_protocol::limits::MAX_TEXT_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end().to_string();
    (!out.trim().is_empty()).then_some(out)
}

mod json;

use json::{Json, JsonForm, JsonItem, JsonLook, JsonTool};

#[cfg(test)]
mod tests;
