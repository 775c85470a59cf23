use super::*;

fn run(system: System, nodes: usize, clients: usize, p99: f64, cpu: f64, sys: f64) -> RunResult {
    let mut r = RunResult::fixture(system, nodes, clients, p99, cpu, sys);
    r.mode = match (system, nodes) {
        (System::Kokuban, 1) => "single node".into(),
        (System::Kokuban, _) => "2 node(s) + Redis".into(),
        (System::SocketIo, 1) => "single node".into(),
        (System::SocketIo, _) => "2 node(s) + Redis adapter".into(),
        (System::Floor, _) => "per-core runtimes".into(),
    };
    r
}

fn results(relay: Vec<RunResult>) -> Results {
    Results {
        quick: true,
        duration_s: 0.0,
        started_unix: 0,
        machine: crate::procfs::Machine::default(),
        versions: Vec::new(),
        open_file_limit: 0,
        relay_steps: vec![100, 200, 400],
        step_ratio: 1.25,
        syscalls_counted: false,
        floor_runtime: crate::procs::FloorRuntime::PerCore,
        notes: Vec::new(),
        relay,
        floor_variants: Vec::new(),
        fanout: Vec::new(),
        presence: Vec::new(),
        big_room: Vec::new(),
        idle: Vec::new(),
        join: Vec::new(),
        join_storm: Vec::new(),
        acks: Vec::new(),
        holds: Vec::new(),
        pen: None,
        redis_cluster: None,
        ratios: Ratios::default(),
    }
}

#[test]
fn kokuban_is_compared_with_the_floor_at_200_clients_and_the_floors_capacity() {
    use System::*;
    let relay = vec![
        // The floor holds 800 clients, not 1000.
        run(Floor, 1, 200, 1.0, 10.0, 8.0),
        run(Floor, 1, 800, 20.0, 8.0, 7.0),
        run(Floor, 1, 1000, 80.0, 7.0, 6.0),
        run(Kokuban, 1, 200, 1.5, 12.0, 9.0),
        run(Kokuban, 1, 800, 60.0, 12.0, 8.0),
        run(Kokuban, 1, 640, 40.0, 12.0, 8.0),
        run(Kokuban, 2, 200, 3.0, 20.0, 10.0),
        run(Kokuban, 2, 800, 90.0, 16.0, 9.0),
        run(SocketIo, 1, 200, 5.0, 40.0, 16.0),
        run(SocketIo, 1, 250, 70.0, 40.0, 16.0),
    ];
    let r = results(relay);
    let ratios = compute(&r);
    let at = |dep: &str, n: usize| {
        ratios
            .cpu_vs_floor
            .iter()
            .find(|x| x.deployment == dep && x.clients == n)
            .unwrap_or_else(|| panic!("no ratio for {dep} at {n}"))
    };
    let single = at("single node", 200);
    assert!((single.cpu.unwrap() - 1.2).abs() < 1e-9);
    assert!(
        (single.user.unwrap() - 1.5).abs() < 1e-9,
        "user 3 µs against 2"
    );
    assert!((single.p99.unwrap() - 1.5).abs() < 1e-9);
    assert_eq!(single.met, Some(true));
    assert_eq!(
        at("single node", 800).met,
        Some(false),
        "12 / 8 = 1.5 > 1.3"
    );
    assert_eq!(
        at("2 node(s) + Redis", 200).met,
        Some(false),
        "20 / 10 = 2 > 1.6"
    );
    assert_eq!(
        at("2 node(s) + Redis", 800).met,
        Some(false),
        "16 / 8 = 2 > 1.6"
    );
    // Capacity: Kokuban 640 (800 failed) against Socket.IO 200 (250 failed).
    let cap = &ratios.capacity_vs_socketio[0];
    assert_eq!((cap.kokuban, cap.socketio), (640, 200));
    assert!((cap.value - 3.2).abs() < 1e-9);
    assert_eq!(cap.met, Some(false));
    assert!((cap.kokuban_step.unwrap() - 1.25).abs() < 1e-9);
    // User space: 3 µs against 24 µs is 1/8, whole 12 against 40 is 1/3.3.
    let user = &ratios.user_cpu_vs_socketio[0];
    assert_eq!((user.clients, user.met), (200, true));
    let whole = &ratios.cpu_vs_socketio[0];
    assert!((whole.value - 0.3).abs() < 1e-9);
    assert!(whole.met);
    // The hop: 3.0 − 1.5 ms.
    let hop = ratios
        .targets
        .iter()
        .find(|t| t.name.starts_with("The cross-node hop"))
        .expect("hop target");
    assert_eq!(hop.met, Some(false));
    assert!(hop.measured.starts_with("1.50 ms"), "{}", hop.measured);
}

#[test]
fn the_floor_is_the_cheaper_of_its_runtimes() {
    use System::*;
    let mut r = results(vec![
        run(Floor, 1, 200, 1.0, 10.0, 8.0),
        run(Kokuban, 1, 200, 1.5, 12.0, 9.0),
    ]);
    let mut multi = run(Floor, 1, 200, 2.0, 8.0, 7.0);
    multi.mode = "multi-thread runtime".into();
    r.floor_variants.push(multi);
    let ratios = compute(&r);
    let x = &ratios.cpu_vs_floor[0];
    assert_eq!(x.floor_runtime, "multi-thread runtime");
    assert!((x.cpu.unwrap() - 1.5).abs() < 1e-9);
    // The p99 is the faster runtime's: 1.5 ms against 1.0 ms.
    assert!((x.p99.unwrap() - 1.5).abs() < 1e-9);
    // A dearer variant leaves the sweep's run as the floor.
    r.floor_variants[0].server_cpu_us_per_msg = Some(11.0);
    let x = &compute(&r).cpu_vs_floor[0];
    assert_eq!(x.floor_runtime, "per-core runtimes");
}

#[test]
fn a_capacity_without_a_failed_step_above_is_a_lower_bound() {
    use System::*;
    let r = results(vec![
        run(Kokuban, 1, 200, 1.0, 10.0, 8.0),
        run(Kokuban, 1, 400, 2.0, 10.0, 8.0),
        run(SocketIo, 1, 200, 5.0, 40.0, 16.0),
    ]);
    let ratios = compute(&r);
    let cap = &ratios.capacity_vs_socketio[0];
    assert_eq!((cap.kokuban_step, cap.socketio_step), (None, None));
    // Socket.IO's capacity is unknown above 200, so the ratio says nothing yet.
    assert_eq!(cap.met, None);
    // Without a floor, the floor targets are there, not measured.
    let floor: Vec<&Target> = ratios
        .targets
        .iter()
        .filter(|t| t.name.starts_with("CPU per delivered message ≤"))
        .collect();
    assert_eq!(floor.len(), 2);
    assert!(floor.iter().all(|t| t.met.is_none()));
}
