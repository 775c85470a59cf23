//! The targets and the ratios they are judged by, computed from the runs of one benchmark.
//! The report prints them and `results.json` carries them as named fields; nothing here is
//! measured, only compared.

use serde::Serialize;

use crate::plan::Results;
use crate::scenario::{RunResult, System};
use crate::sweep::{P99_LIMIT_MS, within_limit};

mod scenarios;

use scenarios::{earlier_targets, fanout_target, hold_targets, presence_target, storm_target};

/// The client count every pair of systems is compared at, whatever else is.
pub const REFERENCE_CLIENTS: usize = 200;

/// Kokuban's CPU per delivered message may be at most this multiple of the floor's: one node.
pub const FLOOR_LIMIT_SINGLE: f64 = 1.3;
/// ...and two nodes sharing Redis (the extra hop and Redis's protocol cost something).
pub const FLOOR_LIMIT_CLUSTER: f64 = 1.6;
/// Kokuban's user-space CPU per delivered message at most this share of Socket.IO's.
pub const USER_VS_SOCKETIO: f64 = 1.0 / 5.0;
/// Kokuban's whole CPU per delivered message at most this share of Socket.IO's.
pub const CPU_VS_SOCKETIO: f64 = 1.0 / 2.5;
/// Kokuban's relay capacity at least this multiple of Socket.IO's.
pub const CAPACITY_VS_SOCKETIO: f64 = 5.0;
/// Presence storm: Kokuban's servers may use at most this much CPU, percent of one core.
pub const PRESENCE_CPU_PCT: f64 = 50.0;
/// Presence storm: the share of the coalescing ceiling that must arrive. A coalescing timer
/// armed by the first move after each flush delivers a little less than one update per
/// interval; well below the ceiling, updates were lost rather than coalesced.
pub const PRESENCE_MIN_SHARE: f64 = 0.8;
/// Join storm: the p99 time to a ready board, milliseconds.
pub const STORM_P99_MS: f64 = 1000.0;
/// Join storm: peak server RSS at most this multiple of the board's size.
pub const STORM_RSS_VS_BOARD: f64 = 4.0;
/// Fan-out: p99 at most this, milliseconds.
pub const FANOUT_P99_MS: f64 = 10.0;
/// The cross-node hop (cluster p99 minus single-node p99 at the same load), milliseconds.
pub const HOP_MS: f64 = 1.0;
/// Live bytes per point of a pen trace, at most.
pub const BYTES_PER_POINT: f64 = 4.0;

/// One target with what this run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is asked.
    pub name: String,
    /// What was measured, in words and figures.
    pub measured: String,
    /// Met, missed, or not measured (`None`).
    pub met: Option<bool>,
    /// For a missed target, why, from what the run measured: for a CPU target, where the CPU
    /// went (from the profiles of the runs compared); for a memory target, what held it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Kokuban against the floor at one load.
#[derive(Debug, Clone, Serialize)]
pub struct FloorRatio {
    /// Kokuban's deployment ("single node", "2 node(s) + Redis").
    pub deployment: String,
    /// The load, in clients.
    pub clients: usize,
    /// The floor's runtime whose CPU figures are compared (the cheaper one where both ran).
    pub floor_runtime: String,
    /// Kokuban's CPU per delivered message, microseconds.
    pub kokuban_us: Option<f64>,
    /// The floor's, microseconds.
    pub floor_us: Option<f64>,
    /// Kokuban's p99, milliseconds.
    pub kokuban_p99_ms: f64,
    /// The floor's p99, milliseconds (the faster runtime's where both ran).
    pub floor_p99_ms: f64,
    /// CPU per delivered message, Kokuban ÷ floor.
    pub cpu: Option<f64>,
    /// The user-space part, Kokuban ÷ floor.
    pub user: Option<f64>,
    /// The kernel part, Kokuban ÷ floor.
    pub kernel: Option<f64>,
    /// p99 latency, Kokuban ÷ floor.
    pub p99: Option<f64>,
    /// System calls per delivered message, Kokuban ÷ floor.
    pub syscalls: Option<f64>,
    /// The target for `cpu`.
    pub limit: f64,
    /// Whether `cpu` met it.
    pub met: Option<bool>,
}

/// Kokuban ÷ Socket.IO at one load.
#[derive(Debug, Clone, Serialize)]
pub struct PairRatio {
    /// The deployments compared ("one node", "two nodes sharing Redis").
    pub deployment: String,
    /// The load, in clients.
    pub clients: usize,
    /// Kokuban ÷ Socket.IO.
    pub value: f64,
    /// The target (at most).
    pub limit: f64,
    /// Whether it was met.
    pub met: bool,
}

/// Kokuban's relay capacity against Socket.IO's.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityRatio {
    /// The deployments compared.
    pub deployment: String,
    /// Kokuban's largest load within the p99 limit, clients.
    pub kokuban: usize,
    /// Socket.IO's.
    pub socketio: usize,
    /// Kokuban ÷ Socket.IO.
    pub value: f64,
    /// The step above Kokuban's capacity ÷ its capacity (absent: no step above failed, so the
    /// capacity is a lower bound).
    pub kokuban_step: Option<f64>,
    /// The same for Socket.IO.
    pub socketio_step: Option<f64>,
    /// Whether it was met (absent when Socket.IO's capacity is only a lower bound).
    pub met: Option<bool>,
}

/// Every ratio the issue names, and every target with its measured value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    /// Kokuban ÷ floor at the reference load and at the floor's capacity.
    pub cpu_vs_floor: Vec<FloorRatio>,
    /// Kokuban ÷ floor at every load both ran.
    pub cpu_vs_floor_by_step: Vec<FloorRatio>,
    /// Kokuban's user-space CPU per delivered message ÷ Socket.IO's.
    pub user_cpu_vs_socketio: Vec<PairRatio>,
    /// Kokuban's CPU per delivered message ÷ Socket.IO's.
    pub cpu_vs_socketio: Vec<PairRatio>,
    /// Kokuban's relay capacity ÷ Socket.IO's.
    pub capacity_vs_socketio: Vec<CapacityRatio>,
    /// Live bytes per point of a pen trace (the larger direction).
    pub bytes_per_point_live: Option<f64>,
    /// Every target.
    pub targets: Vec<Target>,
}

/// A relay sweep of one system in one mode.
#[derive(Debug)]
pub struct Sweep<'a> {
    /// Its series name, e.g. "Kokuban (2 node(s) + Redis)".
    pub label: String,
    /// Its runs, by clients.
    pub runs: Vec<&'a RunResult>,
}

/// A run's series name.
pub fn label(r: &RunResult) -> String {
    format!("{} ({})", r.system.name(), r.mode)
}

/// The relay runs grouped into sweeps (the sharded-adapter run stays out).
pub fn sweeps(relay: &[RunResult]) -> Vec<Sweep<'_>> {
    let mut sweeps: Vec<Sweep> = Vec::new();
    for run in relay.iter().filter(|r| !r.mode.contains("sharded")) {
        let l = label(run);
        match sweeps.iter_mut().find(|s| s.label == l) {
            Some(s) => s.runs.push(run),
            None => sweeps.push(Sweep {
                label: l,
                runs: vec![run],
            }),
        }
    }
    for s in &mut sweeps {
        s.runs.sort_by_key(|r| r.clients);
    }
    sweeps
}

/// The first sweep of `system` in cluster mode or not.
pub fn sweep_of<'s, 'a>(
    sweeps: &'s [Sweep<'a>],
    system: System,
    cluster: bool,
) -> Option<&'s Sweep<'a>> {
    sweeps
        .iter()
        .find(|s| s.runs[0].system == system && (s.runs[0].nodes > 1) == cluster)
}

impl Sweep<'_> {
    /// The largest load served within the limit, and the ratio of the smallest larger load
    /// that was not to it (`None`: none was, so the capacity is a lower bound).
    pub fn capacity(&self) -> Option<(&RunResult, Option<f64>)> {
        let ok = self
            .runs
            .iter()
            .copied()
            .filter(|r| within_limit(r))
            .max_by_key(|r| r.clients)?;
        let above = self
            .runs
            .iter()
            .filter(|r| r.clients > ok.clients && !within_limit(r))
            .map(|r| r.clients)
            .min();
        Some((ok, above.map(|a| a as f64 / ok.clients as f64)))
    }

    /// The run at `clients`.
    pub fn at(&self, clients: usize) -> Option<&RunResult> {
        self.runs.iter().copied().find(|r| r.clients == clients)
    }
}

/// The largest client count both sweeps served within the limit (else the smallest both ran).
pub fn same_load(b: &Sweep, k: &Sweep) -> Option<usize> {
    let both = |ok: bool| {
        b.runs
            .iter()
            .filter(|r| !ok || within_limit(r))
            .map(|r| r.clients)
            .filter(|&c| k.at(c).is_some_and(|r| !ok || within_limit(r)))
            .collect::<Vec<_>>()
    };
    both(true)
        .into_iter()
        .max()
        .or_else(|| both(false).into_iter().min())
}

/// Server CPU per delivered message spent in user space.
pub fn user_us_per_msg(r: &RunResult) -> Option<f64> {
    Some((r.server_cpu_us_per_msg? - r.server_sys_us_per_msg?).max(0.0))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

/// Kokuban's run against the floor's runs at the same load (its runtimes): CPU from the one
/// that spent least, p99 from the one that was fastest — the floor is the best of them. `None`
/// without a floor run.
pub fn floor_ratio(k: &RunResult, floors: &[&RunResult], limit: f64) -> Option<FloorRatio> {
    let least =
        |f: &dyn Fn(&RunResult) -> f64| floors.iter().copied().min_by(|a, b| f(a).total_cmp(&f(b)));
    let f = least(&|r| r.server_cpu_us_per_msg.unwrap_or(f64::INFINITY))?;
    let fastest = least(&|r| r.latency.p99_ms)?;
    let cpu = ratio(k.server_cpu_us_per_msg, f.server_cpu_us_per_msg);
    Some(FloorRatio {
        deployment: k.mode.clone(),
        clients: k.clients,
        floor_runtime: f.mode.clone(),
        kokuban_us: k.server_cpu_us_per_msg,
        floor_us: f.server_cpu_us_per_msg,
        kokuban_p99_ms: k.latency.p99_ms,
        floor_p99_ms: fastest.latency.p99_ms,
        cpu,
        user: ratio(user_us_per_msg(k), user_us_per_msg(f)),
        kernel: ratio(k.server_sys_us_per_msg, f.server_sys_us_per_msg),
        p99: ratio(Some(k.latency.p99_ms), Some(fastest.latency.p99_ms)),
        syscalls: ratio(
            k.server_syscalls_per_msg.map(|c| c.total),
            f.server_syscalls_per_msg.map(|c| c.total),
        ),
        limit,
        met: cpu.map(|c| c <= limit),
    })
}

fn status(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "not measured",
    }
}

fn all_met(v: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let v: Vec<Option<bool>> = v.into_iter().collect();
    if v.is_empty() || v.iter().any(Option::is_none) {
        return None;
    }
    Some(v.iter().all(|m| *m == Some(true)))
}

/// Computes every ratio and target from the runs.
pub fn compute(r: &Results) -> Ratios {
    let sweeps = sweeps(&r.relay);
    let mut out = Ratios {
        bytes_per_point_live: r.pen.as_ref().map(|p| p.live()),
        ..Ratios::default()
    };
    let floor = sweep_of(&sweeps, System::Floor, false);
    let floor_capacity = floor.and_then(|f| f.capacity());
    let floor_cap = floor_capacity.map(|(c, _)| c.clients);
    let cap_words = match floor_capacity {
        Some((_, Some(_))) => ", the floor's capacity",
        // No step above failed: the floor holds more than this sweep asked of it.
        _ => ", the floor's largest step (all within the limit)",
    };
    let mut floor_loads = vec![REFERENCE_CLIENTS];
    floor_loads.extend(floor_cap.filter(|&c| c != REFERENCE_CLIENTS));
    let deployments = [
        ("one node", false, FLOOR_LIMIT_SINGLE),
        ("two nodes sharing Redis", true, FLOOR_LIMIT_CLUSTER),
    ];

    // 1. Against the floor.
    for (what, cluster, limit) in deployments {
        let (Some(f), Some(k)) = (floor, sweep_of(&sweeps, System::Kokuban, cluster)) else {
            out.targets.push(Target {
                name: format!("CPU per delivered message ≤ {limit}× the floor's ({what})"),
                measured: "no comparable runs (see notes)".into(),
                met: None,
                why: None,
            });
            continue;
        };
        // Wherever both of the floor's runtimes ran, the floor is the better of them.
        let floor_at = |n: usize| -> Vec<&RunResult> {
            f.at(n)
                .into_iter()
                .chain(r.floor_variants.iter().filter(|v| v.clients == n))
                .collect()
        };
        out.cpu_vs_floor_by_step.extend(
            k.runs
                .iter()
                .filter_map(|kr| floor_ratio(kr, &floor_at(kr.clients), limit)),
        );
        let at: Vec<FloorRatio> = floor_loads
            .iter()
            .filter_map(|&n| floor_ratio(k.at(n)?, &floor_at(n), limit))
            .collect();
        let measured = if at.is_empty() {
            "no load both ran".to_string()
        } else {
            at.iter()
                .map(|x| {
                    format!(
                        "{:.2}× at {} clients{} (user {}×, kernel {}×)",
                        x.cpu.unwrap_or(f64::NAN),
                        x.clients,
                        if Some(x.clients) == floor_cap {
                            cap_words
                        } else {
                            ""
                        },
                        fmt(x.user),
                        fmt(x.kernel)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let met = all_met(at.iter().map(|x| x.met));
        let floor_run = floor_at(REFERENCE_CLIENTS)
            .into_iter()
            .filter(|f| f.profile.is_some())
            .min_by(|a, b| {
                let cpu = |r: &RunResult| r.server_cpu_us_per_msg.unwrap_or(f64::INFINITY);
                cpu(a).total_cmp(&cpu(b))
            });
        out.targets.push(Target {
            name: format!("CPU per delivered message ≤ {limit}× the floor's ({what}; at {REFERENCE_CLIENTS} clients and at the floor's capacity)"),
            measured,
            met,
            why: missed(met).then(|| {
                profiled(&[("Kokuban", k.at(REFERENCE_CLIENTS)), ("the floor", floor_run)])
            }).flatten(),
        });
        out.cpu_vs_floor.extend(at);
    }

    // 2. Against Socket.IO: CPU, user-space CPU, capacity.
    for (what, cluster, _) in deployments {
        let (Some(b), Some(k)) = (
            sweep_of(&sweeps, System::SocketIo, cluster),
            sweep_of(&sweeps, System::Kokuban, cluster),
        ) else {
            continue;
        };
        let mut loads = vec![REFERENCE_CLIENTS];
        loads.extend(same_load(b, k).filter(|&n| n != REFERENCE_CLIENTS));
        let mut user = Vec::new();
        let mut whole = Vec::new();
        for n in loads {
            let (Some(rb), Some(rk)) = (b.at(n), k.at(n)) else {
                continue;
            };
            if let Some(v) = ratio(user_us_per_msg(rk), user_us_per_msg(rb)) {
                user.push(pair(what, n, v, USER_VS_SOCKETIO));
            }
            if let Some(v) = ratio(rk.server_cpu_us_per_msg, rb.server_cpu_us_per_msg) {
                whole.push(pair(what, n, v, CPU_VS_SOCKETIO));
            }
        }
        for (list, name, limit) in [
            (
                &user,
                "User-space CPU per delivered message",
                USER_VS_SOCKETIO,
            ),
            (
                &whole,
                "Whole-process CPU per delivered message",
                CPU_VS_SOCKETIO,
            ),
        ] {
            out.targets.push(Target {
                name: format!(
                    "{name} ≤ 1/{:.1} of Socket.IO's ({what}, same load)",
                    1.0 / limit
                ),
                measured: if list.is_empty() {
                    "no load both ran".into()
                } else {
                    list.iter()
                        .map(|p| format!("1/{:.1} at {} clients", 1.0 / p.value, p.clients))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                met: (!list.is_empty()).then(|| list.iter().all(|p| p.met)),
                why: list
                    .iter()
                    .any(|p| !p.met)
                    .then(|| {
                        profiled(&[
                            ("Kokuban", k.at(REFERENCE_CLIENTS)),
                            ("Socket.IO", b.at(REFERENCE_CLIENTS)),
                        ])
                    })
                    .flatten(),
            });
        }
        out.user_cpu_vs_socketio.extend(user);
        out.cpu_vs_socketio.extend(whole);

        let cap = match (k.capacity(), b.capacity()) {
            (Some((ck, sk)), Some((cb, sb))) => {
                let value = ck.clients as f64 / cb.clients as f64;
                Some(CapacityRatio {
                    deployment: what.into(),
                    kokuban: ck.clients,
                    socketio: cb.clients,
                    value,
                    kokuban_step: sk,
                    socketio_step: sb,
                    // A capacity without a failed step above is a lower bound: Kokuban's can
                    // only make the ratio larger, Socket.IO's leaves it unknown.
                    met: sb.map(|_| value >= CAPACITY_VS_SOCKETIO),
                })
            }
            _ => None,
        };
        let step = |s: Option<f64>| {
            s.map_or("a lower bound".to_string(), |s| {
                format!("next step ×{s:.2}")
            })
        };
        out.targets.push(Target {
            name: format!(
                "Relay capacity (largest load with p99 ≤ {P99_LIMIT_MS} ms) ≥ {CAPACITY_VS_SOCKETIO}× Socket.IO's ({what})"
            ),
            measured: cap.as_ref().map_or("no capacity measured".into(), |c| {
                format!(
                    "{:.1}×: {} clients ({}) against {} ({})",
                    c.value,
                    c.kokuban,
                    step(c.kokuban_step),
                    c.socketio,
                    step(c.socketio_step)
                )
            }),
            met: cap.as_ref().and_then(|c| c.met),
            why: None,
        });
        out.capacity_vs_socketio.extend(cap);
    }

    // 3. The cross-node hop.
    let single = sweep_of(&sweeps, System::Kokuban, false).and_then(|s| s.at(REFERENCE_CLIENTS));
    let cluster = sweep_of(&sweeps, System::Kokuban, true).and_then(|s| s.at(REFERENCE_CLIENTS));
    out.targets.push(match (single, cluster) {
        (Some(s), Some(c)) => {
            let hop = c.latency.p99_ms - s.latency.p99_ms;
            Target {
                name: format!("The cross-node hop (cluster p99 − single-node p99, same load) ≤ {HOP_MS} ms at {REFERENCE_CLIENTS} clients"),
                measured: format!(
                    "{hop:.2} ms ({:.2} ms − {:.2} ms)",
                    c.latency.p99_ms, s.latency.p99_ms
                ),
                met: Some(hop <= HOP_MS),
                why: None,
            }
        }
        _ => Target {
            name: format!("The cross-node hop ≤ {HOP_MS} ms at {REFERENCE_CLIENTS} clients"),
            measured: "no single-node and cluster runs at that load".into(),
            met: None,
            why: None,
        },
    });

    out.targets.extend(r.holds.iter().flat_map(hold_targets));
    if r.holds.is_empty() {
        out.targets.push(Target {
            name: "Holding attacks: stalled joiners and unfinished messages within memory budgets"
                .into(),
            measured: "not measured (see notes)".into(),
            met: None,
            why: None,
        });
    }
    out.targets.push(presence_target(&r.presence));
    out.targets.push(fanout_target(&r.fanout));
    out.targets.extend(r.join_storm.iter().map(storm_target));
    if r.join_storm.is_empty() {
        out.targets.push(Target {
            name: "Join storm: p99 to a ready board < 1 s, peak RSS < 4× the board".into(),
            measured: "not measured (see notes)".into(),
            met: None,
            why: None,
        });
    }
    out.targets.push(Target {
        name: format!("Bytes per point live ≤ {BYTES_PER_POINT} (pen trace, WebSocket framing included, the larger direction)"),
        measured: r.pen.as_ref().map_or("not measured (see notes)".into(), |p| {
            format!(
                "{:.2} (client → server {:.2}, server → client {:.2}; at rest {:.2})",
                p.live(),
                p.upstream,
                p.downstream,
                p.at_rest
            )
        }),
        met: out.bytes_per_point_live.map(|b| b <= BYTES_PER_POINT),
        why: None,
    });
    out.targets.extend(earlier_targets(r, &sweeps));
    out
}

fn missed(met: Option<bool>) -> bool {
    met == Some(false)
}

/// Where the CPU of each named run went, from its profile; `None` when none was profiled.
fn profiled(runs: &[(&str, Option<&RunResult>)]) -> Option<String> {
    let parts: Vec<String> = runs
        .iter()
        .filter_map(|(who, r)| {
            let r = (*r)?;
            let p = r.profile.as_ref()?;
            Some(format!(
                "{who} ({}, {} clients, {} µs/msg) — {}",
                r.mode,
                r.clients,
                fmt(r.server_cpu_us_per_msg),
                p.summary(3, 6)
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn pair(what: &str, clients: usize, value: f64, limit: f64) -> PairRatio {
    PairRatio {
        deployment: what.into(),
        clients,
        value,
        limit,
        met: value <= limit,
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// "met", "missed" or "not measured".
pub fn status_word(met: Option<bool>) -> &'static str {
    status(met)
}

#[cfg(test)]
mod tests;
