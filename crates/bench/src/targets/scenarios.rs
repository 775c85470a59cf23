//! The targets of the scenarios beside the relay sweeps: presence storm, fan-out, join storm,
//! stalled joiners and fragment hold, and the first stage's targets.

use super::{
    FANOUT_P99_MS, FLOOR_LIMIT_SINGLE, PRESENCE_CPU_PCT, PRESENCE_MIN_SHARE, STORM_P99_MS,
    STORM_RSS_VS_BOARD, Sweep, Target, all_met, floor_ratio, fmt, missed, profiled, sweep_of,
};
use crate::holds::HoldsResult;
use crate::joinstorm::JoinStormResult;
use crate::plan::Results;
use crate::scenario::{RunResult, System};

pub(super) fn presence_target(runs: &[RunResult]) -> Target {
    let name = format!(
        "Presence storm: no cursor update lost beyond the documented coalescing, server CPU ≤ {:.1} core (Kokuban)",
        PRESENCE_CPU_PCT / 100.0
    );
    let kokuban: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.system == System::Kokuban)
        .collect();
    if kokuban.is_empty() {
        return Target {
            name,
            measured: "not measured (see notes)".into(),
            met: None,
            why: None,
        };
    }
    let mut parts = Vec::new();
    let mut met = Vec::new();
    for r in &kokuban {
        let Some(c) = &r.cursors else { continue };
        let share = c.delivered as f64 / c.coalesced_ceiling.max(1) as f64;
        parts.push(format!(
            "{}: {:.0}% of the coalescing ceiling delivered, {} of {} pairs stale, {} errors, CPU {:.0}%",
            r.mode,
            share * 100.0,
            c.stale_pairs,
            c.pairs,
            r.errors,
            r.server_cpu_pct
        ));
        met.push(Some(
            share >= PRESENCE_MIN_SHARE
                && c.stale_pairs == 0
                && r.errors == 0
                && r.server_cpu_pct <= PRESENCE_CPU_PCT,
        ));
    }
    let met = all_met(met);
    let profiles: Vec<(&str, Option<&RunResult>)> = kokuban
        .iter()
        .map(|r| (r.mode.as_str(), Some(*r)))
        .collect();
    Target {
        name,
        measured: parts.join("; "),
        met,
        why: missed(met).then(|| profiled(&profiles)).flatten(),
    }
}

pub(super) fn fanout_target(runs: &[RunResult]) -> Target {
    let k = runs
        .iter()
        .find(|r| r.system == System::Kokuban && r.nodes == 1);
    let f = runs.iter().find(|r| r.system == System::Floor);
    let viewers = k.or(f).map_or(0, |r| r.load.room_size.saturating_sub(1));
    let name = format!(
        "Fan-out to {viewers} viewers (one node): p99 ≤ {FANOUT_P99_MS} ms and CPU per delivery ≤ {FLOOR_LIMIT_SINGLE}× the floor's"
    );
    match (k, f) {
        (Some(k), Some(f)) => {
            let x = floor_ratio(k, &[f], FLOOR_LIMIT_SINGLE).expect("one floor run");
            Target {
                name,
                measured: format!(
                    "p99 {:.2} ms; {}× the floor's CPU ({} µs against {} µs)",
                    k.latency.p99_ms,
                    fmt(x.cpu),
                    fmt(k.server_cpu_us_per_msg),
                    fmt(f.server_cpu_us_per_msg)
                ),
                met: x.met.map(|m| m && k.latency.p99_ms <= FANOUT_P99_MS),
                why: (x.met == Some(false))
                    .then(|| profiled(&[("Kokuban", Some(k)), ("the floor", Some(f))]))
                    .flatten(),
            }
        }
        _ => Target {
            name,
            measured: "not measured (see notes)".into(),
            met: None,
            why: None,
        },
    }
}

pub(super) fn storm_target(s: &JoinStormResult) -> Target {
    let peak = s.peak_rss.map(|p| p as f64 / s.board_bytes.max(1) as f64);
    Target {
        name: format!(
            "Join storm ({}): {} clients join a {:.1} MB board at once: p99 to a ready board < {:.0} s, peak RSS < {STORM_RSS_VS_BOARD}× the board",
            s.mode,
            s.joiners,
            s.board_bytes as f64 / 1e6,
            STORM_P99_MS / 1e3
        ),
        measured: format!(
            "p99 to Welcome {:.0} ms, to ready {:.0} ms; peak RSS {} ({}× the board); {} failed",
            s.welcome_ms.p99,
            s.ready_ms.p99,
            s.peak_rss.map_or("not measured".into(), |p| format!(
                "{:.1} MB",
                p as f64 / 1e6
            )),
            fmt(peak),
            s.failed
        ),
        met: peak.map(|p| p < STORM_RSS_VS_BOARD && s.ready_ms.p99 < STORM_P99_MS && s.failed == 0),
        why: s
            .peak_rss
            .filter(|_| peak >= Some(STORM_RSS_VS_BOARD))
            .map(|p| storm_memory(s, p)),
    }
}

/// What the peak of a join storm was made of: the node before it, what the node still held
/// once every joiner was gone (the room loaded), and what only the storm needed.
fn storm_memory(s: &JoinStormResult, peak: u64) -> String {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let board = |b: u64| format!("{:.1}×", b as f64 / s.board_bytes.max(1) as f64);
    let kept = s.rss_after.saturating_sub(s.rss_before);
    let storm = peak.saturating_sub(s.rss_after.max(s.rss_before));
    format!(
        "of the peak {}, {} was the node before the storm ({} the board); {} more was still held \
         a second after it, every joiner gone and the room loaded ({} the board); what only the \
         storm needed, {} joiners at once, was {} ({} the board, {} a joiner)",
        mb(peak),
        mb(s.rss_before),
        board(s.rss_before),
        mb(kept),
        board(kept),
        s.joiners,
        mb(storm),
        board(storm),
        format_args!("{:.1} KB", storm as f64 / 1e3 / s.joiners.max(1) as f64),
    )
}

pub(super) fn hold_targets(h: &HoldsResult) -> [Target; 2] {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    [
        Target {
            name: format!(
                "Stalled joiners ({}): each of {} viewers of a {:.1} MB board that never read, after the first, costs ≤ {}",
                h.mode,
                h.stalled_joiners,
                h.board_bytes as f64 / 1e6,
                mib(h.per_extra_stalled_joiner_budget)
            ),
            measured: format!(
                "{} bytes each (RSS {} before, {} with one, {} with all)",
                h.per_extra_stalled_joiner,
                mib(h.stalled_rss_before),
                mib(h.stalled_rss_first),
                mib(h.stalled_rss_all)
            ),
            met: Some(h.per_extra_stalled_joiner <= h.per_extra_stalled_joiner_budget),
            why: None,
        },
        Target {
            name: format!(
                "Fragment hold ({}): {} connections each holding {} KiB of an unfinished message are all closed within {:.0} s, RSS held and after ≤ {}",
                h.mode,
                h.fragment_holders,
                h.fragment_bytes / 1024,
                h.fragment_closed_after_budget_s,
                mib(h.fragment_rss_budget)
            ),
            measured: format!(
                "{} closed after {:.1} s; RSS {} before, {} held, {} after",
                h.fragment_closed,
                h.fragment_closed_after_s,
                mib(h.fragment_rss_before),
                mib(h.fragment_rss_held),
                mib(h.fragment_rss_after)
            ),
            met: Some(
                h.fragment_closed == h.fragment_holders
                    && h.fragment_closed_after_s <= h.fragment_closed_after_budget_s
                    && h.fragment_rss_held.max(h.fragment_rss_after) <= h.fragment_rss_budget,
            ),
            why: None,
        },
    ]
}

/// Targets set before the floor existed, still held.
pub(super) fn earlier_targets(r: &Results, sweeps: &[Sweep]) -> Vec<Target> {
    let mut out = Vec::new();
    let kok: Vec<&RunResult> = r
        .relay
        .iter()
        .chain(&r.fanout)
        .chain(&r.big_room)
        .filter(|r| r.system == System::Kokuban)
        .collect();
    let sum = |f: &dyn Fn(&RunResult) -> u64| kok.iter().map(|r| f(r)).sum::<u64>();
    let refused = sum(&|r| r.refused);
    let (lost, dup, reo, gaps, back) = (
        sum(&|r| r.lost),
        sum(&|r| r.duplicates),
        sum(&|r| r.reordered),
        sum(&|r| r.seq_gaps),
        sum(&|r| r.seq_backwards),
    );
    out.push(Target {
        name: "Zero loss, duplicates or reordering (every Kokuban relay, fan-out and big-room run)"
            .into(),
        measured: format!(
            "{lost} lost, {dup} duplicated, {reo} reordered, {gaps} seq gaps, {back} seq steps back, over {} deliveries in {} runs; {refused} batches refused to their authors with an error frame (never applied, kept by a real client to send again)",
            sum(&|r| r.delivered),
            kok.len()
        ),
        met: (!kok.is_empty()).then_some(lost + dup + reo + gaps + back == 0),
        why: None,
    });
    let cross = sweep_of(sweeps, System::Kokuban, true).and_then(|k| {
        let (cap, _) = k.capacity()?;
        let half = k.at(cap.clients / 2).or_else(|| k.runs.first().copied())?;
        Some((half, cap))
    });
    out.push(Target {
        name: "Cross-node p99 ≤ 5 ms at half of the measured capacity".into(),
        measured: cross.map_or("no cluster capacity measured".into(), |(half, cap)| {
            format!(
                "cross-node p99 {:.2} ms at {} clients; capacity {} clients",
                half.latency_cross_node.p99_ms, half.clients, cap.clients
            )
        }),
        met: cross.map(|(half, _)| half.latency_cross_node.p99_ms <= 5.0),
        why: None,
    });
    let idle = r.idle.iter().find(|r| r.system == System::Kokuban);
    out.push(Target {
        name: "≤ 8 KiB of server RSS per idle connection".into(),
        measured: idle
            .and_then(|r| Some((r.rss_per_connection?, r.connected)))
            .map_or("no Kokuban idle run".into(), |(per, n)| {
                format!(
                    "{:.1} KiB per connection with {n} idle connections",
                    per / 1024.0
                )
            }),
        met: idle.and_then(|r| r.rss_per_connection).map(|p| p <= 8192.0),
        why: None,
    });
    let full = !r.join.is_empty() && r.join.iter().all(|j| j.points >= 1_000_000);
    out.push(Target {
        name: "Board of 1,000,000 points: Welcome received in < 300 ms".into(),
        measured: if r.join.is_empty() {
            "no join run".into()
        } else {
            r.join
                .iter()
                .map(|j| {
                    format!(
                        "{:.0} ms median, {:.0} ms max ({}, {} points)",
                        j.welcome_median_ms, j.welcome_max_ms, j.mode, j.points
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        met: full.then(|| r.join.iter().all(|j| j.welcome_median_ms < 300.0)),
        why: None,
    });
    out
}
