//! When to (re)connect, and how fast to send.
//!
//! Reconnects use exponential backoff with full jitter (a uniformly random delay between zero
//! and an exponentially growing ceiling), so that a thousand tabs that lost the same node do
//! not come back in lockstep. The attempt counter resets only after a connection has stayed up
//! for a while: a server that accepts and then drops us at once still gets backed off from.
//!
//! Writes the room refuses (its store is unreachable) are retried on a timer of their own
//! ([`WriteRetry`]): one op at a time, after 1 s, then doubling up to 15 s, each delay between
//! half and all of its ceiling so that the members of a room do not retry in step. An Ack, of
//! the retried op or of any other, ends it at once.

use kokuban_protocol::close;

use crate::rng::Entropy;

/// First ceiling of the reconnect delay.
pub const BACKOFF_BASE_MS: f64 = 250.0;
/// Largest ceiling of the reconnect delay.
pub const BACKOFF_CAP_MS: f64 = 15_000.0;
/// A connection that lived this long was healthy: the next loss starts the backoff over.
pub const STABLE_AFTER_MS: f64 = 10_000.0;

/// First ceiling of the delay before a refused write is tried again.
pub const WRITE_RETRY_BASE_MS: f64 = 1_000.0;
/// Largest ceiling of that delay.
pub const WRITE_RETRY_CAP_MS: f64 = 15_000.0;

/// Frames per second this client allows itself. The server drops frames above its own limit
/// (120/s sustained), and a dropped op costs a resync, so the client stays below it.
pub const FRAMES_PER_SECOND: f64 = 100.0;
/// Frames this client may send in a burst (a reconnect flushing its offline queue).
pub const FRAME_BURST: f64 = 100.0;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt, in milliseconds.
    pub fn next_delay(&mut self, rng: &mut dyn Entropy) -> f64 {
        let ceiling =
            (BACKOFF_BASE_MS * 2f64.powi(self.attempt.min(30) as i32)).min(BACKOFF_CAP_MS);
        self.attempt = self.attempt.saturating_add(1);
        rng.unit() * ceiling
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// When to try a write again while the room refuses them: exponential backoff with "equal
/// jitter" (never sooner than half the ceiling: a room that just refused is unlikely to take
/// the next write at once).
#[derive(Debug, Clone, Default)]
pub struct WriteRetry {
    attempt: u32,
    due: Option<f64>,
}

impl WriteRetry {
    /// Whether a retry is due at `now_ms`; the first call after a refusal (or after the last
    /// retry) only sets the timer.
    pub fn due(&mut self, now_ms: f64, rng: &mut dyn Entropy) -> bool {
        match self.due {
            None => {
                let ceiling = (WRITE_RETRY_BASE_MS * 2f64.powi(self.attempt.min(30) as i32))
                    .min(WRITE_RETRY_CAP_MS);
                self.attempt = self.attempt.saturating_add(1);
                self.due = Some(now_ms + ceiling * (0.5 + rng.unit() / 2.0));
                false
            }
            Some(t) if now_ms >= t => {
                self.due = None;
                true
            }
            Some(_) => false,
        }
    }

    /// Writes are accepted again: the next outage starts over.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The connection as the user sees it (the status element's `data-status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The first connection is being made.
    Connecting,
    /// Welcomed: live.
    Connected,
    /// Welcomed, but the room refuses writes for now; changes are kept and sent later.
    ReadOnly,
    /// Lost; trying again.
    Reconnecting,
    /// The browser says there is no network; waiting for it.
    Offline,
    /// Will not reconnect (the link is invalid, or the app is outdated).
    Closed(String),
}

impl Status {
    /// The stable name of the status, for `data-status` and styling.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::ReadOnly => "read-only",
            Status::Reconnecting => "reconnecting",
            Status::Offline => "offline",
            Status::Closed(_) => "closed",
        }
    }

    /// What the status element says.
    pub fn label(&self) -> String {
        match self {
            Status::Connecting => "Connecting…".into(),
            Status::Connected => "Connected".into(),
            Status::ReadOnly => {
                "Read-only — your changes are kept until the board can be saved".into()
            }
            Status::Reconnecting => "Reconnecting…".into(),
            Status::Offline => "Offline — your drawing is kept".into(),
            Status::Closed(reason) => reason.clone(),
        }
    }
}

/// What to do after a connection ended (or the network came back).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Connect again after this many milliseconds.
    RetryIn(f64),
    /// Wait for the browser to come back online.
    WaitForNetwork,
    /// Keep the current connection: it survived.
    Stay,
    /// Do not reconnect.
    Stop,
}

/// What the user can do about a connection that will not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Reload the page (a new version of the app).
    Reload,
    /// Start a new board: this link cannot open one.
    NewBoard,
}

/// What the page says once the room's links were reset and this tab's link with them.
pub const LINKS_RESET_TEXT: &str =
    "This link was reset by an editor of the board; ask them for the new one.";

/// The reconnect policy of one room's connection.
#[derive(Debug, Clone)]
pub struct Connection {
    backoff: Backoff,
    status: Status,
    welcomed_at: Option<f64>,
    fatal: Option<(String, Remedy)>,
    ever_connected: bool,
    read_only: bool,
    /// This tab reset the room's links and holds the new ones: the close that the reset
    /// brings to the connection of the old link is not the end.
    relinked: bool,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            status: Status::Connecting,
            welcomed_at: None,
            fatal: None,
            ever_connected: false,
            read_only: false,
            relinked: false,
        }
    }
}

impl Connection {
    /// Not connected yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The status to show.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether the policy gave up for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.status, Status::Closed(_))
    }

    /// What the user can do once the policy gave up (None while it has not).
    pub fn remedy(&self) -> Option<Remedy> {
        self.fatal
            .as_ref()
            .filter(|_| self.is_closed())
            .map(|(_, r)| *r)
    }

    /// The server welcomed us at `now_ms`.
    pub fn welcomed(&mut self, now_ms: f64) {
        self.welcomed_at = Some(now_ms);
        self.ever_connected = true;
        self.status = self.live();
    }

    /// The room refuses our writes (`true`) or takes them again: shown while connected.
    pub fn read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
        if matches!(self.status, Status::Connected | Status::ReadOnly) {
            self.status = self.live();
        }
    }

    fn live(&self) -> Status {
        if self.read_only {
            Status::ReadOnly
        } else {
            Status::Connected
        }
    }

    /// The server said this link can never work: the connection closes for good when it
    /// ends.
    pub fn fatal(&mut self, reason: String) {
        self.fatal = Some((reason, Remedy::NewBoard));
    }

    /// This link cannot work and no connection is even tried (it carries no token): closed
    /// for good at once, saying why for as long as the page is open.
    pub fn refuse(&mut self, reason: String) {
        self.status = Status::Closed(reason.clone());
        self.fatal = Some((reason, Remedy::NewBoard));
    }

    /// The app must be reloaded (protocol version mismatch).
    pub fn outdated(&mut self) {
        self.fatal = Some((
            "A new version of Kokuban is available — reload the page.".into(),
            Remedy::Reload,
        ));
    }

    /// The connection closed with `code` at `now_ms`; `online` is the browser's network state.
    pub fn closed(&mut self, code: u16, online: bool, now_ms: f64, rng: &mut dyn Entropy) -> Next {
        if let Some(t) = self.welcomed_at.take()
            && now_ms - t >= STABLE_AFTER_MS
        {
            self.backoff.reset();
        }
        if code == close::VERSION_MISMATCH {
            self.outdated();
        }
        let relinked = code == close::LINKS_RESET && std::mem::take(&mut self.relinked);
        if code == close::LINKS_RESET && !relinked && self.fatal.is_none() {
            self.fatal = Some((LINKS_RESET_TEXT.into(), Remedy::NewBoard));
        }
        if let Some((reason, _)) = &self.fatal {
            self.status = Status::Closed(reason.clone());
            return Next::Stop;
        }
        if !online {
            self.status = Status::Offline;
            return Next::WaitForNetwork;
        }
        self.status = if self.ever_connected {
            Status::Reconnecting
        } else {
            Status::Connecting
        };
        let delay = self.backoff.next_delay(rng);
        // A slow consumer or a resync lost nothing and should catch up soon; a server going
        // away (restart, shutdown) wants everyone back, but not all at once: full jitter.
        let delay = match code {
            close::SLOW_CONSUMER | close::RESUME | close::LINKS_RESET => delay.min(BACKOFF_BASE_MS),
            _ => delay,
        };
        Next::RetryIn(delay)
    }

    /// This tab reset the room's links and now holds the new ones. A connection the reset
    /// already closed comes back at once (`RetryIn(0)`); a live one carries on until the
    /// reset's close reaches it, and then reconnects quickly instead of giving up.
    pub fn relinked(&mut self) -> Next {
        let reset = matches!(&self.fatal, Some((reason, _)) if reason == LINKS_RESET_TEXT);
        if reset {
            self.fatal = None;
            self.backoff.reset();
            self.status = Status::Reconnecting;
            return Next::RetryIn(0.0);
        }
        self.relinked = true;
        Next::Stay
    }

    /// The browser went offline.
    pub fn offline(&mut self) {
        if !self.is_closed() {
            self.status = Status::Offline;
        }
    }

    /// The browser is back online. A connection that survived the outage (`live`: still
    /// welcomed) carries on, and the status says so again; otherwise connect now, with a
    /// fresh start of the backoff.
    pub fn online(&mut self, live: bool) -> Next {
        if self.is_closed() {
            return Next::Stop;
        }
        if live {
            self.status = Status::Connected;
            return Next::Stay;
        }
        self.backoff.reset();
        self.status = Status::Reconnecting;
        Next::RetryIn(0.0)
    }
}

/// A token bucket for outgoing frames.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    tokens: f64,
    last_ms: Option<f64>,
}

impl Default for FrameBudget {
    fn default() -> Self {
        Self {
            tokens: FRAME_BURST,
            last_ms: None,
        }
    }
}

impl FrameBudget {
    /// A full bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one frame's token at `now_ms`, if there is one.
    pub fn take(&mut self, now_ms: f64) -> bool {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens available at `now_ms`.
    pub fn available(&mut self, now_ms: f64) -> u32 {
        self.refill(now_ms);
        self.tokens as u32
    }

    fn refill(&mut self, now_ms: f64) {
        if let Some(last) = self.last_ms {
            let elapsed = (now_ms - last).max(0.0) / 1000.0;
            self.tokens = (self.tokens + elapsed * FRAMES_PER_SECOND).min(FRAME_BURST);
        }
        self.last_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
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
}
