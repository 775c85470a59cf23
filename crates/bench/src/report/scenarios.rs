//! The sections of the scenarios other than the relay: fan-out, presence storm, big room, idle
//! connections, joins, the join storm, bytes per point.

use std::fmt::Write as _;

use super::relay::relay_rows;
use super::{View, bytes, label, opt, thousands};
use crate::scenario::System;
use crate::targets::{STORM_RSS_VS_BOARD, floor_ratio};

impl View<'_> {
    pub(super) fn fanout_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Fan-out\n");
        let Some(first) = self.r.fanout.first() else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let _ = writeln!(
            md,
            "One room: one editor at 60 Hz, {} viewers spread over the nodes.\n",
            first.load.room_size - 1
        );
        relay_rows(md, &self.r.fanout);
        self.against_floor(md, &self.r.fanout);
    }

    /// Kokuban's CPU per delivered message and p99 as multiples of the floor's, for a
    /// scenario's runs.
    fn against_floor(&self, md: &mut String, runs: &[crate::scenario::RunResult]) {
        let Some(f) = runs.iter().find(|r| r.system == System::Floor) else {
            return;
        };
        for k in runs.iter().filter(|r| r.system == System::Kokuban) {
            let Some(x) = floor_ratio(k, &[f], 0.0) else {
                continue;
            };
            let _ = writeln!(
                md,
                "- Kokuban ({}) against the floor: CPU per delivered message {}× (user {}×, kernel {}×), system calls {}×, p99 {}×.",
                k.mode,
                opt(x.cpu, 2),
                opt(x.user, 2),
                opt(x.kernel, 2),
                opt(x.syscalls, 2),
                opt(x.p99, 2)
            );
        }
        md.push('\n');
    }

    pub(super) fn presence_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Presence storm\n");
        let Some(first) = self.r.presence.first() else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let _ = writeln!(
            md,
            "{} clients in rooms of {}, every one moving its cursor at {:.0} Hz, nobody drawing. \
             Kokuban coalesces cursors (the latest position of each member wins, sent to the \
             room at most once per interval); Socket.IO relays every move as a volatile event \
             (dropped when the socket is busy); the floor relays every move. \"Ceiling\" is what \
             the system's documented coalescing lets through (every move for the other two); a \
             pair is stale when a member never received another's last position. Latency is \
             receipt minus the send time of the position an update carries, so Kokuban's \
             includes the coalescing wait; \"gap\" is the time between two updates of one \
             member at another.\n",
            first.clients, first.load.room_size, first.load.cursor_hz
        );
        let _ = writeln!(
            md,
            "| system | clients | moves/s | updates delivered/s | every move would be | ceiling | delivered of ceiling | stale pairs | p50 ms | p99 ms | p99 gap ms | server CPU | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.r.presence {
            let Some(c) = &r.cursors else { continue };
            let per_s = |n: u64| thousands(n as f64 / r.window_s);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.0}% | {} of {} | {:.2} | {:.2} | {:.2} | {:.0}% | {} |",
                label(r),
                r.connected,
                per_s(c.sent),
                thousands(c.delivered_per_s),
                per_s(c.every_move),
                per_s(c.coalesced_ceiling),
                c.delivered as f64 * 100.0 / c.coalesced_ceiling.max(1) as f64,
                c.stale_pairs,
                c.pairs,
                c.latency.p50_ms,
                c.latency.p99_ms,
                c.gap.p99_ms,
                r.server_cpu_pct,
                r.errors
            );
        }
        md.push('\n');
    }

    pub(super) fn big_room_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Big room\n");
        let Some(first) = self.r.big_room.first() else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let l = &first.load;
        let _ = writeln!(
            md,
            "One room of {} members, every one of them drawing at once: {:.0} batches a second \
             each, so every batch reaches {} others ({} deliveries a second in all, what the \
             load generator can check while it shares the machine).\n",
            l.room_size,
            l.rate_hz,
            l.room_size - 1,
            thousands(l.rate_hz * (l.room_size * (l.room_size - 1)) as f64)
        );
        relay_rows(md, &self.r.big_room);
        self.against_floor(md, &self.r.big_room);
    }

    pub(super) fn idle_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Idle connections\n");
        if self.r.idle.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "One node, no Redis; connections in rooms of 10, nobody drawing (heartbeats only). \
             RSS per connection = (server RSS with the connections − RSS before they \
             connected) / connections.\n"
        );
        let _ = writeln!(
            md,
            "| system | connections asked | joined | RSS before | RSS after | RSS per connection | CPU at rest |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for r in &self.r.idle {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1}% |",
                label(r),
                thousands(r.clients as f64),
                thousands(r.connected as f64),
                bytes(r.server_rss_before as f64),
                bytes(r.server_rss_after as f64),
                r.rss_per_connection.map_or("–".into(), bytes),
                r.server_cpu_pct
            );
            if let Some(e) = &r.connect_error {
                let _ = writeln!(
                    md,
                    "\n  First join failure ({}): `{}`\n",
                    label(r),
                    e.replace('\n', " ")
                );
            }
        }
        md.push('\n');
    }

    pub(super) fn join_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Join a large board\n");
        if self.r.join.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "A board is drawn through the API (strokes of up to 16,384 points in batches of \
             1,024), then a new viewer connects (on the other node in a cluster) and the time \
             from the start of its TCP connect to the Welcome frame is measured; \"ready\" adds \
             decoding the snapshot into a board, as the browser does.\n"
        );
        let _ = writeln!(
            md,
            "| mode | points | strokes | drawn in | Welcome size | Welcome received (median / max) | board ready (median) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for j in &self.r.join {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} s | {} | {:.1} / {:.1} ms | {:.1} ms |",
                j.mode,
                thousands(j.points as f64),
                j.strokes,
                j.upload_s,
                bytes(j.welcome_bytes as f64),
                j.welcome_median_ms,
                j.welcome_max_ms,
                j.ready_median_ms
            );
        }
        md.push('\n');
    }

    pub(super) fn acks_section(&self, md: &mut String) {
        let _ = writeln!(md, "## What an Ack costs\n");
        if self.r.acks.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "One author adds {} items one at a time (the next once the last is acknowledged) \
             through the first node, while a viewer on the last node watches. \"Ack\" is the \
             author's round trip to its Ack, \"seen\" the time until the viewer has the op, for \
             the same ops: what the Ack waits for beyond delivery is the difference. On a single \
             node the Ack follows the store's commit to disk (others see the op at once); in a \
             cluster it follows Redis (its append-only file fsynced every second), and with \
             `--redis-replicas 1` a replica's confirmation too, which every node also waits for \
             before showing the op.\n",
            thousands(self.r.acks[0].ops as f64)
        );
        let _ = writeln!(
            md,
            "| mode | Ack p50 / p99 / max ms | seen p50 / p99 / max ms | Ack p50 − seen p50 |\n|---|---:|---:|---:|"
        );
        for a in &self.r.acks {
            let _ = writeln!(
                md,
                "| {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.2} ms |",
                a.mode,
                a.ack_ms.p50,
                a.ack_ms.p99,
                a.ack_ms.max,
                a.seen_ms.p50,
                a.seen_ms.p99,
                a.seen_ms.max,
                a.ack_ms.p50 - a.seen_ms.p50
            );
        }
        md.push('\n');
    }

    pub(super) fn storm_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Join storm\n");
        let Some(first) = self.r.join_storm.first() else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let _ = writeln!(
            md,
            "A board of about {} is drawn, {} viewers connect (to the other node in a cluster, \
             which loads the board from Redis under the storm), and all send their Hello at the \
             same moment. Times run from that moment; \"ready\" adds each viewer's own decoding \
             of the board (decodes run no more than the cores at a time, as every browser \
             decodes on its own machine). Peak RSS is the joined node's high-water mark over \
             the storm (the kernel's `VmHWM`, reset just before it); the target is below {} \
             times the board. \"RSS after\" is a second after the storm, every joiner gone and \
             the room still loaded.\n",
            bytes(first.board_bytes as f64),
            first.joiners,
            STORM_RSS_VS_BOARD
        );
        let _ = writeln!(
            md,
            "| mode | joiners | failed | points | board (Welcome) | Welcome p50 / p99 / max ms | ready p50 / p99 / max ms | RSS before | peak RSS | RSS after | peak ÷ board |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.r.join_storm {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {} | {} | {} | {} |",
                s.mode,
                s.joiners,
                s.failed,
                thousands(s.points as f64),
                bytes(s.board_bytes as f64),
                s.welcome_ms.p50,
                s.welcome_ms.p99,
                s.welcome_ms.max,
                s.ready_ms.p50,
                s.ready_ms.p99,
                s.ready_ms.max,
                bytes(s.rss_before as f64),
                s.peak_rss.map_or("–".into(), |p| bytes(p as f64)),
                bytes(s.rss_after as f64),
                opt(
                    s.peak_rss.map(|p| p as f64 / s.board_bytes.max(1) as f64),
                    2
                ),
            );
            if let Some(e) = &s.first_error {
                let _ = writeln!(
                    md,
                    "\n  First failure ({}): `{}`\n",
                    s.mode,
                    e.replace('\n', " ")
                );
            }
        }
        md.push('\n');
    }

    pub(super) fn bytes_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Bytes per point\n");
        let Some(p) = &self.r.pen else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let _ = writeln!(
            md,
            "A pen trace as the app sends it: handwriting with a stylus sampled at 240 Hz, \
             smoothed and decimated by the app's own smoother, one batch per 60 Hz animation \
             frame ({:.1} points per batch on average), {} strokes of {} points in all, drawn \
             on one node while another member watches. Live figures count every frame of the \
             strokes (`StrokeBegin`, the batches, `StrokeEnd`) with its WebSocket header; at \
             rest is the board's snapshot in the board model's encoding, as a Welcome carries \
             it once the room's log is compacted; the last column is what this board's Welcome \
             weighed (before compaction it carries the ops themselves).\n",
            p.points_per_batch, p.strokes, p.points
        );
        let _ = writeln!(
            md,
            "| client → server | server → each other member | Acks to the author | at rest (snapshot) | newcomer's Welcome |\n|---:|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            md,
            "| {:.2} B/point | {:.2} B/point | {:.2} B/point | {:.2} B/point | {:.2} B/point |\n",
            p.upstream, p.downstream, p.acks, p.at_rest, p.welcome
        );
    }

    /// The scenario lines of "What limits each figure".
    pub(super) fn scenario_limits(&self, md: &mut String) {
        for r in self.r.fanout.iter().chain(&self.r.big_room) {
            let _ = writeln!(
                md,
                "- **{}, {}**: every batch becomes {} deliveries; the load generator (which decodes every one) used {:.0}% CPU and the servers {:.0}%, the machine {:.0}%.",
                if r.load.scenario == "fanout" {
                    "Fan-out"
                } else {
                    "Big room"
                },
                label(r),
                r.load.room_size - 1,
                r.generator_cpu_pct,
                r.server_cpu_pct,
                r.machine_cpu_pct
            );
        }
        for r in &self.r.idle {
            let bound = if r.clients as u64 + 1_000 >= self.r.open_file_limit {
                format!(
                    "the count is set by the open-file limit of {} descriptors per process, which \
                     could not be raised here — not by the server's memory",
                    self.r.open_file_limit
                )
            } else {
                "the count is set by what the run's time budget allows to connect, not by the \
                 server's memory"
                    .to_string()
            };
            let failure = r.connect_error.as_ref().map_or(String::new(), |e| {
                format!(" (first failure: {})", e.replace('\n', " "))
            });
            let _ = writeln!(
                md,
                "- **Idle, {}**: {} of {} connections joined{failure}; {bound}.",
                label(r),
                thousands(r.connected as f64),
                thousands(r.clients as f64),
            );
        }
        for j in &self.r.join {
            let _ = writeln!(
                md,
                "- **Join, {}**: the Welcome is {} on loopback; the time is the server producing and sending it plus the client receiving it (decoding it into a board takes {:.1} ms more).",
                j.mode,
                bytes(j.welcome_bytes as f64),
                (j.ready_median_ms - j.welcome_median_ms).max(0.0)
            );
        }
        for s in &self.r.join_storm {
            let _ = writeln!(
                md,
                "- **Join storm, {}**: {} Welcomes of {} leave one node at once ({} in all), read by one load generator on the same cores; the p99 measures that transfer as much as the server.",
                s.mode,
                s.joiners,
                bytes(s.board_bytes as f64),
                bytes((s.board_bytes * s.joiners) as f64)
            );
        }
    }
}
