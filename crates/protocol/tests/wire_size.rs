//! How many bytes a point costs on the wire, measured on realistic freehand strokes.

use kokuban_protocol::limits::SUBPIXELS;
use kokuban_protocol::*;
use uuid::Uuid;

/// A handwriting-like stroke sampled like a browser's pointer events: a looping cursive path
/// drawn at a varying speed (slow at the turns, 150 to 900 px/s between them), sampled at
/// `rate_hz` with timing jitter, pressure rising at the start, wavering, and falling at the end.
/// Deterministic, so the figure is reproducible.
fn recorded_stroke(rate_hz: f64, seconds: f64) -> Vec<Point> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut jitter = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1000) as f64 / 1000.0 - 0.5
    };
    let n = (rate_hz * seconds) as usize;
    let mut points = Vec::with_capacity(n);
    let (mut x, mut y) = (400.0f64, 300.0f64);
    let mut t = 0.0f64;
    for i in 0..n {
        let dt = (1.0 + 0.2 * jitter()) / rate_hz;
        t += dt;
        // Direction turns like cursive loops; speed dips where the curvature peaks.
        let heading = 2.0 * (t * 3.1).sin() + 0.6 * t;
        let speed = 150.0 + 750.0 * (0.5 + 0.5 * (t * 6.2).cos()).powi(2);
        x += heading.cos() * speed * dt + 0.3 * jitter();
        y += heading.sin() * speed * dt * 0.6 + 0.3 * jitter();
        let progress = i as f64 / n as f64;
        let envelope = (progress * 8.0).min(1.0) * ((1.0 - progress) * 8.0).min(1.0);
        let pressure = envelope * (0.55 + 0.1 * (t * 9.0).sin());
        points.push(Point::from_px(x, y, pressure).unwrap());
    }
    points
}

/// An op as the client sends it, numbered as an op some way into a session.
fn op(op: Op) -> ClientMsg {
    ClientMsg::Op(Submit { n: 1000, op })
}

/// Bytes per point of a stroke sent as the client sends it: a StrokeBegin, then one batch per
/// animation frame (60 Hz), then a StrokeEnd. Frame headers and ids are included.
fn bytes_per_point(points: &[Point], rate_hz: f64) -> f64 {
    let id = StrokeId(Uuid::from_u128(0x1234));
    let mut total = encode_client(&op(Op::StrokeBegin {
        id,
        tool: Tool::Pen,
        color: Color::rgb(20, 20, 20),
        width: Width::from_px(3.0),
        first: points[0],
    }))
    .len();
    let per_frame = (rate_hz / 60.0).ceil() as usize;
    let mut start = 1;
    for chunk in points[1..].chunks(per_frame) {
        let batch = Points::new(chunk.to_vec()).unwrap();
        total += encode_client(&op(Op::StrokePoints(
            StrokePoints::new(id, start as u32, batch).unwrap(),
        )))
        .len();
        start += chunk.len();
    }
    total += encode_client(&op(Op::StrokeEnd { id })).len();
    total as f64 / points.len() as f64
}

/// The points alone, as one delta-encoded run (what a snapshot stores).
fn payload_bytes_per_point(points: &[Point]) -> f64 {
    let path = Path::new(points.to_vec()).unwrap();
    postcard::to_allocvec(&path).unwrap().len() as f64 / points.len() as f64
}

#[test]
fn a_freehand_point_costs_at_most_four_bytes() {
    assert_eq!(SUBPIXELS, 8, "figures below are for 1/8 px fixed point");
    for rate in [60.0, 90.0, 120.0] {
        let stroke = recorded_stroke(rate, 4.0);
        assert!(stroke.len() >= 240);
        let payload = payload_bytes_per_point(&stroke);
        println!(
            "{rate} Hz, {} points: {payload:.2} bytes/point in the delta run",
            stroke.len()
        );
        assert!(payload <= 4.0, "{payload:.2} bytes per point at {rate} Hz");
    }
}

#[test]
fn live_drawing_costs_little_more_than_the_points() {
    // Sent live, every animation frame carries the frame header and the stroke id too; at
    // 120 Hz two points share a frame.
    let stroke = recorded_stroke(120.0, 4.0);
    let live = bytes_per_point(&stroke, 120.0);
    println!(
        "120 Hz stroke sent live in 60 Hz frames: {live:.2} bytes/point including frame headers"
    );
    assert!(live <= 20.0, "{live:.2}");
}
