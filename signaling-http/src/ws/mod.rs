//! WebSocket connections served by axum, as [`Transport`](signaling::transport::Transport)s.
//!
//! - [`WsUpgrade`]: the extractor for an upgrade request; [`WsUpgrade::accept`] admits it
//!   with an [`Admission`](signaling_core::admission::Admission) check (refused: the refusal's
//!   HTTP status, nothing upgraded) and hands the connection to your code.
//! - [`AxumWs`]: the connection, wrapping axum's [`WebSocket`](axum::extract::ws::WebSocket);
//!   text frames only, bounded queues, keepalive pings, close codes mapped to
//!   [`CloseReason`](signaling::transport::CloseReason)s.
//! - [`AxumWsConfig`]: its sizes, queues and timeouts.
//! - [`peer_info`]: the [`PeerInfo`](signaling::transport::PeerInfo) of a request.
//!
//! To serve the relay, mount [`relay::route`](crate::relay::route). To be the answering peer
//! of a browser, run a [session](signaling::session) over the connection:
//!
//! ```
//! use axum::response::Response;
//! use axum::routing::get;
//! use axum::Router;
//! use signaling::session::{self, SessionConfig, SessionEvent};
//! use signaling_core::admission::AllowAll;
//! use signaling_core::negotiation::{Config, Event};
//! use signaling_http::ws::{AxumWsConfig, WsUpgrade};
//!
//! async fn camera(upgrade: WsUpgrade) -> Response {
//!     upgrade.accept(&AxumWsConfig::default(), &AllowAll, |conn| async move {
//!         let mut session = session::spawn(conn, Config::default(), SessionConfig::default());
//!         while let Some(event) = session.next_event().await {
//!             match event {
//!                 SessionEvent::Negotiation(Event::ApplyRemoteDescription(offer)) => {
//!                     // Hand `offer.sdp` to your WebRTC stack, then answer with
//!                     // `session.set_local_description(SdpKind::Answer, sdp)`.
//!                     let _ = offer;
//!                 }
//!                 SessionEvent::Closed(_) => break,
//!                 _ => {}
//!             }
//!         }
//!     })
//! }
//!
//! let app: Router = Router::new().route("/api/ws", get(camera));
//! # let _ = app;
//! ```
mod config;
mod connection;
mod upgrade;

pub use config::AxumWsConfig;
pub use connection::{AxumWs, MAX_CLOSE_REASON_BYTES};
pub use upgrade::{peer_info, WsUpgrade};
