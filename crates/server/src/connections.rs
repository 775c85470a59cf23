//! Caps on open connections, in total and per peer address, enforced when a connection is
//! accepted: before its request is read, so a flood costs the node one accept and one small
//! answer per refused socket.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The open connections, counted against [`crate::Config::max_connections`] and
/// [`crate::Config::max_connections_per_ip`] (0: no cap).
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only addresses with open connections: the map shrinks back as they close.
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionSlots {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when a cap is reached.
    pub(crate) fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total != 0 && open.total >= self.max_total {
            return None;
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip != 0 && from_ip >= self.max_per_ip {
            return None;
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Some(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// One open connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A socket that holds its [`Slot`]. Hyper hands the socket itself to the WebSocket on
/// upgrade, so the slot is held for the whole session, not only the HTTP request.
#[derive(Debug)]
pub(crate) struct SlottedStream {
    pub(crate) tcp: TcpStream,
    pub(crate) _slot: Slot,
}

impl AsyncRead for SlottedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlottedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Answers a connection over a cap with `429` and closes it. The request is read (at most a
/// few KiB, for at most a second) and discarded first: closing a socket with unread bytes
/// resets it, and the client might never see the answer.
pub(crate) async fn refuse(mut tcp: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\
        Content-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(ANSWER).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained < 16 * 1024 {
            match tcp.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_total_and_per_address_and_given_back() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let slots = ConnectionSlots::new(3, 2);
        let a1 = slots.try_take(a).unwrap();
        let _a2 = slots.try_take(a).unwrap();
        assert!(slots.try_take(a).is_none(), "per-address cap");
        let _b1 = slots.try_take(b).unwrap();
        assert!(slots.try_take(b).is_none(), "total cap");
        drop(a1);
        assert!(slots.try_take(b).is_some());
        drop(slots.try_take(b));
        assert_eq!(slots.open.lock().unwrap().per_ip.len(), 2);
    }

    #[test]
    fn zero_means_no_cap_and_closed_addresses_are_forgotten() {
        let slots = ConnectionSlots::new(0, 0);
        let held: Vec<_> = (0..1000u32)
            .map(|i| slots.try_take(IpAddr::from(i.to_be_bytes())).unwrap())
            .collect();
        drop(held);
        let open = slots.open.lock().unwrap();
        assert_eq!((open.total, open.per_ip.len()), (0, 0));
    }
}
