//! Snapshot encoding: a version byte, then a postcard body.
//!
//! Version 2 added the board's title at the end of the body, version 3 the looks of the items
//! that have one other than the default after it. Versions 1 and 2 (stores written before
//! them) are still read, as untitled boards and as items of the default look. Version 4 adds
//! images among the items and, after the looks, the forms of the items stretched or turned. A
//! board is written in the oldest version that can hold it: version 2 when its items all have
//! the default look and form and none is an image, which nodes of the version before looks
//! still read (in a cluster being upgraded one node at a time); version 3 when it has looks
//! but no images or forms; version 4 otherwise.
//!
//! A snapshot holds the whole state of a board, tombstones and drawing order included, so that
//! `snapshot → board → snapshot` gives the same bytes and a board restored from a snapshot
//! behaves exactly like the board that wrote it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kokuban_protocol::{
    BlobHash, Color, Form, FormOf, List, Look, LookOf, MemberId, Path, Position, StrokeId, Text,
    Title, Tool, Width,
};
use serde::{Deserialize, Serialize};

use crate::board::{Board, MAX_TOMBSTONES, Shape, Stroke};

/// The newest version of the snapshot format, written when a board needs it. Bumped on any
/// incompatible change.
pub const SNAPSHOT_VERSION: u8 = 4;

/// The version written for a board that needs nothing newer (no looks, no images).
const PLAIN_VERSION: u8 = 2;

/// The version written for a board with looks but no images.
const LOOKS_VERSION: u8 = 3;

/// The oldest version still read.
const OLDEST_READ: u8 = 1;

/// Why bytes are not a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// No version byte.
    #[error("empty snapshot")]
    Empty,
    /// Written by another version of the format.
    #[error(
        "snapshot format version {0} is not supported (this build reads {OLDEST_READ} to {SNAPSHOT_VERSION})"
    )]
    Version(u8),
    /// Not a valid encoding.
    #[error("malformed snapshot: {0}")]
    Malformed(postcard::Error),
    /// Decodes, but breaks the board's invariants.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(&'static str),
}

#[derive(Serialize, Deserialize)]
struct Body {
    position: Option<Position>,
    next_order: u64,
    strokes: List<Record>,
    tombstones: List<StrokeId>,
    title: Option<Title>,
    /// Only the items whose look is not the default, in drawing order.
    looks: List<LookOf>,
    /// Only the items whose form is not the default, in drawing order.
    forms: List<FormOf>,
}

/// The body of a version 3 snapshot: no forms.
#[derive(Serialize, Deserialize)]
struct BodyV3 {
    position: Option<Position>,
    next_order: u64,
    strokes: List<Record>,
    tombstones: List<StrokeId>,
    title: Option<Title>,
    looks: List<LookOf>,
}

impl From<BodyV3> for Body {
    fn from(v3: BodyV3) -> Self {
        Body {
            position: v3.position,
            next_order: v3.next_order,
            strokes: v3.strokes,
            tombstones: v3.tombstones,
            title: v3.title,
            looks: v3.looks,
            forms: List::from(Vec::new()),
        }
    }
}

/// The body of a version 2 snapshot: no looks.
#[derive(Serialize, Deserialize)]
struct BodyV2 {
    position: Option<Position>,
    next_order: u64,
    strokes: List<Record>,
    tombstones: List<StrokeId>,
    title: Option<Title>,
}

impl From<BodyV2> for Body {
    fn from(v2: BodyV2) -> Self {
        Body {
            position: v2.position,
            next_order: v2.next_order,
            strokes: v2.strokes,
            tombstones: v2.tombstones,
            title: v2.title,
            looks: List::from(Vec::new()),
            forms: List::from(Vec::new()),
        }
    }
}

/// The body of a version 1 snapshot: no title.
#[derive(Deserialize)]
struct BodyV1 {
    position: Option<Position>,
    next_order: u64,
    strokes: List<Record>,
    tombstones: List<StrokeId>,
}

impl From<BodyV1> for Body {
    fn from(v1: BodyV1) -> Self {
        Body {
            position: v1.position,
            next_order: v1.next_order,
            strokes: v1.strokes,
            tombstones: v1.tombstones,
            title: None,
            looks: List::from(Vec::new()),
            forms: List::from(Vec::new()),
        }
    }
}

#[derive(Serialize, Deserialize)]
enum RecordShape {
    Ink(Tool),
    Text(Text),
    /// Only in version 4.
    Image(BlobHash),
}

#[derive(Serialize, Deserialize)]
struct Record {
    order: u64,
    id: StrokeId,
    author: MemberId,
    shape: RecordShape,
    color: Color,
    width: Width,
    points: Path,
    finished: bool,
    erased: bool,
    offset: (i32, i32),
}

impl Board {
    /// Encodes the whole board.
    pub fn snapshot(&self) -> Vec<u8> {
        let strokes = self
            .strokes
            .iter()
            .map(|(&order, s)| Record {
                order,
                id: s.id,
                author: s.author,
                shape: match &s.shape {
                    Shape::Ink(tool) => RecordShape::Ink(*tool),
                    Shape::Text(text) => RecordShape::Text(text.clone()),
                    Shape::Image(blob) => RecordShape::Image(*blob),
                },
                color: s.color,
                width: s.width,
                // A stroke always holds 1..=MAX_POINTS_PER_STROKE points (the board never
                // appends past the limit), so this cannot fail.
                points: Path::new(s.points.clone()).expect("stroke point count within limits"),
                finished: s.finished,
                erased: s.erased,
                offset: s.offset,
            })
            .collect();
        let body = Body {
            position: self.position,
            next_order: self.next_order,
            strokes,
            tombstones: self.tombstones.iter().copied().collect(),
            title: self.title.clone(),
            looks: self
                .strokes
                .values()
                .filter(|s| s.look != Look::default())
                .map(|s| LookOf {
                    id: s.id,
                    look: s.look,
                })
                .collect(),
            forms: self
                .strokes
                .values()
                .filter(|s| s.form != Form::default())
                .map(|s| FormOf {
                    id: s.id,
                    form: s.form,
                })
                .collect(),
        };
        let images = self
            .strokes
            .values()
            .any(|s| matches!(s.shape, Shape::Image(_)));
        let written = if images || !body.forms.is_empty() {
            postcard::to_extend(&body, vec![SNAPSHOT_VERSION])
        } else if body.looks.is_empty() {
            let plain = BodyV2 {
                position: body.position,
                next_order: body.next_order,
                strokes: body.strokes,
                tombstones: body.tombstones,
                title: body.title,
            };
            postcard::to_extend(&plain, vec![PLAIN_VERSION])
        } else {
            let v3 = BodyV3 {
                position: body.position,
                next_order: body.next_order,
                strokes: body.strokes,
                tombstones: body.tombstones,
                title: body.title,
                looks: body.looks,
            };
            postcard::to_extend(&v3, vec![LOOKS_VERSION])
        };
        written.expect("snapshot types always serialize")
    }

    /// Decodes a snapshot, checking every invariant of the board.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Board, SnapshotError> {
        let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
        let body: Body = match version {
            1 => postcard::from_bytes::<BodyV1>(body).map(Body::from),
            PLAIN_VERSION => postcard::from_bytes::<BodyV2>(body).map(Body::from),
            LOOKS_VERSION => postcard::from_bytes::<BodyV3>(body).map(Body::from),
            SNAPSHOT_VERSION => postcard::from_bytes(body),
            _ => return Err(SnapshotError::Version(version)),
        }
        .map_err(SnapshotError::Malformed)?;
        if body.title.as_ref().is_some_and(|t| t.as_str().is_empty()) {
            return Err(SnapshotError::Inconsistent("empty title"));
        }
        if body.tombstones.len() > MAX_TOMBSTONES {
            return Err(SnapshotError::Inconsistent("too many tombstones"));
        }
        let mut strokes = BTreeMap::new();
        let mut index = HashMap::with_capacity(body.strokes.len());
        let mut erased = 0;
        let mut images = 0;
        for r in body.strokes.into_inner() {
            if r.order >= body.next_order || strokes.contains_key(&r.order) {
                return Err(SnapshotError::Inconsistent("drawing order out of range"));
            }
            if index.insert(r.id, r.order).is_some() {
                return Err(SnapshotError::Inconsistent("duplicate stroke id"));
            }
            erased += usize::from(r.erased);
            let shape = match r.shape {
                RecordShape::Ink(tool) => Shape::Ink(tool),
                RecordShape::Text(text) => Shape::Text(text),
                RecordShape::Image(blob) => {
                    // What `Op::Image` makes: a finished item filling a box corner to corner.
                    let fits = match r.points.as_slice() {
                        [at, to] => to.x() > at.x() && to.y() > at.y(),
                        _ => false,
                    };
                    if !fits || !r.finished {
                        return Err(SnapshotError::Inconsistent("an image without its box"));
                    }
                    images += 1;
                    Shape::Image(blob)
                }
            };
            strokes.insert(
                r.order,
                Stroke {
                    id: r.id,
                    author: r.author,
                    shape,
                    color: r.color,
                    width: r.width,
                    points: r.points.into_inner(),
                    finished: r.finished,
                    erased: r.erased,
                    offset: r.offset,
                    look: Look::default(),
                    form: Form::default(),
                },
            );
        }
        // Each version is written only for a board that needs it, so that a board read back
        // writes the same bytes.
        if version == LOOKS_VERSION && body.looks.is_empty() {
            return Err(SnapshotError::Inconsistent("version 3 without looks"));
        }
        if (version == SNAPSHOT_VERSION) != (images > 0 || !body.forms.is_empty()) {
            return Err(SnapshotError::Inconsistent(
                "images and forms belong in version 4, and version 4 to them",
            ));
        }
        let mut last = None;
        for f in body.forms.into_inner() {
            // As for looks below: once each, in drawing order, never the default, and only
            // for a finished item (the only kind that takes one).
            let order = index.get(&f.id).copied();
            let Some(order) = order.filter(|&o| last < Some(o)) else {
                return Err(SnapshotError::Inconsistent("forms out of drawing order"));
            };
            let stroke = strokes.get_mut(&order);
            if f.form == Form::default() || !stroke.as_ref().is_some_and(|s| s.finished) {
                return Err(SnapshotError::Inconsistent("a form that no item takes"));
            }
            last = Some(order);
            if let Some(s) = stroke {
                s.form = f.form;
            }
        }
        let mut last = None;
        for l in body.looks.into_inner() {
            // Listed once each, in drawing order, and never the default: what `snapshot`
            // writes, so that a board read back writes the same bytes.
            let order = index.get(&l.id).copied();
            let Some(order) = order.filter(|&o| last < Some(o)) else {
                return Err(SnapshotError::Inconsistent("looks out of drawing order"));
            };
            if l.look == Look::default() {
                return Err(SnapshotError::Inconsistent("a default look listed"));
            }
            last = Some(order);
            if let Some(s) = strokes.get_mut(&order) {
                s.look = l.look;
            }
        }
        let tombstones: VecDeque<StrokeId> = body.tombstones.into_inner().into();
        let listed_erased = tombstones.iter().all(|id| {
            index
                .get(id)
                .and_then(|o| strokes.get(o))
                .is_some_and(|s| s.erased)
        });
        let distinct: std::collections::HashSet<_> = tombstones.iter().collect();
        if !listed_erased || erased != tombstones.len() || distinct.len() != tombstones.len() {
            return Err(SnapshotError::Inconsistent(
                "tombstones do not match erased strokes",
            ));
        }
        Ok(Board {
            position: body.position,
            strokes,
            index,
            tombstones,
            next_order: body.next_order,
            title: body.title,
        })
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{Op, Point};
    use uuid::Uuid;

    use super::*;

    fn drawn() -> Board {
        let mut b = Board::new();
        b.apply(
            MemberId(1),
            &Op::StrokeBegin {
                id: StrokeId(Uuid::from_u128(7)),
                tool: Tool::Pen,
                color: Color::rgb(1, 2, 3),
                width: Width::from_px(2.0),
                first: Point::new(5, 6, 100).unwrap(),
            },
        );
        b
    }

    /// A board without looks is written as version 2, which a node before looks reads; a
    /// version 1 body is a version 2 body without the title (an untitled board's title is one
    /// zero byte).
    #[test]
    fn a_board_without_looks_is_written_as_version_2_and_version_1_is_read_untitled() {
        let board = drawn();
        let mut old = board.snapshot();
        assert_eq!(old[0], 2);
        assert_eq!(Board::from_snapshot(&old), Ok(board.clone()));
        assert_eq!(
            old.pop(),
            Some(0),
            "an untitled board ends with an empty option"
        );
        old[0] = 1;
        assert_eq!(Board::from_snapshot(&old), Ok(board.clone()));
        old[0] = SNAPSHOT_VERSION + 1;
        let refused = Board::from_snapshot(&old).unwrap_err();
        assert!(refused.to_string().contains("reads 1 to 4"), "{refused}");
        // A version 3 snapshot with an empty list of looks is not what a board writes.
        let mut empty = board.snapshot();
        empty[0] = 3;
        empty.push(0);
        assert_eq!(
            Board::from_snapshot(&empty),
            Err(SnapshotError::Inconsistent("version 3 without looks"))
        );
    }

    #[test]
    fn looks_survive_a_snapshot_and_only_non_default_ones_are_listed() {
        use kokuban_protocol::{Bounded, Dash, Fill, Opacity};
        let mut board = drawn();
        let plain = board.snapshot();
        let look = Look {
            fill: Fill::Solid,
            dash: Dash::Dotted,
            opacity: Opacity::new(40).unwrap(),
            ..Look::default()
        };
        let id = StrokeId(Uuid::from_u128(7));
        board.apply(
            MemberId(2),
            &Op::Look {
                to: Bounded::new(vec![LookOf { id, look }]).unwrap(),
            },
        );
        let bytes = board.snapshot();
        assert_eq!((plain[0], bytes[0]), (2, 3));
        assert!(bytes.len() > plain.len());
        let back = Board::from_snapshot(&bytes).unwrap();
        assert_eq!(back.get(&id).unwrap().look, look);
        assert_eq!(back.snapshot(), bytes);
        // A look of an item the board does not have, or the default look listed, is not
        // what a board writes.
        let mut stray = board.clone();
        stray
            .strokes
            .values_mut()
            .for_each(|s| s.look = Look::default());
        let mut listed = stray.snapshot();
        listed[0] = 3;
        let default = postcard::to_allocvec(&List::from(vec![LookOf {
            id,
            look: Look::default(),
        }]))
        .unwrap();
        listed.extend(&default);
        assert_eq!(
            Board::from_snapshot(&listed),
            Err(SnapshotError::Inconsistent("a default look listed"))
        );
        let mut unknown = stray.snapshot();
        unknown[0] = 3;
        let other = StrokeId(Uuid::from_u128(8));
        unknown
            .extend(postcard::to_allocvec(&List::from(vec![LookOf { id: other, look }])).unwrap());
        assert_eq!(
            Board::from_snapshot(&unknown),
            Err(SnapshotError::Inconsistent("looks out of drawing order"))
        );
    }

    /// An image makes the board version 4, with or without looks; its box and blob come back.
    #[test]
    fn an_image_is_written_as_version_4_and_read_back_with_its_box() {
        use kokuban_protocol::{BlobHash, PlacedImage};
        let mut board = drawn();
        let id = StrokeId(Uuid::from_u128(9));
        let (at, to) = (
            Point::new(-80, 40, 0).unwrap(),
            Point::new(800, 640, 0).unwrap(),
        );
        let image = PlacedImage::new(id, BlobHash([7; 32]), at, to).unwrap();
        board.apply(MemberId(3), &Op::Image(image));
        let bytes = board.snapshot();
        assert_eq!(bytes[0], 4);
        let back = Board::from_snapshot(&bytes).unwrap();
        let item = back.get(&id).unwrap();
        assert_eq!(item.shape, Shape::Image(BlobHash([7; 32])));
        assert_eq!(item.points, vec![at, to]);
        assert_eq!(back.snapshot(), bytes);
        // The same bytes claiming version 3 break its rule (looks, no images).
        let mut as_v3 = bytes.clone();
        as_v3[0] = 3;
        assert!(Board::from_snapshot(&as_v3).is_err());
        // A board without images claiming version 4 is not what a board writes.
        let mut plain = drawn().snapshot();
        plain[0] = 4;
        plain.extend([0, 0]);
        assert_eq!(
            Board::from_snapshot(&plain),
            Err(SnapshotError::Inconsistent(
                "images and forms belong in version 4, and version 4 to them"
            ))
        );
    }

    /// A stretched or turned item makes the board version 4 and keeps its form; a form of an
    /// item still being drawn is refused, as `Op::Form` never gives one.
    #[test]
    fn forms_survive_a_snapshot_only_on_finished_items() {
        use kokuban_protocol::{Bounded, Scale};
        let mut board = drawn();
        let id = StrokeId(Uuid::from_u128(7));
        let form = Form {
            sx: Scale::new(-2000).unwrap(),
            sy: Scale::new(500).unwrap(),
            turn: 12345,
        };
        let op = Op::Form {
            to: Bounded::new(vec![FormOf { id, form }]).unwrap(),
        };
        assert_eq!(board.vet(MemberId(1), &op), Err(crate::Refusal::NoTargets));
        board.apply(MemberId(1), &op);
        assert_eq!(board.get(&id).unwrap().form, Form::default());
        board.apply(MemberId(1), &Op::StrokeEnd { id });
        assert!(board.vet(MemberId(2), &op).is_ok());
        board.apply(MemberId(2), &op);
        let bytes = board.snapshot();
        assert_eq!(bytes[0], 4);
        let back = Board::from_snapshot(&bytes).unwrap();
        assert_eq!(back.get(&id).unwrap().form, form);
        assert_eq!(back.snapshot(), bytes);
        assert_eq!(board.vet(MemberId(2), &op), Err(crate::Refusal::NoTargets));
    }

    #[test]
    fn a_titled_board_keeps_its_title_and_an_empty_title_is_inconsistent() {
        let mut board = drawn();
        board.apply(
            MemberId(2),
            &Op::Title {
                title: Title::new("Q3 plan").unwrap(),
            },
        );
        let bytes = board.snapshot();
        let back = Board::from_snapshot(&bytes).unwrap();
        assert_eq!(back.title().map(Title::as_str), Some("Q3 plan"));
        assert_eq!(back.snapshot(), bytes);
        let mut empty = drawn().snapshot();
        empty.pop();
        empty.extend([1, 0]);
        assert_eq!(
            Board::from_snapshot(&empty),
            Err(SnapshotError::Inconsistent("empty title"))
        );
    }
}
