use kokuban_board::MAX_TOMBSTONES;
use kokuban_protocol::limits::MAX_IDS_PER_OP;
use kokuban_protocol::{Bounded, Color, Placement, Point, Points, StrokePoints, Text, Width};

use super::*;
use crate::geom::{hits, reach_area, touch_bounds, visual_bounds};
use crate::rng::{Entropy, Xoshiro256, stroke_id_from};
use crate::tools::pick;

const ME: MemberId = MemberId(1);

fn pt(x: f64, y: f64) -> Point {
    Point::from_px(x, y, 0.5).unwrap()
}

fn begin(n: u128, tool: Tool, x: f64, y: f64) -> Op {
    Op::StrokeBegin {
        id: stroke_id_from(n),
        tool,
        color: Color::rgb(0, 0, 0),
        width: Width::from_px(4.0),
        first: pt(x, y),
    }
}

fn points(n: u128, start: u32, pts: &[(f64, f64)]) -> Op {
    let pts = Points::new(pts.iter().map(|&(x, y)| pt(x, y)).collect()).unwrap();
    Op::StrokePoints(StrokePoints::new(stroke_id_from(n), start, pts).unwrap())
}

fn ids(list: &[StrokeId]) -> Bounded<StrokeId, MAX_IDS_PER_OP> {
    Bounded::new(list.to_vec()).unwrap()
}

/// What a scan of every stroke finds in `area`.
fn linear(board: &Board, area: Rect) -> Vec<StrokeId> {
    board
        .strokes()
        .filter(|s| visual_bounds(s).intersects(&area))
        .map(|s| s.id)
        .collect()
}

/// What the index finds in `area`, narrowed to the exact bounds.
fn indexed(b: &IndexedBoard, area: Rect) -> Vec<StrokeId> {
    b.strokes_in(area)
        .filter(|s| visual_bounds(s).intersects(&area))
        .map(|s| s.id)
        .collect()
}

fn erased_along(board: &Board, from: Pt, to: Pt, r: f64) -> Vec<StrokeId> {
    board
        .strokes()
        .filter(|s| hits(s, from, to, r))
        .map(|s| s.id)
        .collect()
}

fn erased_along_indexed(b: &IndexedBoard, from: Pt, to: Pt, r: f64) -> Vec<StrokeId> {
    b.strokes_in(reach_area(from, to, r))
        .filter(|s| hits(s, from, to, r))
        .map(|s| s.id)
        .collect()
}

#[test]
fn queries_find_strokes_by_their_cells_in_drawing_order() {
    let mut b = IndexedBoard::default();
    b.apply(ME, &begin(1, Tool::Pen, 10.0, 10.0));
    b.apply(ME, &points(1, 1, &[(600.0, 10.0)]));
    b.apply(ME, &begin(2, Tool::Pen, 500.0, 0.0));
    b.apply(ME, &begin(3, Tool::Pen, 5000.0, 5000.0));
    let near = Rect::spanning(Pt::new(400.0, 0.0), Pt::new(520.0, 20.0));
    assert_eq!(
        b.index().query(near),
        vec![stroke_id_from(1), stroke_id_from(2)]
    );
    assert!(b.index().query(Rect::EMPTY).is_empty());
    let everything = Rect::spanning(Pt::new(-1e9, -1e9), Pt::new(1e9, 1e9));
    assert_eq!(b.index().query(everything).len(), 3);
    // A move takes a stroke out of its old cells and into new ones.
    let to = Bounded::new(vec![
        Placement::new(stroke_id_from(2), 8 * 4000, 0).unwrap(),
    ]);
    b.apply(ME, &Op::Move { to: to.unwrap() });
    assert_eq!(b.index().query(near), vec![stroke_id_from(1)]);
    // Erased strokes are not found; restored ones are, in their old place in the order.
    b.apply(
        ME,
        &Op::Erase {
            ids: ids(&[stroke_id_from(1)]),
        },
    );
    assert!(b.index().query(near).is_empty());
    b.apply(ME, &begin(4, Tool::Pen, 450.0, 10.0));
    b.apply(
        ME,
        &Op::Restore {
            ids: ids(&[stroke_id_from(1)]),
        },
    );
    assert_eq!(
        b.index().query(near),
        vec![stroke_id_from(1), stroke_id_from(4)]
    );
    b.apply(ME, &Op::Clear);
    assert!(b.index().is_empty() && b.index().query(everything).is_empty());
}

#[test]
fn a_stroke_begun_again_under_a_forgotten_id_goes_on_top() {
    let mut b = IndexedBoard::default();
    b.apply(ME, &begin(1, Tool::Pen, 0.0, 0.0));
    // Enough erased strokes after it that the board forgets its tombstone.
    for n in 0..=MAX_TOMBSTONES as u128 {
        let op = begin(100 + n, Tool::Pen, 0.0, 0.0);
        b.apply(ME, &op);
        let gone = if n == 0 {
            stroke_id_from(1)
        } else {
            stroke_id_from(99 + n)
        };
        b.apply(ME, &Op::Erase { ids: ids(&[gone]) });
    }
    assert!(b.get(&stroke_id_from(1)).is_none());
    b.apply(ME, &begin(1, Tool::Pen, 0.0, 0.0));
    let area = Rect::spanning(Pt::new(-1.0, -1.0), Pt::new(1.0, 1.0));
    assert_eq!(indexed(&b, area), linear(&b, area));
    assert_eq!(indexed(&b, area).last(), Some(&stroke_id_from(1)));
}

/// Random ops of every kind on a random board; after each, the index agrees with a scan.
#[test]
fn the_index_answers_exactly_what_a_scan_of_every_stroke_answers() {
    let tools = [
        Tool::Pen,
        Tool::Highlighter,
        Tool::Line,
        Tool::Arrow,
        Tool::Rect,
        Tool::Ellipse,
    ];
    for seed in 0..20u64 {
        let mut rng = Xoshiro256::seeded(seed);
        let mut b = IndexedBoard::default();
        let mut next = 1u128;
        // Strokes begun and not yet ended, with their point counts.
        let mut open: Vec<(u128, u32)> = Vec::new();
        let span = 200.0 + rng.unit() * 3000.0;
        let coord = |rng: &mut Xoshiro256| (rng.unit() - 0.3) * span;
        for _ in 0..250 {
            let all: Vec<StrokeId> = b.all_strokes().map(|s| s.id).collect();
            let any = |rng: &mut Xoshiro256| all[(rng.next_u64() % all.len() as u64) as usize];
            let op = match rng.next_u64() % 10 {
                0..=2 => {
                    let tool = tools[(rng.next_u64() % tools.len() as u64) as usize];
                    open.push((next, 1));
                    next += 1;
                    begin(next - 1, tool, coord(&mut rng), coord(&mut rng))
                }
                3 | 4 if !open.is_empty() => {
                    let i = (rng.next_u64() % open.len() as u64) as usize;
                    let (n, count) = open[i];
                    let k = 1 + rng.next_u64() % 5;
                    let pts: Vec<(f64, f64)> =
                        (0..k).map(|_| (coord(&mut rng), coord(&mut rng))).collect();
                    open[i].1 += k as u32;
                    points(n, count, &pts)
                }
                5 if !open.is_empty() => {
                    let (n, _) = open.swap_remove((rng.next_u64() % open.len() as u64) as usize);
                    Op::StrokeEnd {
                        id: stroke_id_from(n),
                    }
                }
                6 => {
                    next += 1;
                    Op::Text {
                        id: stroke_id_from(next - 1),
                        at: pt(coord(&mut rng), coord(&mut rng)),
                        color: Color::rgb(0, 0, 0),
                        size: Width::from_px(8.0 + rng.unit() * 40.0),
                        text: Text::new("some words\nand more").unwrap(),
                    }
                }
                7 if !all.is_empty() => Op::Erase {
                    ids: ids(&[any(&mut rng), any(&mut rng)]),
                },
                8 if !all.is_empty() => Op::Restore {
                    ids: ids(&[any(&mut rng)]),
                },
                9 if !all.is_empty() => {
                    let id = any(&mut rng);
                    let dx = ((rng.unit() - 0.5) * 8000.0) as i32;
                    let dy = ((rng.unit() - 0.5) * 8000.0) as i32;
                    let p = Placement::new(id, dx, dy).unwrap();
                    Op::Move {
                        to: Bounded::new(vec![p]).unwrap(),
                    }
                }
                _ if rng.next_u64().is_multiple_of(50) => Op::Clear,
                _ => continue,
            };
            b.apply(ME, &op);
            if op == Op::Clear {
                open.clear();
            }
            check(&b, &mut rng);
        }
        // Built from scratch, the index answers the same as the one kept op by op.
        let rebuilt = IndexedBoard::new(b.board().clone());
        check(&rebuilt, &mut rng);
        let area = Rect::spanning(Pt::new(0.0, 0.0), Pt::new(span / 2.0, span / 2.0));
        assert_eq!(indexed(&rebuilt, area), indexed(&b, area));
    }
}

fn check(b: &IndexedBoard, rng: &mut Xoshiro256) {
    for s in b.strokes() {
        let held = b
            .index()
            .bounds(&s.id)
            .expect("every visible stroke is indexed");
        let exact = touch_bounds(s);
        // Exact once finished; while a shape is drawn, it may still hold more.
        if s.finished {
            assert_eq!(held, exact);
        } else {
            assert!(held.contains_rect(&exact));
        }
    }
    assert_eq!(b.index().len(), b.len());
    for _ in 0..8 {
        let c = Pt::new((rng.unit() - 0.3) * 4000.0, (rng.unit() - 0.3) * 4000.0);
        let size = rng.unit() * rng.unit() * 3000.0;
        let area = Rect::spanning(c, Pt::new(c.x + size, c.y + size * rng.unit()));
        assert_eq!(indexed(b, area), linear(b, area));
        let to = Pt::new(c.x + rng.unit() * 300.0, c.y + rng.unit() * 300.0);
        let r = 1.0 + rng.unit() * 40.0;
        assert_eq!(erased_along_indexed(b, c, to, r), erased_along(b, c, to, r));
        let linear_pick = b
            .strokes()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|s| hits(s, c, c, r))
            .map(|s| s.id);
        assert_eq!(pick(b, c, r), linear_pick);
    }
}
