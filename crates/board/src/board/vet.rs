//! Vetting an op before it is sequenced: why the board would ignore it, or why it is not its
//! author's to make.

use kokuban_protocol::limits::MAX_POINTS_PER_STROKE;
use kokuban_protocol::{MemberId, Op, PlacedImage, StrokeId};

use super::{Board, Shape, Stroke, last_of_each};

/// Why [`Board::vet`] refuses an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A stroke or text item with this id exists (or existed, as a tombstone): ids are never
    /// reused, so a replayed id cannot take over someone else's stroke.
    #[error("a stroke with this id already exists")]
    IdTaken,
    /// The op continues or ends a stroke the board does not have.
    #[error("no such stroke")]
    UnknownStroke,
    /// Only a stroke's author adds points to it or ends it.
    #[error("only its author may continue or end a stroke")]
    NotAuthor,
    /// Points for a finished stroke or a text item.
    #[error("the stroke is finished")]
    Finished,
    /// The batch starts past the stroke's last point and would leave a hole.
    #[error("the points would leave a gap in the stroke")]
    Gap,
    /// The stroke holds as many points as a stroke may.
    #[error("the stroke has as many points as it may")]
    Full,
    /// Everything the op carries is already on the board.
    #[error("already applied")]
    Repeat,
    /// None of the strokes the op names exists in a state it would change.
    #[error("none of the strokes named exist or would change")]
    NoTargets,
}

impl Refusal {
    /// Whether the op would be ignored whatever other ops are ordered before it. A server
    /// that vets against a board which may lag the room's order (ops still in flight to the
    /// sequencer) may only refuse these; the others might be made valid by an op in flight
    /// (e.g. the author's own StrokeBegin, not yet delivered back).
    pub fn is_final(self) -> bool {
        match self {
            Refusal::IdTaken
            | Refusal::NotAuthor
            | Refusal::Finished
            | Refusal::Full
            | Refusal::Repeat => true,
            Refusal::UnknownStroke | Refusal::Gap | Refusal::NoTargets => false,
        }
    }
}

impl Board {
    /// Why `apply(author, op)` would change nothing, or would touch what is not `author`'s to
    /// touch; `Ok` when it would change the board. A server calls this before sequencing an
    /// op, so that an op the board would ignore (a replayed stroke id, points for another
    /// member's stroke, targets that do not exist) costs no seq, no storage and no relay.
    ///
    /// It mirrors the no-op cases of [`Board::apply`] exactly, except for `Clear`, which is
    /// always accepted (clearing an empty board is what a user asked for, not an attack). The
    /// unit tests check the two against each other.
    pub fn vet(&self, author: MemberId, op: &Op) -> Result<(), Refusal> {
        match op {
            Op::StrokeBegin { id, .. }
            | Op::Text { id, .. }
            | Op::Image(PlacedImage { id, .. }) => {
                if self.index.contains_key(id) {
                    return Err(Refusal::IdTaken);
                }
            }
            Op::StrokePoints(batch) => {
                let stroke = self.owned(author, &batch.id)?;
                if stroke.finished || !matches!(stroke.shape, Shape::Ink(_)) {
                    return Err(Refusal::Finished);
                }
                let have = stroke.points.len();
                let start = batch.start as usize;
                if start > have {
                    return Err(Refusal::Gap);
                }
                if have >= MAX_POINTS_PER_STROKE as usize {
                    return Err(Refusal::Full);
                }
                if start + batch.points.len() <= have {
                    return Err(Refusal::Repeat);
                }
            }
            Op::StrokeEnd { id } => {
                if self.owned(author, id)?.finished {
                    return Err(Refusal::Repeat);
                }
            }
            Op::Erase { ids } => {
                if !ids.iter().any(|id| self.get(id).is_some_and(|s| !s.erased)) {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Restore { ids } => {
                if !ids.iter().any(|id| self.get(id).is_some_and(|s| s.erased)) {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Move { to } => {
                // The last placement of an id is the one applied (see `apply`).
                if !last_of_each(to.as_slice(), |p| p.id)
                    .any(|p| self.get(&p.id).is_some_and(|s| s.offset != (p.dx, p.dy)))
                {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Clear => {}
            Op::Title { title } => {
                if self.title.as_ref().map_or("", |t| t.as_str()) == title.as_str() {
                    return Err(Refusal::Repeat);
                }
            }
            Op::Restyle { to } => {
                if !last_of_each(to.as_slice(), |s| s.id).any(|style| {
                    self.get(&style.id)
                        .is_some_and(|s| (s.color, s.width) != (style.color, style.width))
                }) {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Look { to } => {
                if !last_of_each(to.as_slice(), |l| l.id)
                    .any(|look| self.get(&look.id).is_some_and(|s| s.look != look.look))
                {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Form { to } => {
                if !last_of_each(to.as_slice(), |f| f.id).any(|form| {
                    self.get(&form.id)
                        .is_some_and(|s| s.finished && s.form != form.form)
                }) {
                    return Err(Refusal::NoTargets);
                }
            }
        }
        Ok(())
    }

    /// The stroke `id`, if it is `author`'s.
    fn owned(&self, author: MemberId, id: &StrokeId) -> Result<&Stroke, Refusal> {
        match self.get(id) {
            None => Err(Refusal::UnknownStroke),
            Some(s) if s.author != author => Err(Refusal::NotAuthor),
            Some(s) => Ok(s),
        }
    }
}
