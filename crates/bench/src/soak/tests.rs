use super::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const METRICS: &str = "\
# HELP kokuban_connections_open WebSocket sessions open.
# TYPE kokuban_connections_open gauge
kokuban_connections_open 3
kokuban_connections_total 17
kokuban_rooms_loaded 2
kokuban_process_open_fds 41
kokuban_runtime_alive_tasks 12
";

#[test]
fn gauges_are_read_by_exact_name() {
    let g = Gauges::parse(METRICS).unwrap();
    assert_eq!(
        g,
        Gauges {
            connections: 3,
            rooms: 2,
            fds: 41,
            tasks: 12
        }
    );
    let without_tasks = METRICS.replace("kokuban_runtime_alive_tasks 12\n", "");
    assert!(Gauges::parse(&without_tasks).is_err());
}

#[test]
fn settled_means_nothing_open_and_nothing_above_the_baseline() {
    let baseline = Gauges {
        connections: 0,
        rooms: 0,
        fds: 20,
        tasks: 8,
    };
    assert!(baseline.settled(baseline));
    assert!(
        !Gauges {
            fds: 21,
            ..baseline
        }
        .settled(baseline)
    );
    assert!(
        !Gauges {
            tasks: 9,
            ..baseline
        }
        .settled(baseline)
    );
    assert!(
        !Gauges {
            rooms: 1,
            ..baseline
        }
        .settled(baseline)
    );
    assert!(
        !Gauges {
            connections: 1,
            ..baseline
        }
        .settled(baseline)
    );
    assert!(
        Gauges {
            fds: 19,
            ..baseline
        }
        .settled(baseline)
    );
}

fn options() -> Options {
    Options {
        kokuban_bin: PathBuf::new(),
        churn: Duration::from_secs(600),
        rooms: 1,
        clients: 1,
        settle: Duration::ZERO,
        rss_growth_pct: 10.0,
        rss_slack_mib: 8.0,
    }
}

fn samples(mib: &[(u64, u64)]) -> Vec<RssSample> {
    mib.iter()
        .map(|&(s, m)| RssSample {
            at: Duration::from_secs(s),
            bytes: m << 20,
        })
        .collect()
}

#[test]
fn rss_is_compared_from_the_first_minute_to_the_end() {
    let opts = options();
    let churn = opts.churn;
    // Growth before the reference point (warm-up) does not count.
    let warm = samples(&[(0, 10), (30, 80), (60, 100), (600, 109)]);
    assert_eq!(
        rss_growth(&warm, churn, &opts),
        Some((100 << 20, 109 << 20, true))
    );
    let leak = samples(&[(0, 10), (60, 100), (600, 111)]);
    assert_eq!(rss_growth(&leak, churn, &opts).map(|r| r.2), Some(false));
    // Small heaps get the slack in MiB instead of the percentage.
    let small = samples(&[(60, 20), (600, 27)]);
    assert_eq!(rss_growth(&small, churn, &opts).map(|r| r.2), Some(true));
    // A short churn compares its middle with its end.
    let short = samples(&[(0, 10), (30, 20), (55, 20)]);
    assert_eq!(
        rss_growth(&short, Duration::from_secs(60), &opts).map(|r| r.0),
        Some(20 << 20)
    );
    assert_eq!(rss_growth(&samples(&[(0, 10)]), churn, &opts), None);
}

#[test]
fn every_kind_of_session_is_picked() {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut seen = [0u32; Kind::ALL.len()];
    for _ in 0..10_000 {
        seen[Kind::pick(&mut rng) as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    // Editors (weight 35) come about seven times as often as silent clients (weight 5).
    assert!(seen[Kind::Editor as usize] > 5 * seen[Kind::Silent as usize]);
}
