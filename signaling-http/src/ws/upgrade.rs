//! [`WsUpgrade`]: an upgrade request with its [`PeerInfo`], admitted before it is upgraded.
use std::future::Future;
use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::Response;
use signaling::transport::PeerInfo;
use signaling_core::admission::Admission;

use super::config::AxumWsConfig;
use super::connection::AxumWs;

/// What a request tells of its remote end, as relay admission and join requests read it:
///
/// - `remote_addr`: from [`ConnectInfo<SocketAddr>`](ConnectInfo), when the server provides
///   it ([`tls::serve`](crate::tls::serve) does; with `axum::serve`, serve
///   `router.into_make_service_with_connect_info::<SocketAddr>()`);
/// - `path` and `query`: from the request's URI as the client sent it, also inside a nested
///   router ([`OriginalUri`]);
/// - `headers`: every header, names lower-cased, values as text (bytes that are not UTF-8
///   replaced), in the order received.
///
/// The transport kind is `"ws"`: the same wire protocol as the `signaling-ws` server's.
pub fn peer_info(parts: &Parts) -> PeerInfo {
    let mut peer = PeerInfo::new("ws");
    peer.remote_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    peer.path = uri.path().to_owned();
    peer.query = uri.query().map(str::to_owned);
    peer.headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(), // `http` keeps names lower-cased
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    peer
}

/// A WebSocket upgrade request and its [`PeerInfo`]: an axum extractor.
///
/// Extracting it checks that the request is a valid upgrade (axum's
/// [`WebSocketUpgrade`] rejection answers one that is not: `405` for a method other than `GET`,
/// `400` for a missing or wrong header, `426` for a connection that cannot be upgraded).
/// [`accept`](Self::accept) then asks an [`Admission`] check and answers a refusal with its
/// HTTP status, before anything is upgraded:
///
/// ```
/// use axum::response::Response;
/// use axum::routing::get;
/// use axum::Router;
/// use signaling::transport::Transport;
/// use signaling_core::admission::TokenCheck;
/// use signaling_http::ws::{AxumWsConfig, WsUpgrade};
///
/// async fn echo(upgrade: WsUpgrade) -> Response {
///     let tokens = TokenCheck::new(["s3cret"]).expect("a token").query("token");
///     upgrade.accept(&AxumWsConfig::default(), &tokens, |mut conn| async move {
///         while let Ok(Some(frame)) = conn.recv().await {
///             if conn.send(frame).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
///
/// let app: Router = Router::new().route("/echo", get(echo));
/// # let _ = app;
/// ```
#[derive(Debug)]
pub struct WsUpgrade {
    upgrade: WebSocketUpgrade,
    peer: PeerInfo,
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = peer_info(parts);
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state).await?;
        Ok(Self { upgrade, peer })
    }
}

impl WsUpgrade {
    /// What is known of the remote end (see [`peer_info`]).
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Asks `admission`; a refusal is answered with its HTTP status and reason
    /// ([`refusal_response`](crate::refusal_response)) and nothing is upgraded. An admitted
    /// request is upgraded with `config`'s sizes, and `serve` runs with the connection, on a
    /// task of its own, once the client has switched protocols.
    pub fn accept<F, Fut>(
        self,
        config: &AxumWsConfig,
        admission: &dyn Admission,
        serve: F,
    ) -> Response
    where
        F: FnOnce(AxumWs) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Err(refusal) = admission.admit(&self.peer) {
            tracing::debug!(remote = ?self.peer.remote_addr, %refusal, "upgrade refused");
            return crate::refusal_response(&refusal);
        }
        let upgrade = config.apply(self.upgrade);
        let config = config.clone();
        let peer = self.peer;
        upgrade
            .on_failed_upgrade(|error| tracing::debug!(%error, "upgrade failed"))
            .on_upgrade(move |socket| serve(AxumWs::new(socket, peer, &config)))
    }

    /// The parts: axum's upgrade (to choose a subprotocol, say; set the sizes with
    /// [`AxumWsConfig::apply`] and wrap the socket with [`AxumWs::new`]) and the peer.
    pub fn into_parts(self) -> (WebSocketUpgrade, PeerInfo) {
        (self.upgrade, self.peer)
    }
}
