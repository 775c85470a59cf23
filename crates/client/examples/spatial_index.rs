//! How much the spatial index saves the eraser and the picker on a board of 10,000 strokes
//! (the browser perf test's board: 40-point pen strokes over 2,000 × 1,500 px). Prints figures
//! rather than asserting them, as timings depend on the machine:
//!
//! ```sh
//! cargo run --release -p kokuban-client --example spatial_index
//! ```

use std::hint::black_box;
use std::time::Instant;

use kokuban_board::Board;
use kokuban_client::geom::{Pt, hits, reach_area};
use kokuban_client::rng::{Entropy, Xoshiro256, new_stroke_id};
use kokuban_client::spatial::IndexedBoard;
use kokuban_client::tools::{TOUCH_RADIUS, pick};
use kokuban_protocol::{Color, MemberId, Op, Point, Points, StrokeId, StrokePoints, Tool, Width};

const STROKES: usize = 10_000;
const QUERIES: usize = 2_000;

fn main() {
    let mut rng = Xoshiro256::seeded(1);
    let mut board = Board::new();
    let me = MemberId(1);
    for n in 0..STROKES {
        let id = new_stroke_id(&mut rng);
        let (x0, y0) = ((n * 37 % 2000) as f64, (n * 91 % 1500) as f64);
        let pts: Vec<Point> = (0..40)
            .map(|i| {
                let t = f64::from(i);
                Point::from_px(x0 + t * 3.0, y0 + (t / 4.0).sin() * 12.0, 0.5).unwrap()
            })
            .collect();
        board.apply(
            me,
            &Op::StrokeBegin {
                id,
                tool: Tool::Pen,
                color: Color::rgb(0, 0, 0),
                width: Width::from_px(2.0 + (n % 3) as f64),
                first: pts[0],
            },
        );
        let batch = StrokePoints::new(id, 1, Points::new(pts[1..].to_vec()).unwrap()).unwrap();
        board.apply(me, &Op::StrokePoints(batch));
        board.apply(me, &Op::StrokeEnd { id });
    }
    let started = Instant::now();
    let indexed = IndexedBoard::new(board.clone());
    println!(
        "{STROKES} strokes indexed in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // Eraser swipes: short pointer moves at zoom 1 all over the board.
    let moves: Vec<(Pt, Pt)> = (0..QUERIES)
        .map(|_| {
            let a = Pt::new(rng.unit() * 2100.0, rng.unit() * 1550.0);
            (a, Pt::new(a.x + rng.unit() * 12.0, a.y + rng.unit() * 12.0))
        })
        .collect();
    let r = TOUCH_RADIUS;
    let (linear_ms, linear_hits) = time(|| {
        moves
            .iter()
            .map(|&(a, b)| board.strokes().filter(|s| hits(s, a, b, r)).count())
            .sum()
    });
    let (indexed_ms, indexed_hits) = time(|| {
        moves
            .iter()
            .map(|&(a, b)| {
                indexed
                    .strokes_in(reach_area(a, b, r))
                    .filter(|s| hits(s, a, b, r))
                    .count()
            })
            .sum()
    });
    assert_eq!(linear_hits, indexed_hits, "both find the same strokes");
    report("eraser move", linear_ms, indexed_ms);

    // Picking the topmost stroke under a click.
    let (linear_ms, linear_found) = time(|| {
        moves
            .iter()
            .filter_map(|&(a, _)| {
                let all: Vec<_> = board.strokes().collect();
                all.into_iter()
                    .rev()
                    .find(|s| hits(s, a, a, r))
                    .map(|s| s.id)
            })
            .map(|id: StrokeId| id.0.as_u128() as usize & 1)
            .sum()
    });
    let (indexed_ms, indexed_found) = time(|| {
        moves
            .iter()
            .filter_map(|&(a, _)| pick(&indexed, a, r))
            .map(|id| id.0.as_u128() as usize & 1)
            .sum()
    });
    assert_eq!(linear_found, indexed_found, "both pick the same strokes");
    report("pick", linear_ms, indexed_ms);
}

/// Runs `f`, returning its time per query in ms and its result.
fn time(f: impl FnOnce() -> usize) -> (f64, usize) {
    let started = Instant::now();
    let out = black_box(f());
    (started.elapsed().as_secs_f64() * 1e3 / QUERIES as f64, out)
}

fn report(what: &str, linear_ms: f64, indexed_ms: f64) {
    println!(
        "{what}: scan of every stroke {linear_ms:.3} ms, spatial index {indexed_ms:.4} ms \
         ({:.0}× faster)",
        linear_ms / indexed_ms.max(1e-9)
    );
}
