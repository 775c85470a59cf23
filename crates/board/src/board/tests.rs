use kokuban_protocol::{Bounded, Placement, Points, Style};
use uuid::Uuid;

use super::*;

const ADA: MemberId = MemberId(1);
const BOB: MemberId = MemberId(2);

fn id(n: u8) -> StrokeId {
    StrokeId(Uuid::from_bytes([n; 16]))
}

fn pt(x: i32) -> Point {
    Point::new(x, x, 100).unwrap()
}

fn begin(n: u8) -> Op {
    Op::StrokeBegin {
        id: id(n),
        tool: Tool::Pen,
        color: Color::rgb(0, 0, 0),
        width: Width::from_px(2.0),
        first: pt(0),
    }
}

fn points(n: u8, start: u32, xs: &[i32]) -> Op {
    let batch = Points::new(xs.iter().map(|&x| pt(x)).collect()).unwrap();
    Op::StrokePoints(StrokePoints::new(id(n), start, batch).unwrap())
}

fn ids(ns: &[u8]) -> Bounded<StrokeId, { kokuban_protocol::limits::MAX_IDS_PER_OP }> {
    Bounded::new(ns.iter().map(|&n| id(n)).collect()).unwrap()
}

fn xs(board: &Board, n: u8) -> Vec<i32> {
    board
        .get(&id(n))
        .unwrap()
        .points
        .iter()
        .map(|p| p.x())
        .collect()
}

#[test]
fn batches_append_once_even_when_repeated_or_overlapping() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    assert_eq!(b.apply(ADA, &points(1, 1, &[1, 2])), Change::Grew(id(1), 1));
    assert_eq!(b.apply(ADA, &points(1, 1, &[1, 2])), Change::None);
    assert_eq!(
        b.apply(ADA, &points(1, 2, &[2, 3, 4])),
        Change::Grew(id(1), 3)
    );
    // A batch that would leave a hole is ignored.
    assert_eq!(b.apply(ADA, &points(1, 9, &[9])), Change::None);
    assert_eq!(xs(&b, 1), vec![0, 1, 2, 3, 4]);
}

#[test]
fn only_the_author_continues_a_stroke_and_nobody_after_it_ends() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    assert_eq!(b.apply(BOB, &points(1, 1, &[5])), Change::None);
    assert_eq!(b.apply(BOB, &Op::StrokeEnd { id: id(1) }), Change::None);
    // Bob replaying Ada's stroke id does not take it over.
    assert_eq!(b.apply(BOB, &begin(1)), Change::None);
    assert_eq!(b.get(&id(1)).unwrap().author, ADA);
    assert_eq!(
        b.apply(ADA, &Op::StrokeEnd { id: id(1) }),
        Change::Finished(id(1))
    );
    assert_eq!(b.apply(ADA, &points(1, 1, &[5])), Change::None);
    assert_eq!(xs(&b, 1), vec![0]);
}

#[test]
fn ops_on_unknown_strokes_change_nothing() {
    let mut b = Board::new();
    assert_eq!(b.apply(ADA, &points(9, 1, &[1])), Change::None);
    assert_eq!(b.apply(ADA, &Op::StrokeEnd { id: id(9) }), Change::None);
    assert_eq!(b.apply(ADA, &Op::Erase { ids: ids(&[9]) }), Change::None);
    assert_eq!(b.apply(ADA, &Op::Restore { ids: ids(&[9]) }), Change::None);
    assert_eq!(b, Board::new());
}

#[test]
fn erase_and_restore_are_undo_and_redo() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    b.apply(ADA, &begin(2));
    assert_eq!(
        b.apply(BOB, &Op::Erase { ids: ids(&[1]) }),
        Change::Removed(vec![id(1)])
    );
    assert_eq!(b.len(), 1);
    assert_eq!(b.strokes().map(|s| s.id).collect::<Vec<_>>(), vec![id(2)]);
    assert_eq!(
        b.apply(BOB, &Op::Restore { ids: ids(&[1]) }),
        Change::Added(vec![id(1)])
    );
    // Restored strokes keep their place in the drawing order.
    assert_eq!(
        b.strokes().map(|s| s.id).collect::<Vec<_>>(),
        vec![id(1), id(2)]
    );
}

#[test]
fn tombstones_are_bounded() {
    let mut b = Board::new();
    for n in 0..=MAX_TOMBSTONES as u32 {
        let sid = StrokeId(Uuid::from_u128(u128::from(n) + 1));
        b.apply(
            ADA,
            &Op::StrokeBegin {
                id: sid,
                tool: Tool::Pen,
                color: Color::rgb(0, 0, 0),
                width: Width::from_px(1.0),
                first: pt(0),
            },
        );
        b.apply(
            ADA,
            &Op::Erase {
                ids: Bounded::new(vec![sid]).unwrap(),
            },
        );
    }
    assert_eq!(b.all_strokes().count(), MAX_TOMBSTONES);
    assert!(b.get(&StrokeId(Uuid::from_u128(1))).is_none());
    assert!(b.is_empty());
}

#[test]
fn move_sets_absolute_offsets_and_clear_removes_everything() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    let to = Bounded::new(vec![Placement::new(id(1), 8, -8).unwrap()]).unwrap();
    assert_eq!(
        b.apply(BOB, &Op::Move { to: to.clone() }),
        Change::Moved(vec![id(1)])
    );
    assert_eq!(b.apply(BOB, &Op::Move { to }), Change::None);
    assert_eq!(b.get(&id(1)).unwrap().bounds(), (8, -8, 8, -8));
    assert_eq!(b.apply(ADA, &Op::Clear), Change::Cleared);
    assert_eq!(b.all_strokes().count(), 0);
    assert_eq!(b.point_count(), 0);
}

/// `vet` refuses exactly the ops `apply` would ignore (Clear aside), on a board with
/// strokes in every state: Ada's open stroke, her finished one, an erased one, Bob's text.
#[test]
fn vet_refuses_exactly_what_apply_ignores() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    b.apply(ADA, &points(1, 1, &[1, 2]));
    b.apply(ADA, &begin(2));
    b.apply(ADA, &Op::StrokeEnd { id: id(2) });
    b.apply(ADA, &begin(3));
    b.apply(BOB, &Op::Erase { ids: ids(&[3]) });
    b.apply(
        BOB,
        &Op::Text {
            id: id(4),
            at: pt(0),
            color: Color::rgb(0, 0, 0),
            size: Width::from_px(12.0),
            text: Text::new("hi").unwrap(),
        },
    );
    let place = |n: u8, d: i32| Op::Move {
        to: Bounded::new(vec![Placement::new(id(n), d, d).unwrap()]).unwrap(),
    };
    let mut ops = Vec::new();
    for n in 1..=5 {
        ops.push(begin(n));
        ops.push(Op::StrokeEnd { id: id(n) });
        ops.push(Op::Erase { ids: ids(&[n]) });
        ops.push(Op::Restore { ids: ids(&[n]) });
        ops.push(place(n, 0));
        ops.push(place(n, 8));
        for (start, xs) in [(1, &[1][..]), (1, &[1, 2, 3]), (3, &[3]), (4, &[4])] {
            ops.push(points(n, start, xs));
        }
    }
    ops.push(Op::Erase { ids: ids(&[9, 1]) });
    ops.push(Op::Restore { ids: ids(&[9, 3]) });
    b.apply(BOB, &title("Plans"));
    for t in ["", "Plans", "Plans 2"] {
        ops.push(title(t));
    }
    b.apply(ADA, &restyle(&[(2, 9)]));
    for n in 1..=5 {
        ops.push(restyle(&[(n, 9)]));
        ops.push(restyle(&[(n, 8), (n, 9)]));
        ops.push(restyle(&[(n, 9), (n, 8)]));
    }
    let mut checked = 0;
    for op in &ops {
        for author in [ADA, BOB] {
            let vetted = b.vet(author, op);
            let changed = b.clone().apply(author, op) != Change::None;
            assert_eq!(vetted.is_ok(), changed, "{author:?} {op:?}: {vetted:?}");
            checked += usize::from(vetted.is_err());
        }
    }
    assert!(checked > ops.len(), "the board state exercises refusals");
    assert_eq!(b.vet(BOB, &points(1, 3, &[3])), Err(Refusal::NotAuthor));
    assert_eq!(b.vet(ADA, &points(1, 9, &[9])), Err(Refusal::Gap));
    assert_eq!(b.vet(ADA, &begin(1)), Err(Refusal::IdTaken));
    assert_eq!(b.vet(ADA, &points(5, 1, &[1])), Err(Refusal::UnknownStroke));
    assert!(Refusal::NotAuthor.is_final() && !Refusal::UnknownStroke.is_final());
    // Clearing is always allowed, even an empty board.
    assert_eq!(Board::new().vet(ADA, &Op::Clear), Ok(()));
    assert_eq!(Board::new().vet(ADA, &title("")), Err(Refusal::Repeat));
}

fn restyle(styles: &[(u8, u8)]) -> Op {
    let to = styles.iter().map(|&(n, shade)| Style {
        id: id(n),
        color: Color::rgb(shade, shade, shade),
        width: Width::from_px(f64::from(shade)),
    });
    Op::Restyle {
        to: Bounded::new(to.collect()).unwrap(),
    }
}

#[test]
fn restyle_sets_colour_and_width_of_any_item_its_last_listing_winning() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    b.apply(BOB, &begin(2));
    assert_eq!(
        b.apply(BOB, &restyle(&[(1, 5), (2, 7), (1, 6), (9, 1)])),
        Change::Restyled(vec![id(2), id(1)])
    );
    let s = b.get(&id(1)).unwrap();
    assert_eq!(
        (s.color, s.width),
        (Color::rgb(6, 6, 6), Width::from_px(6.0))
    );
    assert_eq!(b.apply(ADA, &restyle(&[(1, 6), (2, 7)])), Change::None);
    let back = Board::from_snapshot(&b.snapshot()).unwrap();
    assert_eq!(back, b);
}

fn title(t: &str) -> Op {
    Op::Title {
        title: Title::new(t).unwrap(),
    }
}

#[test]
fn the_title_is_the_last_one_set_survives_clear_and_an_empty_one_removes_it() {
    let mut b = Board::new();
    assert_eq!(b.title(), None);
    assert_eq!(b.apply(ADA, &title("Roadmap")), Change::Retitled);
    assert_eq!(b.apply(BOB, &title("Roadmap")), Change::None);
    assert_eq!(b.apply(BOB, &title("Roadmap 2027")), Change::Retitled);
    b.apply(ADA, &begin(1));
    b.apply(ADA, &Op::Clear);
    assert_eq!(b.title().map(Title::as_str), Some("Roadmap 2027"));
    let back = Board::from_snapshot(&b.snapshot()).unwrap();
    assert_eq!(back, b);
    assert_eq!(b.apply(ADA, &title("")), Change::Retitled);
    assert_eq!(b.title(), None);
    assert_eq!(b.apply(ADA, &title("")), Change::None);
}

#[test]
fn strokes_stop_growing_at_the_point_limit() {
    let mut b = Board::new();
    b.apply(ADA, &begin(1));
    let mut start = 1u32;
    while start < MAX_POINTS_PER_STROKE {
        let n = (MAX_POINTS_PER_STROKE - start).min(1000) as usize;
        b.apply(ADA, &points(1, start, &vec![1; n]));
        start += n as u32;
    }
    assert_eq!(
        b.get(&id(1)).unwrap().points.len(),
        MAX_POINTS_PER_STROKE as usize
    );
    assert!(Board::from_snapshot(&b.snapshot()).is_ok());
}
