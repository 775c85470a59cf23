//! Queuing a local op: following renamed strokes, and merging it into the op before it while
//! neither is on the wire.

use kokuban_protocol::limits::{MAX_IDS_PER_OP, MAX_POINTS_PER_BATCH};
use kokuban_protocol::{Bounded, Op, Placement, Points, StrokeId, StrokePoints, Style};

use super::{Entry, Fate, Session};

impl Session {
    pub(super) fn remap(&self, op: Op) -> Op {
        if self.renamed.is_empty() {
            return op;
        }
        let map = |id: StrokeId| *self.renamed.get(&id).unwrap_or(&id);
        match op {
            Op::StrokePoints(b) => match StrokePoints::new(map(b.id), b.start, b.points.clone()) {
                Ok(b) => Op::StrokePoints(b),
                Err(_) => Op::StrokePoints(b),
            },
            Op::StrokeEnd { id } => Op::StrokeEnd { id: map(id) },
            Op::Erase { ids } => Op::Erase {
                ids: remap_ids(ids, map),
            },
            Op::Restore { ids } => Op::Restore {
                ids: remap_ids(ids, map),
            },
            Op::Restyle { to } => {
                let styled: Vec<Style> = to
                    .iter()
                    .map(|s| Style {
                        id: map(s.id),
                        ..*s
                    })
                    .collect();
                match Bounded::new(styled) {
                    Ok(to) => Op::Restyle { to },
                    Err(_) => Op::Restyle { to },
                }
            }
            Op::Move { to } => {
                let moved: Vec<Placement> = to
                    .iter()
                    .filter_map(|p| Placement::new(map(p.id), p.dx, p.dy).ok())
                    .collect();
                match Bounded::new(moved) {
                    Ok(to) => Op::Move { to },
                    Err(_) => Op::Move { to },
                }
            }
            other => other,
        }
    }

    /// Adds an op to the queue, merging it into the last one if that is unsent and the merge
    /// keeps the meaning: consecutive point batches of a stroke become one batch (this is the
    /// per-frame batching), consecutive moves of the same strokes keep only the last, erases
    /// join.
    pub(super) fn queue(&mut self, op: Op) {
        if let Some(last) = self.ops.back_mut().filter(|e| e.fate == Fate::Unsent) {
            match (&mut last.op, &op) {
                (Op::StrokePoints(a), Op::StrokePoints(b))
                    if a.id == b.id
                        && a.start as usize + a.points.len() == b.start as usize
                        && a.points.len() + b.points.len() <= MAX_POINTS_PER_BATCH =>
                {
                    let mut pts = a.points.as_slice().to_vec();
                    pts.extend_from_slice(b.points.as_slice());
                    if let Ok(points) = Points::new(pts)
                        && let Ok(merged) = StrokePoints::new(a.id, a.start, points)
                    {
                        *a = merged;
                        return;
                    }
                }
                (Op::Move { to: a }, Op::Move { to: b })
                    if a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.id == y.id) =>
                {
                    *a = b.clone();
                    return;
                }
                (Op::Restyle { to: a }, Op::Restyle { to: b })
                    if a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.id == y.id) =>
                {
                    *a = b.clone();
                    return;
                }
                (Op::Title { .. }, Op::Title { .. }) => {
                    last.op = op;
                    return;
                }
                (Op::Erase { ids: a }, Op::Erase { ids: b })
                    if a.len() + b.len() <= MAX_IDS_PER_OP =>
                {
                    let mut all = a.as_slice().to_vec();
                    all.extend(b.iter().filter(|id| !a.contains(id)));
                    if let Ok(ids) = Bounded::new(all) {
                        *a = ids;
                        return;
                    }
                }
                _ => {}
            }
        }
        self.ops.push_back(Entry {
            op,
            fate: Fate::Unsent,
        });
    }
}

fn remap_ids(
    ids: Bounded<StrokeId, MAX_IDS_PER_OP>,
    map: impl Fn(StrokeId) -> StrokeId,
) -> Bounded<StrokeId, MAX_IDS_PER_OP> {
    let mapped: Vec<StrokeId> = ids.iter().map(|id| map(*id)).collect();
    Bounded::new(mapped).unwrap_or(ids)
}
