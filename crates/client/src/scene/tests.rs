use kokuban_board::Board;
use kokuban_protocol::{
    Bounded, Color, MemberId, Op, Placement, Point, Points, StrokePoints, Tool, Width,
};

use super::*;
use crate::geom::Pt;
use crate::rng::stroke_id_from;

const ME: MemberId = MemberId(1);

fn begin(b: &mut IndexedBoard, n: u128, x: f64, y: f64) -> Change {
    b.apply(
        ME,
        &Op::StrokeBegin {
            id: stroke_id_from(n),
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::from_px(4.0),
            first: Point::from_px(x, y, 0.5).unwrap(),
        },
    )
}

fn grow(b: &mut IndexedBoard, n: u128, start: u32, x: f64, y: f64) -> Change {
    let pts = Points::new(vec![Point::from_px(x, y, 0.5).unwrap()]).unwrap();
    b.apply(
        ME,
        &Op::StrokePoints(StrokePoints::new(stroke_id_from(n), start, pts).unwrap()),
    )
}

fn end(b: &mut IndexedBoard, n: u128) -> Change {
    b.apply(
        ME,
        &Op::StrokeEnd {
            id: stroke_id_from(n),
        },
    )
}

/// A finished horizontal stroke from `(x, y)` to `(x + 40, y)`.
fn stroke(b: &mut IndexedBoard, n: u128, x: f64, y: f64) {
    begin(b, n, x, y);
    grow(b, n, 1, x + 40.0, y);
    end(b, n);
}

#[test]
fn live_strokes_are_drawn_over_the_bitmap_until_finished_then_go_on_top() {
    let mut b = IndexedBoard::new(Board::new());
    let mut scene = Scene::new();
    let mut dirty = Rect::EMPTY;
    let change = begin(&mut b, 1, 0.0, 0.0);
    assert_eq!(
        scene.note(change, b.board(), &mut dirty),
        Noted {
            full: false,
            compose: true
        }
    );
    let change = grow(&mut b, 1, 1, 50.0, 0.0);
    assert!(scene.note(change, b.board(), &mut dirty).compose);
    assert_eq!(scene.live(b.board()), [stroke_id_from(1)]);
    assert!(scene.take_on_top().is_empty());
    let change = end(&mut b, 1);
    scene.note(change, b.board(), &mut dirty);
    assert!(scene.live(b.board()).is_empty());
    assert_eq!(scene.take_on_top(), [stroke_id_from(1)]);
    assert!(scene.take_on_top().is_empty());
    // Nothing on the bitmap changed under other strokes.
    assert!(dirty.is_empty());
    // A clear redraws everything; a reset takes the unfinished strokes as live.
    begin(&mut b, 2, 5.0, 5.0);
    assert!(scene.note(Change::Cleared, b.board(), &mut dirty).full);
    scene.reset(b.board());
    assert_eq!(scene.live(b.board()), [stroke_id_from(2)]);
}

#[test]
fn erasing_or_moving_a_stroke_dirties_where_it_was_and_where_it_is() {
    let mut b = IndexedBoard::new(Board::new());
    let mut scene = Scene::new();
    stroke(&mut b, 1, 100.0, 100.0);
    let s = b.get(&stroke_id_from(1)).unwrap().clone();
    let was = visual_bounds(&s);
    assert_eq!(scene.draw(&s, was), Draw::Build);
    assert_eq!(scene.draw(&s, was), Draw::Cached);
    // Moved 80 px right: both where it was drawn and where it is now are redrawn.
    let to = Bounded::new(vec![Placement::new(s.id, 640, 0).unwrap()]).unwrap();
    let change = b.apply(ME, &Op::Move { to });
    let mut dirty = Rect::EMPTY;
    scene.note(change, b.board(), &mut dirty);
    assert_eq!(dirty, was.union(was.translate(80.0, 0.0)));
    // Erased: where it was drawn last (moved).
    let mut dirty = Rect::EMPTY;
    let ids = Bounded::new(vec![s.id]).unwrap();
    let change = b.apply(ME, &Op::Erase { ids });
    assert!(scene.note(change, b.board(), &mut dirty).compose);
    assert_eq!(dirty, was.translate(80.0, 0.0));
}

#[test]
fn strokes_outside_the_area_are_skipped_and_grown_ones_rebuilt() {
    let mut b = IndexedBoard::new(Board::new());
    let mut scene = Scene::new();
    begin(&mut b, 1, 0.0, 0.0);
    grow(&mut b, 1, 1, 10.0, 0.0);
    let far = Rect::spanning(Pt::new(500.0, 500.0), Pt::new(600.0, 600.0));
    let near = Rect::spanning(Pt::new(-5.0, -5.0), Pt::new(5.0, 5.0));
    let s = b.get(&stroke_id_from(1)).unwrap().clone();
    assert_eq!(scene.draw(&s, far), Draw::Skip);
    assert_eq!(scene.draw(&s, near), Draw::Cached);
    grow(&mut b, 1, 2, 20.0, 0.0);
    let s = b.get(&stroke_id_from(1)).unwrap().clone();
    assert_eq!(scene.draw(&s, near), Draw::Build);
    assert_eq!(scene.draw(&s, near), Draw::Cached);
}

#[test]
fn a_stroke_under_a_later_one_is_covered_the_top_one_is_not() {
    let mut b = IndexedBoard::new(Board::new());
    let mut scene = Scene::new();
    stroke(&mut b, 1, 0.0, 0.0);
    stroke(&mut b, 2, 20.0, 0.0);
    stroke(&mut b, 3, 500.0, 500.0);
    assert!(scene.covered(&b, &stroke_id_from(1)));
    assert!(!scene.covered(&b, &stroke_id_from(2)));
    assert!(!scene.covered(&b, &stroke_id_from(3)));
    // The text under its editor is never drawn on top; opening and closing the editor
    // redraws where it is.
    let dirty = scene.hide(Some(stroke_id_from(3)), b.board());
    assert_eq!(dirty, visual_bounds(b.get(&stroke_id_from(3)).unwrap()));
    assert!(scene.covered(&b, &stroke_id_from(3)));
    assert_eq!(scene.hide(Some(stroke_id_from(3)), b.board()), Rect::EMPTY);
    assert_eq!(scene.hide(None, b.board()), dirty);
}
