use kokuban_board::Board;
use kokuban_protocol::{Bounded, Color, MemberId, Op, Placement, Point, Points, Text, Tool, Width};

use super::*;
use crate::rng::{Xoshiro256, stroke_id_from};

const ME: MemberId = MemberId(1);

fn pt(x: f64, y: f64) -> Point {
    Point::from_px(x, y, 0.5).unwrap()
}

/// A board with a pen stroke (id 1, moved by (8, 4) px), a red rectangle (id 2) and a text
/// item (id 3), drawn in that order.
fn board() -> Board {
    let mut b = Board::new();
    let stroke = |b: &mut Board, n: u128, tool: Tool, color: Color, pts: &[(f64, f64)]| {
        let id = stroke_id_from(n);
        b.apply(
            ME,
            &Op::StrokeBegin {
                id,
                tool,
                color,
                width: Width::from_px(4.0),
                first: pt(pts[0].0, pts[0].1),
            },
        );
        let rest = Points::new(pts[1..].iter().map(|&(x, y)| pt(x, y)).collect()).unwrap();
        b.apply(
            ME,
            &Op::StrokePoints(StrokePoints::new(id, 1, rest).unwrap()),
        );
        b.apply(ME, &Op::StrokeEnd { id });
    };
    stroke(
        &mut b,
        1,
        Tool::Pen,
        Color::rgb(0x1e, 0x1e, 0x1e),
        &[(0.0, 0.0), (10.0, 5.0), (20.0, 0.0)],
    );
    b.apply(
        ME,
        &Op::Move {
            to: Bounded::new(vec![Placement::new(stroke_id_from(1), 64, 32).unwrap()]).unwrap(),
        },
    );
    stroke(
        &mut b,
        2,
        Tool::Rect,
        Color::rgb(0xe0, 0x31, 0x31),
        &[(100.0, 100.0), (200.0, 150.0)],
    );
    b.apply(
        ME,
        &Op::Text {
            id: stroke_id_from(3),
            at: pt(50.0, 300.0),
            color: Color::rgb(0x19, 0x71, 0xc2),
            size: Width::from_px(24.0),
            text: Text::new("two\nlines").unwrap(),
        },
    );
    b
}

/// Applies a paste's ops to `board` as they would be applied in the room.
fn apply(board: &mut Board, pasted: &Pasted) {
    for op in &pasted.ops {
        board.apply(ME, op);
    }
}

#[test]
fn a_copy_keeps_drawing_order_and_moves_and_survives_json() {
    let b = board();
    // Selected in the "wrong" order: the clip still stacks them as the board does.
    let ids = [stroke_id_from(3), stroke_id_from(1)];
    let clip = Clip::of(&b, &ids).unwrap();
    assert_eq!(clip.len(), 2);
    let json = clip.to_json();
    assert!(
        json.starts_with("{\"kokuban\":1,\"items\":[{\"type\":\"ink\",\"tool\":\"pen\""),
        "{json}"
    );
    // The move is part of where the stroke is.
    assert!(json.contains("[8.0,4.0,"), "{json}");
    assert!(json.contains("\"text\":\"two\\nlines\""), "{json}");
    assert_eq!(Clip::from_json(&json), Some(clip.clone()));
    // Nothing selected, or nothing that exists: no clip.
    assert_eq!(Clip::of(&b, &[]), None);
    assert_eq!(Clip::of(&b, &[stroke_id_from(9)]), None);
}

#[test]
fn a_paste_makes_new_items_at_the_pointer_with_fresh_ids() {
    let mut b = board();
    let all: Vec<StrokeId> = b.strokes().map(|s| s.id).collect();
    let clip = Clip::from_json(&Clip::of(&b, &all).unwrap().to_json()).unwrap();
    let mut rng = Xoshiro256::seeded(4);
    let target = Pt::new(1000.0, -500.0);
    let pasted = clip.paste_at(target, &mut rng);
    assert_eq!(pasted.ids.len(), 3);
    assert!(pasted.ids.iter().all(|id| !all.contains(id)));
    // Only creating ops: the originals are neither moved nor revived.
    assert!(pasted.ops.iter().all(|op| matches!(
        op,
        Op::StrokeBegin { .. } | Op::StrokePoints(_) | Op::StrokeEnd { .. } | Op::Text { .. }
    )));
    apply(&mut b, &pasted);
    assert_eq!(b.len(), 6);
    // The copies are centred on the target, in the same order, each a finished item.
    let copies: Vec<&Stroke> = pasted.ids.iter().map(|id| b.get(id).unwrap()).collect();
    assert!(copies.iter().all(|s| s.finished && s.author == ME));
    let bounds = copies
        .iter()
        .map(|s| visual_bounds(s))
        .fold(Rect::EMPTY, Rect::union);
    assert!(bounds.center().dist(target) <= 0.125, "{bounds:?}");
    let order: Vec<StrokeId> = b.strokes().map(|s| s.id).skip(3).collect();
    assert_eq!(order, pasted.ids);
    // Same shapes, moved as a whole: the pen stroke keeps its points relative to the text.
    let (pen, text) = (copies[0], copies[2]);
    let (op, ot) = (b.get(&all[0]).unwrap(), b.get(&all[2]).unwrap());
    let rel = |a: &Stroke, b: &Stroke| {
        let (p, q) = (
            a.placed_points().next().unwrap(),
            b.placed_points().next().unwrap(),
        );
        (p.x() - q.x(), p.y() - q.y())
    };
    assert_eq!(rel(pen, text), rel(op, ot));
    assert_eq!(pen.points.len(), 3);
    assert_eq!(pen.shape, Shape::Ink(Tool::Pen));
    assert_eq!(copies[1].color, Color::rgb(0xe0, 0x31, 0x31));
    assert!(matches!(&text.shape, Shape::Text(t) if t.as_str() == "two\nlines"));
}

#[test]
fn a_long_stroke_is_pasted_in_batches_within_the_protocols_limits() {
    let mut b = Board::new();
    let id = stroke_id_from(1);
    let pts: Vec<Point> = (0..2500).map(|i| pt(f64::from(i), 0.0)).collect();
    b.apply(
        ME,
        &Op::StrokeBegin {
            id,
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::from_px(2.0),
            first: pts[0],
        },
    );
    for (i, chunk) in pts[1..].chunks(1000).enumerate() {
        let batch = StrokePoints::new(
            id,
            1 + 1000 * i as u32,
            Points::new(chunk.to_vec()).unwrap(),
        )
        .unwrap();
        b.apply(ME, &Op::StrokePoints(batch));
    }
    b.apply(ME, &Op::StrokeEnd { id });
    let pasted = Clip::of(&b, &[id])
        .unwrap()
        .paste_moved((80, 0), &mut Xoshiro256::seeded(1));
    // Begin (point 0), three batches (1024 + 1024 + 451), end.
    assert_eq!(pasted.ops.len(), 5);
    apply(&mut b, &pasted);
    let copy = b.get(&pasted.ids[0]).unwrap();
    assert_eq!(copy.points.len(), 2500);
    assert_eq!(copy.points[2499].x(), pts[2499].x() + 80);
}

#[test]
fn clipboard_text_that_is_not_a_valid_clip_is_refused() {
    for text in [
        "",
        "hello",
        "{\"kokuban\": 2, \"items\": []}",
        "{\"kokuban\": 1, \"items\": []}",
        "{\"other\": 1}",
        // A point out of the world's bounds, a colour that is not one, an empty stroke.
        "{\"kokuban\":1,\"items\":[{\"type\":\"ink\",\"tool\":\"pen\",\"color\":\"#000000\",\"width\":2,\"points\":[[1e12,0,0.5]]}]}",
        "{\"kokuban\":1,\"items\":[{\"type\":\"ink\",\"tool\":\"pen\",\"color\":\"black\",\"width\":2,\"points\":[[1,0,0.5]]}]}",
        "{\"kokuban\":1,\"items\":[{\"type\":\"ink\",\"tool\":\"pen\",\"color\":\"#000000\",\"width\":2,\"points\":[]}]}",
        "{\"kokuban\":1,\"items\":[{\"type\":\"text\",\"at\":[0,0],\"color\":\"#000000\",\"size\":20,\"text\":\"bell\\u0007\"}]}",
        "{\"kokuban\":1,\"items\":[{\"type\":\"spline\"}]}",
    ] {
        assert_eq!(Clip::from_json(text), None, "{text}");
    }
    // One bad item among good ones is skipped; a translucent colour survives.
    let mixed = "{\"kokuban\":1,\"items\":[\
        {\"type\":\"ink\",\"tool\":\"highlighter\",\"color\":\"#ff000080\",\"width\":18,\"points\":[[1,2,0.5],[3,4,1]]},\
        {\"type\":\"text\",\"at\":[0,0],\"color\":\"#000000\",\"size\":-3,\"text\":\"x\"}]}";
    let clip = Clip::from_json(mixed).unwrap();
    assert_eq!(clip.len(), 1);
    assert!(clip.to_json().contains("\"color\":\"#ff000080\""));
    // Too many items: refused as a whole.
    let item = "{\"type\":\"text\",\"at\":[0,0],\"color\":\"#000000\",\"size\":20,\"text\":\"x\"}";
    let many = format!(
        "{{\"kokuban\":1,\"items\":[{}]}}",
        vec![item; MAX_CLIP_ITEMS + 1].join(",")
    );
    assert_eq!(Clip::from_json(&many), None);
}

#[test]
fn plain_text_becomes_the_content_of_a_text_item() {
    assert_eq!(plain_text("a\r\nb\tc\u{7}\n\n"), Some("a\nb c".into()));
    assert_eq!(plain_text(" \n\t"), None);
    let long = "é".repeat(5000);
    let cut = plain_text(&long).unwrap();
    assert_eq!(cut.len(), kokuban_protocol::limits::MAX_TEXT_BYTES);
    assert!(Text::new(cut).is_ok());
}

#[test]
fn looks_travel_with_a_copy_and_an_opacity_out_of_range_is_opaque() {
    use kokuban_protocol::{Align, Dash, Fill, Look, LookOf, Opacity};
    let mut b = board();
    let look = Look {
        fill: Fill::Tint,
        dash: Dash::Dotted,
        opacity: Opacity::new(60).unwrap(),
        align: Align::Right,
    };
    b.apply(
        ME,
        &Op::Look {
            to: Bounded::new(vec![LookOf {
                id: stroke_id_from(2),
                look,
            }])
            .unwrap(),
        },
    );
    let ids = [stroke_id_from(1), stroke_id_from(2)];
    let json = Clip::of(&b, &ids).unwrap().to_json();
    assert!(
        json.contains(r#""look":{"fill":"tint","dash":"dotted","opacity":0.6,"align":"right"}"#),
        "{json}"
    );
    assert_eq!(
        json.matches("\"look\"").count(),
        1,
        "a default look is left out"
    );
    let pasted = Clip::from_json(&json)
        .unwrap()
        .paste_moved((0, 0), &mut Xoshiro256::seeded(1));
    let mut copy = Board::new();
    for op in &pasted.ops {
        copy.apply(ME, op);
    }
    let looks: Vec<Look> = copy.strokes().map(|s| s.look).collect();
    assert_eq!(looks, [Look::default(), look]);

    // An opacity out of range is opaque; a name the format does not have is no clip.
    let odd = json.replace("0.6", "7.5");
    let clip = Clip::from_json(&odd).unwrap();
    let pasted = clip.paste_moved((0, 0), &mut Xoshiro256::seeded(2));
    let mut copy = Board::new();
    for op in &pasted.ops {
        copy.apply(ME, op);
    }
    assert_eq!(copy.strokes().nth(1).unwrap().look.opacity, Opacity::FULL);
    assert!(Clip::from_json(&json.replace("dotted", "wavy")).is_none());
}

/// A stretched and turned item copies with its form (in the JSON as factors and degrees) and
/// pastes as a new item of the same form, centred where it lands.
#[test]
fn a_form_travels_with_its_item() {
    use kokuban_protocol::{Form, FormOf, Scale};
    let mut b = board();
    let form = Form {
        sx: Scale::new(1500).unwrap(),
        sy: Scale::new(-500).unwrap(),
        turn: 16384,
    };
    let to = Bounded::new(vec![FormOf {
        id: stroke_id_from(2),
        form,
    }])
    .unwrap();
    b.apply(ME, &Op::Form { to });
    let clip = Clip::of(&b, &[stroke_id_from(2)]).unwrap();
    let json = clip.to_json();
    assert!(
        json.contains(r#""form":{"sx":1.5,"sy":-0.5,"turn":90.0}"#),
        "{json}"
    );
    let back = Clip::from_json(&json).unwrap();
    // Turned a quarter, 100 wide × 50 tall becomes 25 wide × 150 tall (ink aside).
    assert!((back.bounds().width() - clip.bounds().width()).abs() < 0.01);
    assert!(back.bounds().height() > back.bounds().width() * 3.0);
    let pasted = back.paste_at(Pt::new(500.0, 500.0), &mut Xoshiro256::seeded(3));
    let mut target = Board::new();
    for op in &pasted.ops {
        target.apply(ME, op);
    }
    let copy = target.get(&pasted.ids[0]).unwrap();
    assert_eq!(copy.form, form);
    let r = crate::geom::visual_bounds(copy);
    assert!(r.center().dist(Pt::new(500.0, 500.0)) < 0.2, "{r:?}");
}
