use super::*;
use crate::stats::Deliveries;

impl RunResult {
    /// A run with these figures and nothing else, for tests of what is computed from runs.
    pub(crate) fn fixture(
        system: System,
        nodes: usize,
        clients: usize,
        p99_ms: f64,
        cpu_us_per_msg: f64,
        sys_us_per_msg: f64,
    ) -> RunResult {
        let latency = Summary {
            count: 1,
            p99_ms,
            ..Summary::default()
        };
        RunResult {
            system,
            mode: "test".into(),
            nodes,
            load: load(clients / 10, 10, 2),
            clients,
            connected: clients,
            connect_error: None,
            window_s: 1.0,
            sent: 0,
            expected: 0,
            delivered: 1000,
            delivered_per_s: 1000.0,
            lost: 0,
            refused: 0,
            duplicates: 0,
            reordered: 0,
            seq_gaps: 0,
            seq_backwards: 0,
            errors: 0,
            first_error: None,
            latency,
            latency_same_node: latency,
            latency_cross_node: latency,
            server_cpu_s: 0.0,
            server_cpu_pct: 0.0,
            server_cpu_us_per_msg: Some(cpu_us_per_msg),
            server_sys_us_per_msg: Some(sys_us_per_msg),
            server_switches_per_msg: None,
            server_syscalls_per_msg: None,
            redis_syscalls_per_msg: None,
            profile: None,
            cursors: None,
            redis_cpu_s: None,
            redis_cpu_us_per_msg: None,
            redis_cpu_spread: None,
            redis_ops_spread: None,
            generator_cpu_pct: 0.0,
            machine_cpu_pct: 0.0,
            server_rss_before: 0,
            server_rss_after: 0,
            redis_rss: None,
            rss_per_connection: None,
            hists: None,
        }
    }
}

fn load(rooms: usize, room_size: usize, editors: usize) -> Load {
    Load {
        scenario: "test".into(),
        rooms,
        room_size,
        editors_per_room: editors,
        rate_hz: 60.0,
        stroke_batches: 60,
        cursor_hz: 0.0,
        batch_bytes: (64, 128),
        warmup: Duration::ZERO,
        measure: Duration::from_secs(1),
        syscall_window: Duration::ZERO,
        profile_window: Duration::ZERO,
        drain: Duration::ZERO,
    }
}

#[test]
fn cursor_pairs_are_stale_when_the_last_position_never_arrived() {
    use crate::clients::CursorSeen;
    let seen = |mover: u32, last_sent_us: u64| {
        (
            mover,
            CursorSeen {
                last_sent_us,
                last_arrival_us: 1,
            },
        )
    };
    // One room of three, everyone moving; member 2 missed member 0's last position.
    let member = |index: usize, sent: u64, last: u64, cursors| ClientReport {
        index,
        cursor_sent_in_window: sent,
        cursor_last_sent_us: Some(last),
        cursor_delivered_in_window: 0,
        cursors,
        ..ClientReport::default()
    };
    let reports = vec![
        member(0, 30, 900, vec![seen(1, 800), seen(2, 950)]),
        member(1, 20, 800, vec![seen(0, 900), seen(2, 950)]),
        member(2, 40, 950, vec![seen(0, 850), seen(1, 800)]),
    ];
    let mut l = load(1, 3, 0);
    l.cursor_hz = 30.0;
    let t = tally(&reports, &l);
    assert_eq!(t.cursor_stale_pairs, 1);
    assert_eq!(t.cursor_pair_moves.len(), 6);
    let f = cursor_figures(&t, &Hists::default(), 1.0, Some(Duration::from_millis(40)));
    // Every move to each other member: (30 + 20 + 40) × 2.
    assert_eq!(f.every_move, 180);
    // At most 25 updates a second reach each member: 25 + 20 + 25, twice.
    assert_eq!(f.coalesced_ceiling, 140);
    let plain = cursor_figures(&t, &Hists::default(), 1.0, None);
    assert_eq!(plain.coalesced_ceiling, 180);
}

/// What a member received of one editor: these batches, in this order.
fn got(batches: &[u32]) -> Deliveries {
    let mut d = Deliveries::default();
    for &b in batches {
        d.arrive(b);
    }
    d
}

#[test]
fn tally_counts_every_other_member_of_the_room() {
    // One room of three: members 0 and 1 draw (editor ids 0 and 1), member 2 watches.
    let reports = vec![
        ClientReport {
            index: 0,
            sent_window: Some((10, 14)),
            sent_in_window: 5,
            deliveries: vec![(1, got(&[20, 21]))],
            delivered_in_window: 2,
            ..ClientReport::default()
        },
        ClientReport {
            index: 1,
            sent_window: Some((20, 21)),
            sent_in_window: 2,
            deliveries: vec![(0, got(&[10, 11, 12, 13, 14]))],
            delivered_in_window: 5,
            ..ClientReport::default()
        },
        ClientReport {
            index: 2,
            deliveries: vec![(0, got(&[10, 12, 12, 14])), (1, got(&[21, 20]))],
            delivered_in_window: 5,
            ..ClientReport::default()
        },
    ];
    let t = tally(&reports, &load(1, 3, 2));
    assert_eq!(t.sent, 7);
    assert_eq!(t.expected, 2 * 7);
    assert_eq!(t.delivered, 12);
    assert_eq!(t.lost, 2); // 11 and 13 at member 2
    assert_eq!((t.duplicates, t.reordered), (1, 1));
}

#[test]
fn a_batch_refused_to_its_author_is_neither_expected_nor_lost() {
    // One room of three: member 0 draws, 1 and 2 watch. The server refused batch 11
    // (the room was read-only a moment); member 2 also missed 13, which was applied.
    let reports = vec![
        ClientReport {
            index: 0,
            sent_window: Some((10, 14)),
            sent_in_window: 5,
            refused: vec![9, 11],
            ..ClientReport::default()
        },
        ClientReport {
            index: 1,
            deliveries: vec![(0, got(&[10, 12, 13, 14]))],
            ..ClientReport::default()
        },
        ClientReport {
            index: 2,
            deliveries: vec![(0, got(&[10, 12, 14]))],
            ..ClientReport::default()
        },
    ];
    let t = tally(&reports, &load(1, 3, 1));
    // Batch 9 was refused before the window.
    assert_eq!(t.refused, 1);
    assert_eq!(t.expected, 2 * 4);
    assert_eq!(t.lost, 1); // 13 at member 2
}
