//! Adding up what the clients of a run reported: batches sent, expected, delivered, lost or
//! refused, their order, and what arrived of the cursors.

use std::time::Duration;

use super::{CursorFigures, Load};
use crate::clients::{ClientReport, Hists};

#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) sent: u64,
    pub(super) expected: u64,
    pub(super) delivered: u64,
    pub(super) lost: u64,
    pub(super) refused: u64,
    pub(super) duplicates: u64,
    pub(super) reordered: u64,
    pub(super) seq_gaps: u64,
    pub(super) seq_backwards: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) cursor_sent: u64,
    pub(super) cursor_delivered: u64,
    /// Per (receiver, mover) pair: the moves the mover sent in the window.
    pub(super) cursor_pair_moves: Vec<u64>,
    pub(super) cursor_stale_pairs: u64,
}

/// Adds up the reports: every batch an editor sent in the window should have reached every
/// other member of its room that joined.
pub(super) fn tally(reports: &[ClientReport], load: &Load) -> Tally {
    let s = load.room_size;
    let e = load.editors_per_room;
    let by_index: std::collections::HashMap<usize, &ClientReport> =
        reports.iter().map(|r| (r.index, r)).collect();
    let mut t = Tally::default();
    for r in reports {
        t.delivered += r.delivered_in_window;
        t.sent += r.sent_in_window;
        t.errors += r.errors;
        t.seq_gaps += r.seq.gaps;
        t.seq_backwards += r.seq.backwards;
        if let Some((first, last)) = r.sent_window {
            t.refused += r
                .refused
                .iter()
                .filter(|&&b| (first..=last).contains(&b))
                .count() as u64;
        }
        if t.first_error.is_none() {
            t.first_error.clone_from(&r.first_error);
        }
        for (_, d) in &r.deliveries {
            t.duplicates += d.duplicates;
            t.reordered += d.reordered;
        }
        let room = r.index / s;
        t.cursor_sent += r.cursor_sent_in_window;
        t.cursor_delivered += r.cursor_delivered_in_window;
        if load.cursor_hz > 0.0 {
            for mover in (room * s..(room + 1) * s).filter(|&m| m != r.index) {
                let Some(m) = by_index.get(&mover) else {
                    continue;
                };
                t.cursor_pair_moves.push(m.cursor_sent_in_window);
                let seen = r.cursors.iter().find(|(i, _)| *i as usize == mover);
                let got = seen.map_or(0, |(_, c)| c.last_sent_us);
                if m.cursor_last_sent_us.is_some_and(|last| got < last) {
                    t.cursor_stale_pairs += 1;
                }
            }
        }
        for m in 0..e {
            let editor_index = room * s + m;
            if editor_index == r.index {
                continue;
            }
            let editor_id = (room * e + m) as u32;
            let Some(editor) = by_index.get(&editor_index) else {
                continue;
            };
            let Some((first, last)) = editor.sent_window else {
                continue;
            };
            // Refused batches reach nobody: a member that has one anyway saw it applied.
            let delivered = r.deliveries.iter().find(|(id, _)| *id == editor_id);
            let refused = editor
                .refused
                .iter()
                .filter(|&&b| (first..=last).contains(&b))
                .filter(|&&b| !delivered.is_some_and(|(_, d)| d.has(b)))
                .count() as u64;
            t.expected += u64::from(last - first + 1) - refused;
            t.lost += match delivered {
                Some((_, d)) => d.missing(first, last),
                None => u64::from(last - first + 1),
            } - refused;
        }
    }
    t
}

pub(super) fn cursor_figures(
    t: &Tally,
    hists: &Hists,
    window_s: f64,
    coalescing: Option<Duration>,
) -> CursorFigures {
    let every_move: u64 = t.cursor_pair_moves.iter().sum();
    let ceiling = match coalescing {
        // One update per interval reaches each other member, never more than the moves made.
        Some(i) => {
            let per_pair = (window_s / i.as_secs_f64()).ceil() as u64;
            t.cursor_pair_moves.iter().map(|&m| m.min(per_pair)).sum()
        }
        None => every_move,
    };
    CursorFigures {
        sent: t.cursor_sent,
        delivered: t.cursor_delivered,
        delivered_per_s: t.cursor_delivered as f64 / window_s,
        every_move,
        coalesced_ceiling: ceiling,
        coalescing_ms: coalescing.map(|i| i.as_secs_f64() * 1e3),
        stale_pairs: t.cursor_stale_pairs,
        pairs: t.cursor_pair_moves.len() as u64,
        latency: hists.cursor.summary(),
        gap: hists.cursor_gap.summary(),
    }
}
