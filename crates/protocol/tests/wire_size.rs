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

/// Bytes per point of a stroke sent as the client sends it: a StrokeBegin, then one batch per
/// animation frame (60 Hz), by handle, then a StrokeEnd. The client's WebSocket header (six
/// bytes up to 125, masked) is included.
fn bytes_per_point(points: &[Point], rate_hz: f64) -> f64 {
    let id = StrokeId(Uuid::from_u128(0x1234));
    let mut handles = Handles::new();
    let mut n = 1000;
    let mut send = |op: Op| {
        n += 1;
        handles.encode(&ClientMsg::Op(Submit { n, op })).len() + 6
    };
    let mut total = send(Op::StrokeBegin {
        id,
        tool: Tool::Pen,
        color: Color::rgb(20, 20, 20),
        width: Width::from_px(3.0),
        first: points[0],
    });
    let per_frame = (rate_hz / 60.0).ceil() as usize;
    let mut start = 1;
    for chunk in points[1..].chunks(per_frame) {
        let batch = Points::new(chunk.to_vec()).unwrap();
        total += send(Op::StrokePoints(
            StrokePoints::new(id, start as u32, batch).unwrap(),
        ));
        start += chunk.len();
    }
    total += send(Op::StrokeEnd { id });
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
    // Sent live, every animation frame carries a WebSocket header (six bytes from a client)
    // and one byte naming the stroke's handle: seven bytes; at 120 Hz two points share a
    // frame, at 240 Hz four. The points themselves are bit codes of how far each strays from
    // the stroke's heading, fewer bytes than their delta run at rest.
    for rate in [120.0, 240.0] {
        let stroke = recorded_stroke(rate, 4.0);
        let live = bytes_per_point(&stroke, rate);
        let payload = payload_bytes_per_point(&stroke);
        println!(
            "{rate} Hz stroke sent live in 60 Hz frames: {live:.2} bytes/point with headers, {payload:.2} at rest"
        );
        let frames_per_point = 60.0 / rate;
        assert!(live <= payload + 7.5 * frames_per_point, "{live:.2}");
        if rate >= 240.0 {
            assert!(live <= 4.0, "{live:.2} bytes per point at {rate} Hz");
        }
    }
}
