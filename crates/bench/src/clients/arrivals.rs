//! What a client makes of each frame that reaches it: a stamped batch or cursor recorded as
//! arrived, an Ack or a refusal paired with the op it answers, anything unexpected as an error.

use kokuban_protocol::{ClientMsg, ErrorCode, Op, ServerMsg, Submit};

use super::{ClientReport, Schedule, Shared};
use crate::stamp::{CursorStamp, Stamp};

/// The position of a Socket.IO cursor event's JSON payload.
pub(super) fn socketio_cursor(data: &str) -> Option<CursorStamp> {
    #[derive(serde::Deserialize)]
    struct At {
        x: i32,
        y: i32,
    }
    let (_, at): (String, At) = serde_json::from_str(data).ok()?;
    CursorStamp::from_xy(at.x, at.y)
}

pub(super) fn on_kokuban(
    msg: ServerMsg,
    report: &mut ClientReport,
    shared: &Shared,
    schedule: Option<Schedule>,
    node: usize,
    epoch: Option<u64>,
) {
    match msg {
        ServerMsg::Op(s) => {
            if Some(s.epoch.0) != epoch {
                report.error("epoch changed");
            }
            report.seq.observe(s.seq.0);
            if let Op::StrokePoints(batch) = &s.op {
                match Stamp::read_points(batch.points.as_slice()) {
                    Some(stamp) => report.arrive(shared, schedule, node, stamp),
                    None => report.error("batch without stamp"),
                }
            }
        }
        ServerMsg::Points(live) => {
            report.seq.observe_low(live.check);
            match Stamp::read_offsets(&live.points) {
                Some(stamp) => report.arrive(shared, schedule, node, stamp),
                None => report.error("batch without stamp"),
            }
        }
        ServerMsg::Acked(check) => {
            report.awaiting.pop_front();
            report.seq.observe_low(check);
        }
        ServerMsg::Ack(a) => {
            report.awaiting.pop_front();
            if Some(a.epoch.0) != epoch {
                report.error("epoch changed");
            }
            report.seq.observe(a.seq.0);
        }
        ServerMsg::Error(e) => {
            // These codes answer an op (the oldest one unanswered), which was not applied.
            if matches!(
                e.code,
                ErrorCode::TemporarilyReadOnly
                    | ErrorCode::InvalidOp
                    | ErrorCode::BoardFull
                    | ErrorCode::Decided
            ) && let Some(Some(batch)) = report.awaiting.pop_front()
            {
                report.refused.push(batch);
            }
            report.error(format!("error frame: {:?} {}", e.code, e.message));
        }
        ServerMsg::Welcome(_) | ServerMsg::BoardPart(_) => report.error("second Welcome"),
        ServerMsg::Cursor(c) => {
            if let Some(at) = c.at {
                match CursorStamp::from_xy(at.x(), at.y()) {
                    Some(stamp) => report.cursor_arrive(shared, schedule, stamp),
                    None => report.error("cursor without stamp"),
                }
            }
        }
        // The load generator points no laser and follows nobody.
        ServerMsg::Presence(_)
        | ServerMsg::Laser(_)
        | ServerMsg::Camera(_)
        | ServerMsg::AskToFollow(_) => {}
    }
}

/// What the floor relays is another client's frame, exactly as it was sent.
pub(super) fn on_floor(
    msg: ClientMsg,
    report: &mut ClientReport,
    shared: &Shared,
    schedule: Option<Schedule>,
    node: usize,
) {
    match msg {
        ClientMsg::Op(Submit {
            op: Op::StrokePoints(batch),
            ..
        }) => match Stamp::read_points(batch.points.as_slice()) {
            Some(stamp) => report.arrive(shared, schedule, node, stamp),
            None => report.error("batch without stamp"),
        },
        ClientMsg::Points(more) => match Stamp::read_offsets(&more.points) {
            Some(stamp) => report.arrive(shared, schedule, node, stamp),
            None => report.error("batch without stamp"),
        },
        ClientMsg::Cursor(Some(at)) => match CursorStamp::from_xy(at.x(), at.y()) {
            Some(stamp) => report.cursor_arrive(shared, schedule, stamp),
            None => report.error("cursor without stamp"),
        },
        _ => {}
    }
}
