use kokuban_board::Shape;
use kokuban_protocol::{MemberId, Text};

use super::*;
use crate::history::History;
use crate::prefs::INK;
use crate::rng::Xoshiro256;

const ME: MemberId = MemberId(1);

struct Desk {
    tools: Tools,
    board: IndexedBoard,
    history: History,
    rng: Xoshiro256,
    t: f64,
}

impl Desk {
    fn new(kind: ToolKind) -> Self {
        Self {
            tools: Tools::new(kind, INK, Size::M, kokuban_protocol::Look::default()),
            board: IndexedBoard::default(),
            history: History::new(),
            rng: Xoshiro256::seeded(5),
            t: 0.0,
        }
    }

    fn input(&mut self, x: f64, y: f64) -> ToolInput {
        self.t += 8.0;
        ToolInput {
            at: Pt::new(x, y),
            pressure: 0.5,
            device: Device::Mouse,
            time_ms: self.t,
            shift: false,
        }
    }

    fn take(&mut self, out: Output) -> Output {
        for op in &out.ops {
            self.board.apply(ME, op);
        }
        if let Some(a) = out.action.clone() {
            self.history.record(a);
        }
        out
    }

    fn drag(&mut self, path: &[(f64, f64)]) -> Vec<Output> {
        let mut outs = Vec::new();
        let first = self.input(path[0].0, path[0].1);
        let out = self.tools.down(first, &self.board, 1.0, &mut self.rng);
        outs.push(self.take(out));
        for &(x, y) in &path[1..path.len() - 1] {
            let i = self.input(x, y);
            let out = self.tools.moved(&[i], &self.board, 1.0, &mut self.rng);
            outs.push(self.take(out));
        }
        let (x, y) = path[path.len() - 1];
        let last = self.input(x, y);
        let out = self.tools.up(last, &self.board, 1.0, &mut self.rng);
        outs.push(self.take(out));
        outs
    }
}

#[test]
fn the_pen_begins_streams_points_and_ends_one_undoable_stroke() {
    let mut d = Desk::new(ToolKind::Pen);
    let outs = d.drag(&[(0.0, 0.0), (10.0, 0.0), (20.0, 5.0), (30.0, 10.0)]);
    assert!(matches!(
        outs[0].ops[..],
        [Op::StrokeBegin {
            tool: Tool::Pen,
            ..
        }]
    ));
    assert!(matches!(outs[1].ops[..], [Op::StrokePoints(ref b)] if b.start == 1));
    assert!(matches!(outs[3].ops.last(), Some(Op::StrokeEnd { .. })));
    let s = d.board.strokes().next().unwrap();
    assert!(s.finished);
    // The stroke ends exactly under the pointer, whatever the smoothing did on the way.
    let end = s.points.last().unwrap();
    assert_eq!((end.x_px(), end.y_px()), (30.0, 10.0));
    assert_eq!(outs[3].action, Some(Action::Drew(vec![s.id])));
}

#[test]
fn coalesced_samples_become_one_batch() {
    let mut d = Desk::new(ToolKind::Highlighter);
    let first = d.input(0.0, 0.0);
    d.tools.down(first, &d.board, 1.0, &mut d.rng);
    let samples: Vec<ToolInput> = (1..6).map(|i| d.input(f64::from(i) * 5.0, 0.0)).collect();
    let out = d.tools.moved(&samples, &d.board, 1.0, &mut d.rng);
    assert_eq!(out.ops.len(), 1);
    let Op::StrokePoints(b) = &out.ops[0] else {
        panic!()
    };
    assert_eq!((b.start, b.points.len()), (1, 5));
    // The highlighter is flat: neutral pressure everywhere.
    assert!(b.points.as_slice().iter().all(|p| p.pressure() == 128));
}

#[test]
fn shapes_need_a_drag_and_snap_with_shift() {
    let mut d = Desk::new(ToolKind::Rect);
    let outs = d.drag(&[(0.0, 0.0), (0.5, 0.5)]);
    assert!(outs.iter().all(|o| o.ops.is_empty()));
    assert!(d.board.is_empty());
    let outs = d.drag(&[(0.0, 0.0), (40.0, 10.0), (50.0, 20.0)]);
    assert!(matches!(
        outs[1].ops[..],
        [
            Op::StrokeBegin {
                tool: Tool::Rect,
                ..
            },
            Op::StrokePoints(_)
        ]
    ));
    let s = d.board.strokes().next().unwrap();
    assert_eq!(s.shape, Shape::Ink(Tool::Rect));
    let last = s.points.last().unwrap();
    assert_eq!((last.x_px(), last.y_px()), (50.0, 20.0));
    assert_eq!(
        constrain(Tool::Rect, Pt::new(0.0, 0.0), Pt::new(30.0, -10.0), true),
        Pt::new(30.0, -30.0)
    );
    let snapped = constrain(Tool::Line, Pt::new(0.0, 0.0), Pt::new(100.0, 3.0), true);
    assert!((snapped.y).abs() < 1e-9 && (snapped.x - 100.045).abs() < 0.01);
}

#[test]
fn the_eraser_erases_what_it_touches_as_one_undoable_action() {
    let mut d = Desk::new(ToolKind::Pen);
    d.drag(&[(0.0, 0.0), (100.0, 0.0)]);
    d.drag(&[(0.0, 50.0), (100.0, 50.0)]);
    d.drag(&[(0.0, 200.0), (100.0, 200.0)]);
    d.tools.set_kind(ToolKind::Eraser);
    let outs = d.drag(&[(50.0, -20.0), (50.0, 20.0), (50.0, 80.0)]);
    assert_eq!(d.board.len(), 1);
    let Some(Action::Erased(ids)) = &outs.last().unwrap().action else {
        panic!("erase action expected")
    };
    assert_eq!(ids.len(), 2);
    let undo = d.history.undo(&d.board);
    d.take(Output {
        ops: undo,
        ..Output::default()
    });
    assert_eq!(d.board.len(), 3);
}

#[test]
fn select_drag_moves_and_delete_erases() {
    let mut d = Desk::new(ToolKind::Pen);
    d.drag(&[(0.0, 0.0), (100.0, 0.0)]);
    d.drag(&[(0.0, 300.0), (100.0, 300.0)]);
    let (a, b) = {
        let v: Vec<_> = d.board.strokes().map(|s| s.id).collect();
        (v[0], v[1])
    };
    d.tools.set_kind(ToolKind::Select);
    // Drag the first stroke by (10, 20).
    let outs = d.drag(&[(50.0, 1.0), (55.0, 11.0), (60.0, 21.0)]);
    assert!(outs[1].ops.iter().all(|op| matches!(op, Op::Move { .. })));
    assert_eq!(d.board.get(&a).unwrap().offset, (80, 160));
    assert_eq!(d.tools.selection(), &[a]);
    assert!(matches!(&outs[2].action, Some(Action::Moved(m)) if m[0].to == (80, 160)));
    // A marquee around the second selects it alone.
    d.drag(&[(-20.0, 250.0), (50.0, 300.0), (130.0, 350.0)]);
    assert_eq!(d.tools.selection(), &[b]);
    let out = d.tools.delete_selection(&d.board);
    d.take(out);
    assert_eq!(d.board.strokes().map(|s| s.id).collect::<Vec<_>>(), vec![a]);
    // Undo brings it back; undo again moves the first back.
    let ops = d.history.undo(&d.board);
    d.take(Output {
        ops,
        ..Output::default()
    });
    let ops = d.history.undo(&d.board);
    d.take(Output {
        ops,
        ..Output::default()
    });
    assert_eq!(d.board.len(), 2);
    assert_eq!(d.board.get(&a).unwrap().offset, (0, 0));
}

#[test]
fn text_and_cancel() {
    let mut d = Desk::new(ToolKind::Text);
    let i = d.input(10.0, 10.0);
    let out = d.tools.down(i, &d.board, 1.0, &mut d.rng);
    assert_eq!(out.text, Some(TextTarget::New(Pt::new(10.0, 10.0))));
    let out = d.tools.text(Pt::new(10.0, 10.0), "hello\n", &mut d.rng);
    d.take(out);
    assert!(
        matches!(&d.board.strokes().next().unwrap().shape, Shape::Text(t) if t.as_str() == "hello")
    );
    assert!(
        d.tools
            .text(Pt::new(0.0, 0.0), "  \n", &mut d.rng)
            .ops
            .is_empty()
    );

    // A stroke interrupted by a second finger is taken back.
    let mut d = Desk::new(ToolKind::Pen);
    let i = d.input(0.0, 0.0);
    let out = d.tools.down(i, &d.board, 1.0, &mut d.rng);
    d.take(out);
    let i = d.input(30.0, 0.0);
    let out = d.tools.moved(&[i], &d.board, 1.0, &mut d.rng);
    d.take(out);
    let out = d.tools.cancel();
    assert!(out.action.is_none());
    d.take(out);
    assert!(d.board.is_empty());
    assert!(!d.tools.is_active());
}

#[test]
fn tool_names_and_shortcuts_round_trip() {
    for t in ToolKind::ALL {
        assert_eq!(ToolKind::from_name(t.name()), Some(t));
        assert_eq!(ToolKind::from_shortcut(t.shortcut()), Some(t));
    }
    let mut keys: Vec<char> = ToolKind::ALL.iter().map(|t| t.shortcut()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), ToolKind::ALL.len());
}

#[test]
fn editing_text_replaces_the_item_in_one_undoable_step() {
    let mut d = Desk::new(ToolKind::Text);
    let out = d.tools.text(Pt::new(10.0, 10.0), "helo", &mut d.rng);
    d.take(out);
    let old = d.board.strokes().next().unwrap().id;
    // Someone moved it: the edited text stays where it now is.
    let to = Bounded::new(vec![Placement::new(old, 80, 0).unwrap()]).unwrap();
    d.board.apply(MemberId(2), &Op::Move { to });

    // Clicking it with the text tool edits it; clicking beside it places a new one.
    let i = d.input(12.0, 14.0);
    let out = d.tools.down(i, &d.board, 1.0, &mut d.rng);
    assert_eq!(out.text, Some(TextTarget::Edit(old)));
    let i = d.input(300.0, 300.0);
    let out = d.tools.down(i, &d.board, 1.0, &mut d.rng);
    assert_eq!(out.text, Some(TextTarget::New(Pt::new(300.0, 300.0))));

    let out = d.tools.edit_text(&d.board, old, "hello\n", &mut d.rng);
    let Some(Action::Replaced { old: o, new }) = out.action.clone() else {
        panic!("a replace action expected")
    };
    assert_eq!(o, old);
    assert!(matches!(out.ops[..], [Op::Text { .. }, Op::Erase { .. }]));
    d.take(out);
    let shown: Vec<_> = d.board.strokes().collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].id, new);
    assert!(matches!(&shown[0].shape, Shape::Text(t) if t.as_str() == "hello"));
    assert_eq!(Pt::of(shown[0].points[0]), Pt::new(20.0, 10.0));
    assert_eq!((shown[0].color, shown[0].width), (INK, Size::M.text()));

    // Undo shows the old text again, redo the new one.
    let ops = d.history.undo(&d.board);
    assert!(matches!(ops[..], [Op::Restore { .. }, Op::Erase { .. }]));
    d.take(Output {
        ops,
        ..Output::default()
    });
    assert_eq!(d.board.strokes().map(|s| s.id).collect::<Vec<_>>(), [old]);
    let ops = d.history.redo(&d.board);
    d.take(Output {
        ops,
        ..Output::default()
    });
    assert_eq!(d.board.strokes().map(|s| s.id).collect::<Vec<_>>(), [new]);

    // Unchanged text changes nothing; emptied text erases the item.
    assert_eq!(
        d.tools.edit_text(&d.board, new, "hello ", &mut d.rng),
        Output::default()
    );
    let out = d.tools.edit_text(&d.board, new, " \n", &mut d.rng);
    assert_eq!(out.action, Some(Action::Erased(vec![new])));
    d.take(out);
    assert!(d.board.is_empty());
}

#[test]
fn undoing_an_edit_someone_else_erased_changes_nothing() {
    let mut d = Desk::new(ToolKind::Text);
    let out = d.tools.text(Pt::new(0.0, 0.0), "a", &mut d.rng);
    d.take(out);
    let old = d.board.strokes().next().unwrap().id;
    let out = d.tools.edit_text(&d.board, old, "b", &mut d.rng);
    d.take(out);
    let new = d.board.strokes().next().unwrap().id;
    d.board.apply(
        MemberId(2),
        &Op::Erase {
            ids: Bounded::new(vec![new]).unwrap(),
        },
    );
    // Theirs was the later word: undo does not bring the old text back (and the placing of
    // the old text before it has nothing left to undo either).
    assert!(d.history.undo(&d.board).is_empty());
    assert!(!d.history.can_undo());
    assert!(d.board.get(&old).is_some_and(|s| s.erased));
}

#[test]
fn others_text_is_edited_like_any_item_they_drew() {
    let mut d = Desk::new(ToolKind::Text);
    let theirs = crate::rng::stroke_id_from(77);
    d.board.apply(
        MemberId(2),
        &Op::Text {
            id: theirs,
            at: Point::from_px(0.0, 0.0, 0.5).unwrap(),
            color: Color::rgb(200, 0, 0),
            size: kokuban_protocol::Width::from_px(30.0),
            text: Text::new("theirs").unwrap(),
        },
    );
    // Anyone who may edit the board may edit it, as they may erase or move it; the new item
    // keeps its colour and size, and the undo step belongs to whoever made the edit.
    let i = d.input(5.0, 5.0);
    let out = d.tools.down(i, &d.board, 1.0, &mut d.rng);
    assert_eq!(out.text, Some(TextTarget::Edit(theirs)));
    let out = d.tools.edit_text(&d.board, theirs, "ours now", &mut d.rng);
    d.take(out);
    let s = d.board.strokes().next().unwrap();
    assert_ne!(s.id, theirs);
    assert_eq!((s.color, s.width.px()), (Color::rgb(200, 0, 0), 30.0));
    assert!(d.history.can_undo());
    let ops = d.history.undo(&d.board);
    d.take(Output {
        ops,
        ..Output::default()
    });
    assert_eq!(
        d.board.strokes().map(|s| s.id).collect::<Vec<_>>(),
        [theirs]
    );
}

/// A rectangle selected shows eight stretch handles and a turn handle; dragging the
/// bottom-right corner doubles it about the top-left one, the top edge's middle stretches it
/// one way, the turn handle turns it a quarter about its centre, and undo takes each back.
#[test]
fn handles_stretch_and_turn_the_selection_and_undo_takes_it_back() {
    let mut d = Desk::new(ToolKind::Rect);
    d.drag(&[(100.0, 100.0), (150.0, 130.0), (200.0, 150.0)]);
    let id = d.board.strokes().next().unwrap().id;
    d.tools.set_kind(ToolKind::Select);
    d.tools.select(vec![id]);
    let handles = d.tools.handles(&d.board, 1.0);
    assert_eq!(handles.len(), 9);
    let frame = crate::geom::shape_bounds(d.board.get(&id).unwrap());
    assert_eq!(
        (frame.x0, frame.y0, frame.x1, frame.y1),
        (100.0, 100.0, 200.0, 150.0)
    );
    let corner = handles
        .iter()
        .find(|(h, _)| *h == Handle::Stretch(1, 1))
        .unwrap()
        .1;
    assert_eq!(corner, Pt::new(frame.x1, frame.y1));

    // The bottom-right corner dragged as far again: twice the size, the top-left corner kept.
    let (w, h) = (frame.width(), frame.height());
    let outs = d.drag(&[(corner.x, corner.y), (corner.x + w, corner.y + h)]);
    assert!(outs[1].ops.iter().any(|op| matches!(op, Op::Form { .. })));
    let s = d.board.get(&id).unwrap();
    let b = crate::geom::shape_bounds(s);
    assert!(
        (b.x0 - frame.x0).abs() < 0.2 && (b.y0 - frame.y0).abs() < 0.2,
        "{b:?}"
    );
    assert!(
        (b.width() - 2.0 * w).abs() < 0.3 && (b.height() - 2.0 * h).abs() < 0.3,
        "{b:?}"
    );
    assert_eq!((s.form.sx.milli(), s.form.sy.milli()), (2000, 2000));
    // The pointer at the new corner now takes it; inside, it takes the item to move it.
    assert!(crate::geom::hits(
        s,
        Pt::new(b.x1 - 3.0, b.y1 - 3.0),
        Pt::new(b.x1 - 3.0, b.y1 - 3.0),
        2.0
    ));

    // One undo: as drawn again.
    let undo = d.history.undo(&d.board);
    d.take(Output {
        ops: undo,
        action: None,
        text: None,
    });
    let s = d.board.get(&id).unwrap();
    assert_eq!(
        (s.form, s.offset),
        (kokuban_protocol::Form::default(), (0, 0))
    );

    // The top edge's middle, dragged up 50 px: only taller, the bottom edge kept.
    let top = Pt::new(frame.center().x, frame.y0);
    d.drag(&[(top.x, top.y), (top.x + 30.0, top.y - 50.0)]);
    let b = crate::geom::shape_bounds(d.board.get(&id).unwrap());
    assert!(
        (b.width() - w).abs() < 0.2 && (b.height() - (h + 50.0)).abs() < 0.3,
        "{b:?}"
    );
    assert!((b.y1 - frame.y1).abs() < 0.2, "{b:?}");
    let undo = d.history.undo(&d.board);
    d.take(Output {
        ops: undo,
        action: None,
        text: None,
    });

    // The turn handle, taken above the centre and brought to its right: a quarter turn
    // clockwise about the centre, so the frame is as tall as it was wide.
    let c = frame.center();
    let knob = Pt::new(c.x, frame.y0 - TURN_HANDLE_PX);
    d.drag(&[(knob.x, knob.y), (c.x + 80.0, c.y)]);
    let s = d.board.get(&id).unwrap();
    assert_eq!(s.form.turn, 16384);
    let b = crate::geom::shape_bounds(s);
    assert!(
        (b.width() - h).abs() < 0.3 && (b.height() - w).abs() < 0.3,
        "{b:?}"
    );
    assert!(b.center().dist(c) < 0.2);
}
