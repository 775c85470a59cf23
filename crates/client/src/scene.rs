//! What the board's cached bitmap holds, stroke by stroke, and what a change to the board
//! means for it: which strokes are live (drawn over the bitmap every frame), which were just
//! finished and can go on top of it, which area must be redrawn, and whether a stroke is hidden
//! under a later one. The renderer asks; this decides.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kokuban_board::{Board, Change, Stroke};
use kokuban_protocol::StrokeId;

use crate::geom::{Rect, unplaced_bounds, visual_bounds};
use crate::spatial::IndexedBoard;

/// Stroke ids are random UUIDs: their own bits are a perfect hash, and the renderer looks one
/// up per stroke per redraw, so SipHash would be measurable.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

/// A map keyed by stroke id, hashed with [`IdHasher`].
pub type StrokeMap<V> = HashMap<StrokeId, V, BuildHasherDefault<IdHasher>>;

/// Where a stroke was last drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drawn {
    /// Its bounds as drawn, before its offset.
    bounds: Rect,
    /// The points it had: a stroke that grew since is drawn anew.
    points: usize,
    /// Its offset when it was drawn.
    offset: (i32, i32),
}

impl Drawn {
    fn placed(&self) -> Rect {
        placed(self.bounds, self.offset)
    }
}

/// What [`Scene::draw`] says about one stroke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// It is outside the area being drawn: skip it.
    Skip,
    /// Draw it with the geometry built for it before.
    Cached,
    /// Draw it, building its geometry first (new, or its points changed).
    Build,
}

/// The renderer's record of the board: what was drawn where, the live strokes, the strokes
/// waiting to go on top of the bitmap, and the text item hidden under the text editor.
///
/// Invariant: `live` holds only strokes that were unfinished when noted; `drawn` holds only
/// strokes that were drawn (and is pruned when everything is redrawn).
#[derive(Debug, Default)]
pub struct Scene {
    drawn: StrokeMap<Drawn>,
    live: Vec<StrokeId>,
    on_top: Vec<StrokeId>,
    hidden: Option<StrokeId>,
}

impl Scene {
    /// Nothing drawn yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text item left out while its editor is open.
    pub fn hidden(&self) -> Option<StrokeId> {
        self.hidden
    }

    /// The text editor opened on `hidden` (or closed): the area of the item that appears or
    /// disappears must be redrawn.
    pub fn hide(&mut self, hidden: Option<StrokeId>, board: &Board) -> Rect {
        if hidden == self.hidden {
            return Rect::EMPTY;
        }
        let dirty = [self.hidden, hidden]
            .into_iter()
            .flatten()
            .filter_map(|id| board.get(&id))
            .map(visual_bounds)
            .fold(Rect::EMPTY, Rect::union);
        self.hidden = hidden;
        dirty
    }

    /// One change of the board: live strokes are tracked, finished ones queued to go on top,
    /// removed and moved ones add where they were and are to `dirty`. Returns true when
    /// everything must be redrawn (the board was cleared). `compose` is set when the screen
    /// must be composed again even if the bitmap did not change (live ink moved).
    pub fn note(&mut self, change: Change, board: &Board, dirty: &mut Rect) -> Noted {
        let mut noted = Noted::default();
        match change {
            // The title is not drawn on the canvas.
            Change::None | Change::Retitled => {}
            Change::Cleared => noted.full = true,
            Change::Added(ids) => {
                for id in ids {
                    let Some(s) = board.get(&id) else { continue };
                    if s.finished {
                        self.on_top.push(id);
                    } else if !self.live.contains(&id) {
                        self.live.push(id);
                        noted.compose = true;
                    }
                }
            }
            Change::Grew(id, _) => {
                if !self.live.contains(&id) {
                    self.live.push(id);
                }
                noted.compose = true;
            }
            Change::Finished(id) => {
                self.live.retain(|l| *l != id);
                self.on_top.push(id);
                noted.compose = true;
            }
            Change::Removed(ids) => {
                for id in ids {
                    self.live.retain(|l| *l != id);
                    if let Some(d) = self.drawn.get(&id) {
                        *dirty = dirty.union(d.placed());
                    } else if let Some(s) = board.get(&id) {
                        *dirty = dirty.union(visual_bounds(s));
                    }
                    noted.compose = true;
                }
            }
            Change::Moved(ids) => {
                for id in ids {
                    if let Some(d) = self.drawn.get_mut(&id) {
                        *dirty = dirty.union(d.placed());
                        if let Some(s) = board.get(&id) {
                            d.offset = s.offset;
                        }
                    }
                    if let Some(s) = board.get(&id) {
                        *dirty = dirty.union(visual_bounds(s));
                    }
                }
            }
            // Drawn anew where it was (a thinner stroke leaves less) and where it now reaches,
            // its geometry built anew (an outline's shape depends on the width).
            Change::Restyled(ids) => {
                for id in ids {
                    if let Some(d) = self.drawn.remove(&id) {
                        *dirty = dirty.union(d.placed());
                    }
                    if let Some(s) = board.get(&id) {
                        *dirty = dirty.union(visual_bounds(s));
                    }
                    noted.compose |= self.live.contains(&id);
                }
            }
        }
        noted
    }

    /// Everything is about to be redrawn: the live strokes are whatever is unfinished now,
    /// and records of strokes that are gone are dropped.
    pub fn reset(&mut self, board: &Board) {
        self.live = board
            .strokes()
            .filter(|s| !s.finished)
            .map(|s| s.id)
            .collect();
        self.drawn.retain(|id, _| board.get(id).is_some());
    }

    /// Forgets every record (a new theme: everything is drawn anew).
    pub fn forget(&mut self) {
        self.drawn.clear();
    }

    /// The strokes just finished or restored, to draw on top of the bitmap.
    pub fn take_on_top(&mut self) -> Vec<StrokeId> {
        std::mem::take(&mut self.on_top)
    }

    /// The strokes still being drawn, bottom first (those finished or erased meanwhile are
    /// dropped).
    pub fn live(&mut self, board: &Board) -> &[StrokeId] {
        self.live
            .retain(|id| board.get(id).is_some_and(|s| !s.erased && !s.finished));
        &self.live
    }

    /// Whether a later stroke overlaps `id` where it is, so that it cannot simply be drawn on
    /// top of the bitmap (it must be redrawn in drawing order), or it is the hidden text.
    pub fn covered(&self, board: &IndexedBoard, id: &StrokeId) -> bool {
        if self.hidden == Some(*id) {
            return true;
        }
        let Some(s) = board.get(id) else {
            return false;
        };
        let bounds = visual_bounds(s);
        // The strokes near it, bottom first: any after it that overlaps it covers it.
        board
            .strokes_in(bounds)
            .skip_while(|o| o.id != *id)
            .skip(1)
            .any(|o| {
                let b = match self.drawn.get(&o.id) {
                    Some(d) if d.points == o.points.len() => placed(d.bounds, o.offset),
                    _ => visual_bounds(o),
                };
                b.intersects(&bounds)
            })
    }

    /// The stroke is about to be drawn where it touches `region`: records where it is drawn
    /// and says whether it is in the region at all, and whether its geometry must be built.
    pub fn draw(&mut self, s: &Stroke, region: Rect) -> Draw {
        let mut build = false;
        let drawn = self.drawn.entry(s.id).or_insert_with(|| {
            build = true;
            Drawn {
                bounds: unplaced_bounds(s),
                points: s.points.len(),
                offset: s.offset,
            }
        });
        if drawn.points != s.points.len() {
            drawn.bounds = unplaced_bounds(s);
            drawn.points = s.points.len();
            build = true;
        }
        drawn.offset = s.offset;
        if !drawn.placed().intersects(&region) {
            Draw::Skip
        } else if build {
            Draw::Build
        } else {
            Draw::Cached
        }
    }
}

/// What one change means beyond the dirty area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Noted {
    /// Everything must be redrawn.
    pub full: bool,
    /// The screen must be composed again (live ink changed).
    pub compose: bool,
}

/// Bounds drawn at offset zero, moved by `offset` fixed-point units.
fn placed(bounds: Rect, offset: (i32, i32)) -> Rect {
    bounds.translate(f64::from(offset.0) / 8.0, f64::from(offset.1) / 8.0)
}

#[cfg(test)]
mod tests;
