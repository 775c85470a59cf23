use super::*;
use crate::geom::Pt;
use crate::rng::stroke_id_from;

fn ids(n: u128) -> Vec<StrokeId> {
    (1..=n).map(stroke_id_from).collect()
}

fn square(x: f64, y: f64, side: f64) -> Rect {
    Rect::spanning(Pt::new(x, y), Pt::new(x + side, y + side))
}

/// Runs a pass to the end on a simulated machine where a point costs `true_ms` and every
/// stroke has `points` points; returns the simulated work of each frame.
fn simulate(pass: &mut RedrawPass, model: &mut CostModel, points: usize, true_ms: f64) -> Vec<f64> {
    let mut frames = Vec::new();
    while !pass.is_done() {
        let step = pass.step(model, FRAME_BUDGET_MS, |_| Some(points)).len();
        let drawn = (step * points) as f64 + step as f64 * STROKE_OVERHEAD;
        let elapsed = drawn * true_ms;
        model.learn(drawn, elapsed);
        frames.push(elapsed);
    }
    frames
}

#[test]
fn every_stroke_is_handed_out_once_bottom_first_within_the_budget() {
    let all = ids(1000);
    let mut pass = RedrawPass::new(Viewport::default(), all.clone());
    let model = CostModel::default();
    let mut seen = Vec::new();
    let mut steps = 0;
    while !pass.is_done() {
        let step = pass.step(&model, FRAME_BUDGET_MS, |_| Some(40)).to_vec();
        assert!(!step.is_empty());
        let cost: f64 = step.iter().map(|_| model.estimate(40)).sum();
        assert!(cost <= FRAME_BUDGET_MS, "{cost} ms planned in one frame");
        // Not much less either: the budget is used.
        assert!(cost + model.estimate(40) > FRAME_BUDGET_MS || pass.is_done());
        seen.extend(step);
        steps += 1;
    }
    assert_eq!(seen, all);
    assert!(steps > 1);
    assert_eq!(pass.progress(), (1000, 1000));
    assert!(pass.step(&model, FRAME_BUDGET_MS, |_| Some(40)).is_empty());
}

#[test]
fn a_stroke_larger_than_the_budget_still_goes_alone_and_gone_ones_cost_nothing() {
    let mut pass = RedrawPass::new(Viewport::default(), ids(4));
    let model = CostModel::default();
    let huge = |id: &StrokeId| {
        Some(if *id == stroke_id_from(2) {
            1_000_000
        } else {
            1
        })
    };
    assert_eq!(
        pass.step(&model, FRAME_BUDGET_MS, huge),
        [stroke_id_from(1)]
    );
    assert_eq!(
        pass.step(&model, FRAME_BUDGET_MS, huge),
        [stroke_id_from(2)]
    );
    let mut pass = RedrawPass::new(Viewport::default(), ids(5000));
    assert_eq!(pass.step(&model, FRAME_BUDGET_MS, |_| None).len(), 5000);
}

#[test]
fn the_model_learns_the_machine_and_keeps_frames_near_the_budget() {
    // The board of the browser test: 10,000 strokes of 40 points, about 0.7 s in one go.
    let true_ms = 700.0 / (10_000.0 * (40.0 + STROKE_OVERHEAD));
    let mut model = CostModel::default();
    let mut pass = RedrawPass::new(Viewport::default(), ids(10_000));
    let frames = simulate(&mut pass, &mut model, 40, true_ms);
    assert!(frames.iter().all(|&ms| ms <= FRAME_BUDGET_MS + 1e-9));
    // After a few frames it knows the machine: the budget is nearly filled.
    assert!((model.ms_per_point() - true_ms).abs() < true_ms * 0.01);
    let busy = frames[5..frames.len() - 1]
        .iter()
        .all(|&ms| ms > FRAME_BUDGET_MS * 0.9);
    assert!(busy, "{frames:?}");
    let total: f64 = frames.iter().sum();
    assert!(frames.len() as f64 <= (total / FRAME_BUDGET_MS) * 1.15 + 5.0);

    // A machine five times slower than the first guess: one frame over budget, then it adapts.
    let slow = INITIAL_MS_PER_POINT * 5.0;
    let mut model = CostModel::default();
    let mut pass = RedrawPass::new(Viewport::default(), ids(2000));
    let frames = simulate(&mut pass, &mut model, 40, slow);
    assert!(frames[0] > FRAME_BUDGET_MS);
    assert!(frames[4..].iter().all(|&ms| ms <= FRAME_BUDGET_MS * 1.1));
    // Nonsense measures are ignored.
    let before = model;
    model.learn(0.0, 5.0);
    model.learn(10.0, f64::NAN);
    model.learn(10.0, -1.0);
    assert_eq!(model, before);
}

#[test]
fn changes_during_a_pass_are_kept_as_few_separate_areas() {
    let mut pass = RedrawPass::new(Viewport::default(), ids(10));
    pass.changed(Rect::EMPTY);
    pass.changed(square(0.0, 0.0, 10.0));
    pass.changed(square(1000.0, 0.0, 10.0));
    // Overlaps both: the three become one.
    pass.changed(Rect::spanning(Pt::new(5.0, 5.0), Pt::new(1005.0, 6.0)));
    pass.changed(square(0.0, 5000.0, 10.0));
    let dirty = pass.take_dirty();
    assert_eq!(dirty.len(), 2);
    assert!(dirty.contains(&Rect::spanning(Pt::new(0.0, 0.0), Pt::new(1010.0, 10.0))));
    assert!(dirty.contains(&square(0.0, 5000.0, 10.0)));
    assert!(pass.take_dirty().is_empty());
    // Many scattered changes end up as one area holding them all.
    for i in 0..=MAX_DIRTY {
        pass.changed(square(i as f64 * 100.0, 0.0, 10.0));
    }
    assert_eq!(
        pass.take_dirty(),
        [Rect::spanning(
            Pt::new(0.0, 0.0),
            Pt::new(MAX_DIRTY as f64 * 100.0 + 10.0, 10.0)
        )]
    );
}
