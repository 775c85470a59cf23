//! Many client sockets from one process: the open-file limit, loopback source addresses, and
//! WebSocket connections with small buffers.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The open-file limit the benchmark asks for. Idle connections need one descriptor each in
/// the generator and one in the server (children inherit the limit).
const WANTED_OPEN_FILES: u64 = 262_144;

/// Raises the open-file limit as far as allowed; returns the soft limit now in force.
/// Raising the hard limit needs privileges; without them the soft limit goes up to the hard one.
pub fn raise_open_file_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= WANTED_OPEN_FILES {
        return soft;
    }
    if setrlimit(
        Resource::RLIMIT_NOFILE,
        WANTED_OPEN_FILES,
        WANTED_OPEN_FILES.max(hard),
    )
    .is_ok()
    {
        return WANTED_OPEN_FILES;
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s)
}

/// How many loopback source addresses the clients are spread over. Each one has its own
/// ephemeral port range (about 28,000 ports), so 16 of them allow over 400,000 connections
/// to one server port.
const SOURCE_ADDRESSES: usize = 16;

/// Hands out loopback source addresses round-robin.
#[derive(Debug, Default)]
pub struct SourceAddrs {
    next: AtomicUsize,
}

impl SourceAddrs {
    /// The next source address: 127.0.0.2 to 127.0.0.17 (all of 127.0.0.0/8 is loopback).
    pub fn next(&self) -> Ipv4Addr {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % SOURCE_ADDRESSES;
        Ipv4Addr::new(127, 0, 0, 2 + i as u8)
    }
}

/// Opens a TCP connection to `to` from `from` (port chosen by the kernel).
pub async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> anyhow::Result<TcpStream> {
    connect_with_buffer(from, to, None).await
}

/// [`connect_from`], with the receive buffer set to `recv_buffer` bytes if given (a client
/// that reads nothing then takes almost nothing off the server).
async fn connect_with_buffer(
    from: Ipv4Addr,
    to: SocketAddr,
    recv_buffer: Option<u32>,
) -> anyhow::Result<TcpStream> {
    anyhow::ensure!(
        to.ip().is_loopback(),
        "benchmark targets must be loopback addresses"
    );
    let socket = TcpSocket::new_v4()?;
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    let stream = socket
        .connect(to)
        .await
        .with_context(|| format!("connect {from} -> {to}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A client WebSocket over a TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// WebSocket settings for benchmark clients: small eagerly allocated read buffers, so tens of
/// thousands of idle clients fit in the generator, and no write buffering, so each message
/// leaves when it is sent (the latency being measured starts at the send).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(512 << 20))
        .max_frame_size(Some(512 << 20))
}

/// Opens a WebSocket to `ws://{to}{path}` from the given source address.
pub async fn ws_connect(from: Ipv4Addr, to: SocketAddr, path: &str) -> anyhow::Result<Ws> {
    ws_connect_with(from, to, path, ws_config()).await
}

/// [`ws_connect`] with read buffers sized for multi-megabyte frames, as a browser reads a
/// large Welcome: with the small default it is the generator's thousands of small reads that
/// would be measured, not the server.
pub async fn ws_connect_bulk(from: Ipv4Addr, to: SocketAddr, path: &str) -> anyhow::Result<Ws> {
    ws_connect_with(from, to, path, ws_config().read_buffer_size(256 << 10)).await
}

/// [`ws_connect`] over a socket with a receive buffer of a few kilobytes, for a client that
/// will stop reading.
pub async fn ws_connect_stalling(from: Ipv4Addr, to: SocketAddr, path: &str) -> anyhow::Result<Ws> {
    let stream = connect_with_buffer(from, to, Some(4096)).await?;
    handshake(stream, to, path, ws_config()).await
}

async fn ws_connect_with(
    from: Ipv4Addr,
    to: SocketAddr,
    path: &str,
    config: WebSocketConfig,
) -> anyhow::Result<Ws> {
    let stream = connect_from(from, to).await?;
    handshake(stream, to, path, config).await
}

async fn handshake(
    stream: TcpStream,
    to: SocketAddr,
    path: &str,
    config: WebSocketConfig,
) -> anyhow::Result<Ws> {
    let request = format!("ws://{to}{path}").into_client_request()?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .with_context(|| format!("websocket handshake with {to}{path}"))?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_cycle_within_loopback() {
        let s = SourceAddrs::default();
        let all: Vec<_> = (0..SOURCE_ADDRESSES + 1).map(|_| s.next()).collect();
        assert!(all.iter().all(|a| a.is_loopback()));
        assert_eq!(all[0], Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(all[SOURCE_ADDRESSES], all[0]);
    }
}
