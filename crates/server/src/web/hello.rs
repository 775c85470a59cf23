//! The start of a connection: the Hello, the capability check, the join and the Welcome. A
//! member that got in leaves with an [`Opened`] session; anything else ends here with the
//! refusal that explains it.

use std::time::Instant;

use futures_util::StreamExt;
use kokuban_protocol::{ClientMsg, Hello, Member, MemberId, RoomId, Welcome, close, decode_client};
use tokio::time::timeout;

use super::AppState;
use super::conn::{Conn, Incoming};
use super::refusal::Refusal;
use super::socket::Session;
use super::upgrade::Socket;
use crate::metrics::Rejection;
use crate::rate::RateLimiter;
use crate::sequencer::room::{state_apart, welcome_pieces};
use crate::sequencer::{JoinRequest, MemberLink};

/// A member that joined: its session, and who it is for the logs.
pub(super) struct Opened {
    session: Session,
    room: RoomId,
    member: MemberId,
}

impl Opened {
    /// Runs the session of the member left in `opened` (if any) to its end, then closes the
    /// connection as that end requires. The session stays where the connection's task keeps
    /// it instead of moving into this future, which would hold a second place for it.
    pub async fn live(opened: &mut Option<Opened>) {
        let Some(this) = opened.as_mut() else {
            return;
        };
        let end = this.session.run().await;
        let Some(Opened {
            session,
            room,
            member,
        }) = opened.take()
        else {
            unreachable!("checked above")
        };
        // The leaving and the closing handshake take twice the state of the session's loop;
        // inline, every connection's task would keep room for them all its life.
        Box::pin(session.end(end, &room, member)).await;
    }
}

/// Reads the Hello and joins the room; a member that got in is left in `opened`.
pub(super) async fn run(
    state: AppState,
    url_room: String,
    socket: Socket,
    opened: &mut Option<Opened>,
) {
    let metrics = state.metrics.clone();
    let (sink, stream) = socket.split();
    let mut conn = Conn {
        state,
        sink,
        stream,
    };

    let hello_timeout = conn.state.config.hello_timeout;
    let closing = conn.state.closing.clone();
    let first = tokio::select! {
        first = timeout(hello_timeout, conn.next_data()) => first,
        _ = closing.cancelled() => return conn.close((close::GOING_AWAY, "server shutting down")).await,
    };
    let refusal = match first {
        Err(_) => return conn.close((close::POLICY, "no Hello in time")).await,
        Ok(Incoming::Gone) => return,
        Ok(Incoming::Broken(why, close)) => {
            metrics.reject(why);
            return conn.close(close).await;
        }
        Ok(Incoming::ControlFlood) => {
            metrics.reject(Rejection::PingFlood);
            return conn
                .close((close::POLICY, "control frames instead of a Hello"))
                .await;
        }
        Ok(Incoming::Text) => Refusal::Text,
        Ok(Incoming::Frame(bytes)) => {
            metrics.frame_in(bytes.len());
            match decode_client(&bytes) {
                Ok(ClientMsg::Hello(hello)) => return join(conn, url_room, hello, opened).await,
                Ok(_) => Refusal::ExpectedHello,
                // Garbage as the very first frame closes at once: there is no session to keep.
                Err(e) => Refusal::Decode(e),
            }
        }
    };
    conn.refuse(&refusal).await;
}

async fn join(conn: Conn, url_room: String, hello: Hello, opened: &mut Option<Opened>) {
    let state = conn.state.clone();
    let Some(room) = RoomId::new(url_room).ok().filter(|r| *r == hello.room) else {
        return conn.refuse(&Refusal::Forbidden).await;
    };
    // Listening before the generation is read: a reset after the read still reaches this
    // session, one before it refuses the token.
    let registry = state.sequencer.link_generations();
    let links = registry.watch(&room);
    let generation = match state.sequencer.link_generation(&room).await {
        Ok(g) => {
            registry.advance(&room, g);
            g
        }
        // Redis unreachable: a room this node holds goes on read-only, and its members may
        // come back with the links it last knew.
        Err(e) => match registry.known(&room) {
            Some(g) => g,
            None => {
                tracing::error!(%room, "reading the link generation failed: {e}");
                return conn.refuse(&Refusal::Unavailable).await;
            }
        },
    };
    let Some(capability) = state.capabilities.check(&room, &hello.token, generation) else {
        return conn.refuse(&Refusal::Forbidden).await;
    };
    let me = Member {
        id: MemberId(rand::random()),
        name: hello.name,
        color: hello.color,
        capability,
    };
    let (link, outbox) = MemberLink::channel(state.config.member_queue_frames);
    let author = state.capabilities.author(&room, &hello.client);
    let request = JoinRequest {
        room: room.clone(),
        member: me.clone(),
        author,
        resume: hello.resume,
        link: link.clone(),
    };
    let joined = match state.sequencer.join(request).await {
        Ok(joined) => joined,
        Err(e) => {
            if let crate::sequencer::JoinError::Unavailable(detail) = &e {
                tracing::error!(%room, "join failed: {detail}");
            }
            return match Refusal::of_join(&e) {
                Some(refusal) => conn.refuse(&refusal).await,
                None => {
                    conn.close((close::GOING_AWAY, "server shutting down"))
                        .await
                }
            };
        }
    };
    tracing::debug!(%room, member = %me.id, ?capability, "member joined");
    let welcome = Welcome {
        member: me.id,
        author,
        capability,
        epoch: joined.epoch,
        state: state_apart(),
        members: joined.members.into(),
        decided: joined.decided,
    };
    let welcome = welcome_pieces(welcome, joined.state);
    let mut conn = conn;
    // The Welcome goes out before anything in the queue: the queue holds what followed it. A
    // large board comes first, in parts shared with every other joiner, and the Welcome's own
    // state is shared too: the connection holds one WebSocket fragment at a time, never a
    // copy of the board. A big board on a slow link takes a while: each fragment may take as
    // long as any other silence.
    for part in joined.parts.iter().flat_map(|p| p.frames()) {
        if !conn.send_pieces(&part, state.config.idle_timeout).await {
            return;
        }
    }
    if !conn.send_pieces(&welcome, state.config.idle_timeout).await {
        return;
    }
    let config = &state.config;
    let limiter = RateLimiter::new(
        config.rate_per_sec,
        config.rate_burst,
        config.abuse_limit,
        config.abuse_window,
        Instant::now(),
    );
    *opened = Some(Opened {
        session: Session::new(
            conn,
            joined.membership,
            (link, outbox),
            capability,
            (links, generation),
            limiter,
        ),
        room,
        member: me.id,
    });
}
