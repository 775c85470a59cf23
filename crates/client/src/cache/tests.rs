use kokuban_board::Board;
use kokuban_protocol::{Color, MemberId, Op, Point, Points, StrokePoints, Tool, Width};

use super::*;
use crate::rng::stroke_id_from;

/// A screen of 800 × 600 CSS pixels at ratio 1: bitmaps of 1056 × 856.
fn cache() -> BoardCache {
    let mut c = BoardCache::new();
    assert_eq!(c.resize(1.0, (800, 600)), (1056, 856));
    c
}

/// A board of finished strokes, one every 100 px along y = 50, from x = 0 to 4900.
fn board() -> IndexedBoard {
    let mut b = Board::new();
    for n in 0..50u32 {
        let id = stroke_id_from(u128::from(n) + 1);
        let x = f64::from(n) * 100.0;
        b.apply(
            MemberId(1),
            &Op::StrokeBegin {
                id,
                tool: Tool::Pen,
                color: Color::rgb(0, 0, 0),
                width: Width::from_px(4.0),
                first: Point::from_px(x, 50.0, 0.5).unwrap(),
            },
        );
        let more = Points::new(vec![Point::from_px(x + 20.0, 50.0, 0.5).unwrap()]).unwrap();
        b.apply(
            MemberId(1),
            &Op::StrokePoints(StrokePoints::new(id, 1, more).unwrap()),
        );
        b.apply(MemberId(1), &Op::StrokeEnd { id });
    }
    IndexedBoard::new(b)
}

/// Runs a pass to its end; returns the strokes it drew.
fn run(c: &mut BoardCache, b: &IndexedBoard) -> Vec<StrokeId> {
    let mut drawn = Vec::new();
    while let Some((_, ids)) = c.step(b, 1.0, None) {
        drawn.extend(ids);
        if let Some(dirty) = c.finish() {
            assert!(dirty.is_empty());
            break;
        }
    }
    drawn
}

/// A bitmap drawn for the default view, on screen.
fn ready(b: &IndexedBoard) -> BoardCache {
    let mut c = cache();
    let view = Viewport::default();
    assert!(c.due(0.0));
    assert_eq!(
        c.follow(view, 0.0, true),
        Follow::Redraw(c.camera_for(view))
    );
    c.start(b, c.camera_for(view));
    run(&mut c, b);
    assert!(c.covers(view));
    c
}

#[test]
fn the_first_pass_draws_what_the_bitmap_shows_bottom_first() {
    let b = board();
    let mut c = cache();
    let view = Viewport::default();
    assert_eq!(c.show(view), Show::Nothing);
    c.start(&b, c.camera_for(view));
    let drawn = run(&mut c, &b);
    // The bitmap reaches 128 px past the screen's right edge (x < 928): strokes 0..=9.
    assert_eq!(drawn, (1..=10).map(stroke_id_from).collect::<Vec<_>>());
    assert_eq!(c.camera(), Some(c.camera_for(view)));
    assert_eq!(
        c.show(view),
        Show::At {
            x: -128.0,
            y: -128.0
        }
    );
    assert!(!c.due(1000.0));
    assert!(c.take_compose());
    assert!(!c.take_compose());
}

#[test]
fn a_small_pan_moves_the_copy_a_larger_one_shifts_pixels_and_draws_the_strip() {
    let b = board();
    let mut c = ready(&b);
    let mut view = Viewport::default();
    // 100 px: within the margin, nothing to draw.
    view.pan(-100.0, 0.0, 1.0);
    assert!(c.covers(view));
    assert_eq!(c.follow(view, 10.0, true), Follow::Stay);
    assert_eq!(
        c.show(view),
        Show::At {
            x: -228.0,
            y: -128.0
        }
    );
    // 300 px: the pixels move 300 px left, and the strip on the right is drawn.
    view.pan(-200.0, 0.0, 1.0);
    assert!(!c.covers(view));
    let Follow::Shift { dx, dy, strips } = c.follow(view, 20.0, true) else {
        panic!("a shift")
    };
    assert_eq!((dx, dy), (-300.0, 0.0));
    assert_eq!(
        strips,
        [Rect::spanning(
            Pt::new(928.0, -128.0),
            Pt::new(1228.0, 728.0)
        )]
    );
    assert!(c.covers(view));
    assert_eq!(
        c.show(view),
        Show::At {
            x: -128.0,
            y: -128.0
        }
    );
    // Past the whole bitmap: nothing is reusable, a pass redraws it.
    view.pan(-5000.0, 0.0, 1.0);
    assert_eq!(
        c.follow(view, 30.0, true),
        Follow::Redraw(c.camera_for(view))
    );
}

#[test]
fn a_zoom_shows_the_bitmap_scaled_and_redraws_it_sharp_once_settled() {
    let b = board();
    let mut c = ready(&b);
    let mut view = Viewport::default();
    view.zoom_at(Pt::new(0.0, 0.0), 2.0);
    c.moved(view, 100.0, false);
    assert_eq!(c.follow(view, 100.0, true), Follow::Stay);
    assert_eq!(
        c.show(view),
        Show::Scaled {
            x: -256.0,
            y: -256.0,
            scale: 2.0
        }
    );
    assert!(!c.due(100.0 + SETTLE_MS - 1.0));
    // Still zooming: the timer starts over.
    view.zoom_at(Pt::new(0.0, 0.0), 1.5);
    c.moved(view, 150.0, false);
    assert_eq!(c.follow(view, 150.0, true), Follow::Stay);
    assert!(!c.due(100.0 + SETTLE_MS));
    assert!(c.due(150.0 + SETTLE_MS));
    c.start(&b, c.camera_for(view));
    assert!(!c.due(150.0 + SETTLE_MS));
    // Zoomed 3×: the bitmap holds x < (800 + 2·128) / 3 - 128 / 3, strokes 0..=3.
    assert_eq!(run(&mut c, &b).len(), 4);
    assert_eq!(
        c.show(view),
        Show::At {
            x: -128.0,
            y: -128.0
        }
    );
}

#[test]
fn a_pass_for_a_view_that_is_gone_is_dropped_and_changes_meanwhile_are_redrawn() {
    let b = board();
    let mut c = ready(&b);
    c.invalidate();
    let view = Viewport::default();
    assert!(c.due(0.0));
    c.start(&b, c.camera_for(view));
    assert!(c.step(&b, 0.001, None).is_some());
    // Someone draws meanwhile: the area is redrawn on the finished bitmap.
    let area = Rect::spanning(Pt::new(10.0, 10.0), Pt::new(20.0, 20.0));
    c.changed(area);
    while c.step(&b, 1.0, None).is_some() {
        if let Some(dirty) = c.finish() {
            assert_eq!(dirty, [area]);
            break;
        }
    }
    // A zoom during a pass drops it; the stale bitmap waits for the zoom to settle.
    c.invalidate();
    c.start(&b, c.camera_for(view));
    let mut zoomed = view;
    zoomed.zoom_at(Pt::new(0.0, 0.0), 2.0);
    c.moved(zoomed, 500.0, false);
    assert!(!c.is_redrawing());
    assert!(!c.due(500.0));
    assert!(c.due(500.0 + SETTLE_MS));

    // A stale bitmap waits for a pan to settle; after a resize (which blanks the screen)
    // there is nothing to wait with.
    let mut panned = view;
    panned.pan(-10.0, 0.0, 1.0);
    for (resized, due) in [(false, false), (true, true)] {
        let mut c = ready(&b);
        c.invalidate();
        c.moved(panned, 600.0, resized);
        assert_eq!(c.due(600.0), due);
    }
}

#[test]
fn a_pass_leaves_out_the_hidden_text_and_strokes_gone_meanwhile() {
    let b = board();
    let mut c = cache();
    c.start(&b, c.camera_for(Viewport::default()));
    let hidden = stroke_id_from(2);
    let (_, ids) = c.step(&b, 1000.0, Some(hidden)).unwrap();
    assert_eq!(ids.len(), 9);
    assert!(!ids.contains(&hidden));
}

#[test]
fn a_redrawn_area_is_clipped_to_whole_device_pixels_within_the_bitmap() {
    let b = board();
    let mut c = cache();
    assert_eq!(
        c.clip(Rect::spanning(Pt::new(0.0, 0.0), Pt::new(1.0, 1.0))),
        None
    );
    c.resize(2.0, (1600, 1200));
    c.start(&b, c.camera_for(Viewport::default()));
    run(&mut c, &b);
    // Camera origin (-128, -128), 2 device pixels per world pixel.
    let (rect, region) = c
        .clip(Rect::spanning(Pt::new(10.2, 20.0), Pt::new(30.0, 40.7)))
        .unwrap();
    assert_eq!(
        rect,
        DeviceRect {
            x: 275.0,
            y: 295.0,
            w: 42.0,
            h: 44.0
        }
    );
    assert_eq!(
        region,
        Rect::spanning(Pt::new(9.5, 19.5), Pt::new(30.5, 41.5))
    );
    // Off the bitmap: nothing.
    assert_eq!(
        c.clip(Rect::spanning(Pt::new(5000.0, 0.0), Pt::new(5010.0, 10.0))),
        None
    );
}
