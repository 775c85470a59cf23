use super::*;
use crate::rng::Xoshiro256;

/// Always (just below) the top of the range, to see the ceiling.
struct Max;

fn retry(next: Next) -> f64 {
    match next {
        Next::RetryIn(ms) => ms.round(),
        other => panic!("expected a retry, got {other:?}"),
    }
}
impl Entropy for Max {
    fn next_u64(&mut self) -> u64 {
        u64::MAX
    }
}

#[test]
fn backoff_ceiling_doubles_to_the_cap_and_jitter_stays_below_it() {
    let mut b = Backoff::default();
    let ceilings: Vec<f64> = (0..10).map(|_| b.next_delay(&mut Max).round()).collect();
    assert_eq!(
        ceilings[..7],
        [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 15000.0]
    );
    assert_eq!(ceilings[9], 15000.0);
    let mut b = Backoff::default();
    let mut rng = Xoshiro256::seeded(1);
    let delays: Vec<f64> = (0..8).map(|_| b.next_delay(&mut rng)).collect();
    for (i, d) in delays.iter().enumerate() {
        assert!(*d >= 0.0 && *d <= (250.0 * 2f64.powi(i as i32)).min(15000.0));
    }
    // Deterministic with the same seed.
    let mut again = Backoff::default();
    let mut rng = Xoshiro256::seeded(1);
    assert_eq!(again.next_delay(&mut rng), delays[0]);
}

#[test]
fn a_stable_connection_resets_the_backoff_a_flapping_one_does_not() {
    let mut c = Connection::new();
    assert_eq!(c.status().name(), "connecting");
    c.welcomed(0.0);
    assert_eq!(c.status().name(), "connected");
    for t in 1..5 {
        c.closed(1001, true, f64::from(t), &mut Max);
        c.welcomed(f64::from(t));
    }
    // Four quick drops: the fifth waits up to 16x the base.
    assert_eq!(retry(c.closed(1001, true, 5.0, &mut Max)), 4000.0);
    assert_eq!(c.status().name(), "reconnecting");
    c.welcomed(10.0);
    assert_eq!(
        retry(c.closed(1006, true, 10.0 + STABLE_AFTER_MS, &mut Max)),
        250.0
    );
}

#[test]
fn close_codes_and_network_state_decide_what_happens() {
    let mut c = Connection::new();
    c.welcomed(0.0);
    assert_eq!(c.closed(1006, false, 1.0, &mut Max), Next::WaitForNetwork);
    assert_eq!(c.status().name(), "offline");
    assert_eq!(c.online(false), Next::RetryIn(0.0));
    for _ in 0..6 {
        c.closed(1006, true, 2.0, &mut Max);
    }
    // A slow consumer, or a member told to resume, comes back quickly whatever the backoff
    // says.
    assert_eq!(
        retry(c.closed(close::SLOW_CONSUMER, true, 3.0, &mut Max)),
        BACKOFF_BASE_MS
    );
    assert_eq!(
        retry(c.closed(close::RESUME, true, 3.5, &mut Max)),
        BACKOFF_BASE_MS
    );
    assert_eq!(
        c.closed(close::VERSION_MISMATCH, true, 4.0, &mut Max),
        Next::Stop
    );
    assert!(c.status().label().contains("reload"));
    let mut d = Connection::new();
    d.fatal("no such room".into());
    assert_eq!(d.closed(1008, true, 0.0, &mut Max), Next::Stop);
    assert_eq!(d.status(), &Status::Closed("no such room".into()));
    assert_eq!(d.online(false), Next::Stop);
    assert_eq!(d.remedy(), Some(Remedy::NewBoard));
    assert_eq!(c.remedy(), Some(Remedy::Reload));
}

#[test]
fn a_reset_link_closes_for_good_unless_this_tab_holds_the_new_one() {
    let mut other = Connection::new();
    other.welcomed(0.0);
    assert_eq!(
        other.closed(close::LINKS_RESET, true, 1.0, &mut Max),
        Next::Stop
    );
    assert_eq!(other.status().label(), LINKS_RESET_TEXT);
    assert!(other.is_closed());

    // The tab that reset them: the new links arrive before the close...
    let mut mine = Connection::new();
    mine.welcomed(0.0);
    assert_eq!(mine.relinked(), Next::Stay);
    assert_eq!(
        retry(mine.closed(close::LINKS_RESET, true, 1.0, &mut Max)),
        BACKOFF_BASE_MS
    );
    assert_eq!(mine.status().name(), "reconnecting");
    // ...or after it.
    let mut late = Connection::new();
    late.welcomed(0.0);
    late.closed(close::LINKS_RESET, true, 1.0, &mut Max);
    assert_eq!(late.relinked(), Next::RetryIn(0.0));
    assert!(!late.is_closed());
    // A later reset by someone else closes it for good again.
    late.welcomed(2.0);
    assert_eq!(
        late.closed(close::LINKS_RESET, true, 3.0, &mut Max),
        Next::Stop
    );
    // Another reason to stop is not undone by new links.
    let mut old = Connection::new();
    old.outdated();
    old.closed(1001, true, 0.0, &mut Max);
    assert_eq!(old.relinked(), Next::Stay);
    assert!(old.is_closed());
}

#[test]
fn a_network_blip_that_the_connection_survived_shows_connected_again() {
    let mut c = Connection::new();
    c.welcomed(0.0);
    c.offline();
    assert_eq!(c.status().name(), "offline");
    // The socket never closed: nothing to reconnect, and no "Reconnecting…" either.
    assert_eq!(c.online(true), Next::Stay);
    assert_eq!(c.status(), &Status::Connected);
    assert_eq!(c.remedy(), None);
}

#[test]
fn a_refused_link_says_why_at_once_and_for_good() {
    let mut c = Connection::new();
    c.refuse("This link has no key to the board.".into());
    assert_eq!(c.status().label(), "This link has no key to the board.");
    assert_eq!(c.remedy(), Some(Remedy::NewBoard));
    c.offline();
    assert_eq!(c.online(false), Next::Stop);
    assert_eq!(c.closed(1006, true, 1.0, &mut Max), Next::Stop);
    assert_eq!(c.status().name(), "closed");
    assert_eq!(c.status().label(), "This link has no key to the board.");
}

#[test]
fn refused_writes_are_retried_later_and_later_never_at_once() {
    let mut r = WriteRetry::default();
    let mut due_at = Vec::new();
    let mut now = 0.0;
    for _ in 0..7 {
        // The first look sets the timer; it fires at the first look past it.
        assert!(!r.due(now, &mut Max));
        let mut t = now;
        while !r.due(t, &mut Max) {
            t += 10.0;
        }
        due_at.push(((t - now) / 10.0).round() * 10.0);
        now = t;
    }
    assert_eq!(
        due_at,
        [1000.0, 2000.0, 4000.0, 8000.0, 15000.0, 15000.0, 15000.0]
    );
    // Jitter keeps at least half the ceiling.
    let mut r = WriteRetry::default();
    let mut rng = Xoshiro256::seeded(5);
    r.due(0.0, &mut rng);
    assert!(!r.due(499.0, &mut rng));
    r.reset();
    assert!(!r.due(0.0, &mut rng));
    assert!(r.due(1000.0, &mut rng));
}

#[test]
fn read_only_shows_while_connected_and_ends_with_writes() {
    let mut c = Connection::new();
    c.welcomed(0.0);
    c.read_only(true);
    assert_eq!(c.status().name(), "read-only");
    assert!(c.status().label().contains("kept"));
    // A lost connection says so first; back, it is read-only again until a write is taken.
    c.closed(1006, true, 1.0, &mut Max);
    assert_eq!(c.status().name(), "reconnecting");
    c.welcomed(2.0);
    assert_eq!(c.status().name(), "read-only");
    c.read_only(false);
    assert_eq!(c.status(), &Status::Connected);
}

#[test]
fn the_frame_budget_allows_a_burst_then_the_rate() {
    let mut b = FrameBudget::new();
    let sent = (0..150).filter(|_| b.take(0.0)).count();
    assert_eq!(sent, FRAME_BURST as usize);
    assert!(!b.take(5.0));
    assert!(b.take(10.0));
    assert_eq!(b.available(1000.0), 99);
    assert_eq!(b.available(100_000.0), FRAME_BURST as u32);
}
