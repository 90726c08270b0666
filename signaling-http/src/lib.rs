//! The HTTP face of the signaling library, on [axum]: mount the relay, or your own signaling
//! sessions, beside your own routes, and serve them over plain HTTP or TLS.
//!
//! - [`ws`]: axum's WebSocket as a [`Transport`](signaling::transport::Transport)
//!   ([`ws::AxumWs`]), and the upgrade extractor ([`ws::WsUpgrade`]) that asks an
//!   [`Admission`](signaling_core::admission::Admission) check before upgrading.
//! - [`relay`]: [`relay::route`] mounts a [`RelayHandle`](signaling::relay::RelayHandle)
//!   at a path.
//! - [`whip`]: WHIP (RFC 9725) and WHEP endpoints ([`whip::WhipEndpoint`]) over the sans-IO
//!   [`signaling_core::whip`] engine: a router to nest, and events the application answers.
//! - [`tls`]: [`tls::load_pem`] makes a rustls configuration from PEM files, and
//!   [`tls::serve`] serves a router over HTTP/1.1, plain or TLS (with WebSocket upgrades),
//!   with bounded connections and handshakes and a graceful shutdown.
//! - [`whip`]: WHIP (RFC 9725) and WHEP endpoints over the sans-IO engine
//!   [`signaling_core::whip`], to nest in a router.
//! - `whip_client` (feature `client`): a WHIP/WHEP client for Rust publishers and players,
//!   on reqwest.
//!
//! ```no_run
//! use axum::routing::get;
//! use axum::Router;
//! use signaling::relay::{DriverConfig, RelayConfig, RelayHandle};
//! use tokio::net::TcpListener;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hello\n" }))
//!     .route("/ws", signaling_http::relay::route(relay.clone()));
//! let tls = signaling_http::tls::load_pem("cert.pem", "key.pem")?;
//! let listener = TcpListener::bind("0.0.0.0:8443").await?;
//! signaling_http::tls::serve(listener, app, Some(tls))
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
//!     .await;
//! relay.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! Browsers reach a WebSocket route with `ws://` (or `wss://` over TLS) and the seed client
//! works unchanged against [`relay::route`] in a room of two.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use signaling_core::admission::Refusal;

pub mod relay;
pub mod tls;
pub mod whip;
#[cfg(feature = "client")]
pub mod whip_client;
pub mod ws;

/// The response refusing a request: the refusal's HTTP status and its reason's wire name
/// (`bad_token`, ...) as a `text/plain` body. The reason names only the failed check, never a
/// token, so it is safe to send. A status that is not a client or server error (outside
/// 400..=599: a refusal must not look like a success, a redirect or a protocol switch) is sent
/// as `500`.
pub fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status)
        .ok()
        .filter(|status| status.is_client_error() || status.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, refusal.reason.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_answered_with_its_status_unless_it_is_no_error_status() {
        let status = |code| {
            refusal_response(&Refusal::other(code, "custom"))
                .status()
                .as_u16()
        };
        for code in [401, 403, 429, 503, 599] {
            assert_eq!(status(code), code);
        }
        for code in [0, 101, 200, 204, 302, 399, 600, 1000] {
            assert_eq!(status(code), 500, "{code}");
        }
    }
}
