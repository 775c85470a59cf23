//! Bringing strokes in line with what the user sees after the room refused some of our ops.
//!
//! The strokes a refused op touched are *dirty*: the room may hold them otherwise than the
//! user sees them, in ways that replaying the refused ops would not fix. The room may have
//! applied a later point batch of a stroke whose earlier batch it refused (and ignored it: it
//! leaves a gap), or the Restore that followed a refused Erase. So ops the room applied on a
//! dirty stroke are kept too ([`Fate::Applied`]), the view keeps showing all of them, and once
//! the room takes writes again and none of our ops on those strokes is on the wire or in
//! doubt, each dirty stroke as the user sees it is compared with the room's copy, and new ops
//! bring the room's to the user's:
//!
//! - the room has all of its points: only its erased state and its offset are set;
//! - the room has a part of it, or none: it is sent whole under a fresh id and the part is
//!   erased, so that nobody, the author included, keeps a stroke others do not see. The tab
//!   follows the new id ([`Notice::Renamed`]).
//!
//! These ops replace the refused and kept ops, and the unsent ops on the same strokes, so the
//! view does not change. Dirt spreads through unsent ops: one that touches a dirty stroke and
//! a clean one waits with the dirty one, so both are brought in line.

use std::collections::HashSet;

use kokuban_board::{Board, Shape, Stroke};
use kokuban_protocol::limits::MAX_POINTS_PER_BATCH;
use kokuban_protocol::{
    Bounded, Capability, Form, FormOf, Look, LookOf, Op, PlacedImage, Placement, Points, StrokeId,
    StrokePoints, Style,
};

use super::{Entry, Fate, Notice, Session};
use crate::history::chunks;
use crate::rng::{Entropy, new_stroke_id};

/// The strokes an op names (none for a Clear).
pub(super) fn op_ids(op: &Op) -> Vec<StrokeId> {
    match op {
        Op::StrokeBegin { id, .. }
        | Op::StrokeEnd { id }
        | Op::Text { id, .. }
        | Op::Image(PlacedImage { id, .. }) => vec![*id],
        Op::StrokePoints(b) => vec![b.id],
        Op::Erase { ids } | Op::Restore { ids } => ids.as_slice().to_vec(),
        Op::Move { to } => to.iter().map(|p| p.id).collect(),
        Op::Restyle { to } => to.iter().map(|s| s.id).collect(),
        Op::Look { to } => to.iter().map(|l| l.id).collect(),
        Op::Form { to } => to.iter().map(|f| f.id).collect(),
        Op::Clear | Op::Title { .. } => Vec::new(),
    }
}

/// Whether `op` must wait until the `dirty` strokes are brought in line: it touches one, or
/// it is a Clear (which must not overtake strokes drawn before it).
pub(super) fn blocked(op: &Op, dirty: &HashSet<StrokeId>) -> bool {
    match op {
        Op::Clear => !dirty.is_empty(),
        _ => op_ids(op).iter().any(|id| dirty.contains(id)),
    }
}

impl Session {
    /// Whether some stroke is dirty (cheaper than [`Session::dirty`]).
    pub(super) fn has_dirt(&self) -> bool {
        self.ops
            .iter()
            .any(|e| matches!(e.fate, Fate::Refused | Fate::Applied))
    }

    /// The dirty strokes: those of refused and kept ops, and, spreading through unsent ops,
    /// those that wait with them.
    pub(super) fn dirty(&self) -> HashSet<StrokeId> {
        let mut dirty: HashSet<StrokeId> = self
            .ops
            .iter()
            .filter(|e| matches!(e.fate, Fate::Refused | Fate::Applied))
            .flat_map(|e| op_ids(&e.op))
            .collect();
        if dirty.is_empty() {
            return dirty;
        }
        loop {
            let before = dirty.len();
            for e in self.ops.iter().filter(|e| e.fate == Fate::Unsent) {
                let ids = op_ids(&e.op);
                if ids.iter().any(|id| dirty.contains(id)) {
                    dirty.extend(ids);
                }
            }
            if dirty.len() == before {
                return dirty;
            }
        }
    }

    /// The board our ops are replayed on to make the view: `confirmed`, except that a stroke
    /// the room finished while we still hold its end is reopened. The room applied that end
    /// out of turn (after refusing a batch before it, or before we heard of the batch), and
    /// the batches the view replays before the end must still extend it.
    pub(super) fn view_base(&self) -> Board {
        let reopen: HashSet<StrokeId> = self
            .ops
            .iter()
            .filter_map(|e| match &e.op {
                Op::StrokeEnd { id } => Some(*id),
                _ => None,
            })
            .filter(|id| self.confirmed.get(id).is_some_and(|s| s.finished))
            .collect();
        if reopen.is_empty() {
            return self.confirmed.clone();
        }
        // The board has no way to reopen a stroke, so the base is built anew, stroke by
        // stroke, in the same order (rare: only until those strokes are brought in line).
        let mut base = Board::new();
        for s in self.confirmed.all_strokes() {
            for op in whole(s, s.id) {
                if !(reopen.contains(&s.id) && matches!(op, Op::StrokeEnd { .. })) {
                    base.apply(s.author, &op);
                }
            }
        }
        base
    }

    /// Brings the dirty strokes in line (see the module documentation), if the room may take
    /// writes and nothing of ours on them is on the wire or in doubt.
    pub(super) fn bridge(&mut self, rng: &mut dyn Entropy) -> Vec<Notice> {
        let may_write = self.welcomed
            && self.capability == Some(Capability::Edit)
            && (!self.refused || self.probe);
        if !may_write || !self.has_dirt() {
            return Vec::new();
        }
        let dirty = self.dirty();
        if self
            .ops
            .iter()
            .any(|e| e.fate.number().is_some() && blocked(&e.op, &dirty))
        {
            return Vec::new();
        }
        let absorbed: Vec<usize> = self
            .ops
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.fate.number().is_none()
                    && e.op != Op::Clear
                    && op_ids(&e.op).iter().any(|id| dirty.contains(id))
            })
            .map(|(i, _)| i)
            .collect();
        let Some(&at) = absorbed.first() else {
            return Vec::new();
        };

        let (mut ops, mut erase, mut restore, mut moves, mut renames) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut styles, mut looks, mut forms) = (Vec::new(), Vec::new(), Vec::new());
        // In the view's stacking order, so that strokes sent again keep theirs.
        for v in self.view.all_strokes().filter(|s| dirty.contains(&s.id)) {
            match self.confirmed.get(&v.id) {
                Some(r) if same_stroke(v, r) => {
                    if v.erased && !r.erased {
                        erase.push(v.id);
                    } else if !v.erased && r.erased {
                        restore.push(v.id);
                    }
                    if v.offset != r.offset
                        && let Ok(p) = Placement::new(v.id, v.offset.0, v.offset.1)
                    {
                        moves.push(p);
                    }
                    if (v.color, v.width) != (r.color, r.width) {
                        styles.push(Style {
                            id: v.id,
                            color: v.color,
                            width: v.width,
                        });
                    }
                    if v.look != r.look {
                        looks.push(LookOf {
                            id: v.id,
                            look: v.look,
                        });
                    }
                    if v.form != r.form {
                        forms.push(FormOf {
                            id: v.id,
                            form: v.form,
                        });
                    }
                }
                room => {
                    // Sent whole under a fresh id even when the room has none of it: no op
                    // then goes out twice under two numbers, even one the room took as a no-op.
                    // An erased one too, as a tombstone, so that undoing the erase brings
                    // back the whole stroke.
                    let to = new_stroke_id(rng);
                    ops.extend(whole(v, to));
                    renames.push((v.id, to));
                    if room.is_some_and(|r| !r.erased) {
                        erase.push(v.id);
                    }
                }
            }
        }
        // Restores and moves before erases: a stroke sent again is whole before its part goes.
        ops.extend(chunks(restore, |ids| Op::Restore { ids }));
        ops.extend(chunks(moves, |to| Op::Move { to }));
        ops.extend(chunks(styles, |to| Op::Restyle { to }));
        ops.extend(chunks(looks, |to| Op::Look { to }));
        ops.extend(chunks(forms, |to| Op::Form { to }));
        ops.extend(chunks(erase, |ids| Op::Erase { ids }));

        for i in absorbed.into_iter().rev() {
            self.ops.remove(i);
        }
        for (k, op) in ops.into_iter().enumerate() {
            self.ops.insert(
                at + k,
                Entry {
                    op,
                    fate: Fate::Unsent,
                },
            );
        }
        let mut notices = Vec::new();
        for (from, to) in renames {
            for target in self.renamed.values_mut().filter(|t| **t == from) {
                *target = to;
            }
            self.renamed.insert(from, to);
            self.mine.insert(to);
            notices.push(Notice::Renamed { from, to });
        }
        self.version += 1;
        self.rebase();
        notices
    }
}

/// Whether the room's copy `r` of a stroke holds all of what the user sees in `v` (points
/// only grow, so equal counts mean equal points).
fn same_stroke(v: &Stroke, r: &Stroke) -> bool {
    v.shape == r.shape && v.points.len() == r.points.len() && v.finished == r.finished
}

/// The ops that create `stroke` from scratch under `id`, in the state the user sees it.
fn whole(stroke: &Stroke, id: StrokeId) -> Vec<Op> {
    let Some(&first) = stroke.points.first() else {
        return Vec::new();
    };
    let mut ops = match &stroke.shape {
        Shape::Text(text) => vec![Op::Text {
            id,
            at: first,
            color: stroke.color,
            size: stroke.width,
            text: text.clone(),
        }],
        Shape::Image(blob) => crate::geom::image_op(id, *blob, &stroke.points)
            .into_iter()
            .collect(),
        Shape::Ink(tool) => {
            let mut ops = vec![Op::StrokeBegin {
                id,
                tool: *tool,
                color: stroke.color,
                width: stroke.width,
                first,
            }];
            let mut start = 1;
            for chunk in stroke.points[1..].chunks(MAX_POINTS_PER_BATCH) {
                if let Ok(points) = Points::new(chunk.to_vec())
                    && let Ok(batch) = StrokePoints::new(id, start as u32, points)
                {
                    ops.push(Op::StrokePoints(batch));
                }
                start += chunk.len();
            }
            if stroke.finished {
                ops.push(Op::StrokeEnd { id });
            }
            ops
        }
    };
    if stroke.look != Look::default()
        && let Ok(to) = Bounded::new(vec![LookOf {
            id,
            look: stroke.look,
        }])
    {
        ops.push(Op::Look { to });
    }
    if stroke.form != Form::default()
        && let Ok(to) = Bounded::new(vec![FormOf {
            id,
            form: stroke.form,
        }])
    {
        ops.push(Op::Form { to });
    }
    if stroke.offset != (0, 0)
        && let Ok(p) = Placement::new(id, stroke.offset.0, stroke.offset.1)
        && let Ok(to) = Bounded::new(vec![p])
    {
        ops.push(Op::Move { to });
    }
    if stroke.erased
        && let Ok(ids) = Bounded::new(vec![id])
    {
        ops.push(Op::Erase { ids });
    }
    ops
}
