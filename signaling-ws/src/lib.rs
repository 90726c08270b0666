//! WebSocket transport for [`signaling_core`], over tokio-tungstenite: a server ([`WsServer`],
//! or [`accept_stream`] inside a server you already run, or [`read_request_head`] and
//! [`accept_request`] to route requests before upgrading them) that admits requests with an
//! [`Admission`](signaling_core::admission::Admission) check before the upgrade (token, origin,
//! your own), and a client ([`WsClient`]). Both sides yield a [`WsConnection`],
//! which implements [`Transport`](signaling::transport::Transport).
//!
//! Frames are UTF-8 text; binary frames are refused (close 1003). Sizes, queues, keepalive and
//! timeouts are set in [`WsConfig`]; every queue is bounded.
//!
//! On the server side, the request head is read here, within the handshake's deadline and
//! bounded in bytes and header lines (see [`WsConfig`]), and answered with an HTTP status when
//! it cannot be upgraded (`431`, `400`, `426`, or the admission check's refusal); the upgrade
//! response is tungstenite's. The WebSocket protocol is tungstenite's. On the server side, a plain
//! [`TcpStream`](tokio::net::TcpStream) (what [`WsServer`] accepts, and what [`accept_stream`]
//! is usually given) is driven by its readiness directly: tungstenite reads and writes with
//! `try_read`/`try_write`, and the task registers for readiness only when the socket would
//! block, where tokio-tungstenite's general adapter registers it before every frame. Any other
//! stream (TLS, an in-process pipe) goes through that adapter; the behaviour is the same.
//!
//! A connection has no task of its own: it does its IO inside its methods, so keep a
//! [`recv`](signaling::transport::Transport::recv) pending on every connection (as the
//! example below and the session and relay drivers do); keepalive pings and timeouts run inside
//! it. See [`WsConnection`] for the details.
//!
//! ```no_run
//! use signaling::transport::{CloseReason, Transport};
//! use signaling_core::admission::Refusal;
//! use signaling_core::transport::PeerInfo;
//! use signaling_ws::{WsClient, WsConfig, WsServer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let admission = |peer: &PeerInfo| match peer.query_param("token") {
//!     Some("t0ken") => Ok(()),
//!     _ => Err(Refusal::BAD_TOKEN),
//! };
//! let mut server = WsServer::bind_with_admission("127.0.0.1:0", WsConfig::default(), admission).await?;
//! let url = format!("ws://{}/api/ws", server.local_addr());
//! tokio::spawn(async move {
//!     while let Some(mut conn) = server.accept().await {
//!         tokio::spawn(async move {
//!             while let Ok(Some(frame)) = conn.recv().await {
//!                 if conn.send(frame).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! let mut client = WsClient::new(url).query_param("token", "t0ken").open().await?;
//! client.send(r#"{"type":"webrtc/offer","value":"v=0\r\n"}"#.into()).await?;
//! let echoed = client.recv().await?;
//! client.close(CloseReason::normal()).await?;
//! # let _ = echoed;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! - `rustls`: `wss://` client connections through rustls with the webpki root certificates.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod connection;
mod error;
mod server;
mod tcp;

pub use client::WsClient;
pub use config::WsConfig;
pub use connection::{WsConnection, MAX_CLOSE_REASON_BYTES};
pub use error::{AcceptError, ConnectError};
pub use server::{accept_request, accept_stream, read_request_head, RequestHead, WsServer};

/// The tungstenite version this crate is built on, for matching the errors boxed in
/// [`AcceptError`] and [`ConnectError`].
pub use tokio_tungstenite::tungstenite;
