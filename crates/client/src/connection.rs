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
mod tests;
