//! The client side: [`WsClient`].

use signaling::transport::PeerInfo;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::MaybeTlsStream;

use crate::config::WsConfig;
use crate::connection::WsConnection;
use crate::error::ConnectError;

/// Opens client connections: `ws://` always, `wss://` with the `rustls` feature.
///
/// ```no_run
/// # async fn demo() -> Result<(), signaling_ws::ConnectError> {
/// use signaling_ws::{WsClient, WsConfig};
///
/// // The short form:
/// let plain = WsClient::connect("ws://127.0.0.1:8080/api/ws", WsConfig::default()).await?;
/// // With a token in the query string (percent-encoded) and an extra header:
/// let authed = WsClient::new("ws://127.0.0.1:8080/api/ws")
///     .query_param("token", "s3cr3t/+=")
///     .header("x-client", "demo")
///     .open()
///     .await?;
/// # let _ = (plain, authed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct WsClient {
    url: String,
    config: WsConfig,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl WsClient {
    /// A client for this URL with the default configuration.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            config: WsConfig::default(),
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    /// Connects to `url` with `config`: the same as `WsClient::new(url).config(config).open()`.
    pub async fn connect(url: &str, config: WsConfig) -> Result<WsConnection, ConnectError> {
        Self::new(url).config(config).open().await
    }

    /// Uses this configuration.
    pub fn config(mut self, config: WsConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a request header (for clients other than browsers, which cannot set any).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends a query parameter; name and value are percent-encoded.
    pub fn query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The URL that will be requested: the query parameters appended, any `#fragment` removed
    /// (fragments are never sent to a server).
    pub fn url(&self) -> String {
        let mut url = match self.url.find('#') {
            Some(at) => self.url[..at].to_owned(),
            None => self.url.clone(),
        };
        for (name, value) in &self.query {
            if !url.contains('?') {
                url.push('?');
            } else if !url.ends_with('?') && !url.ends_with('&') {
                url.push('&');
            }
            percent_encode(&mut url, name);
            url.push('=');
            percent_encode(&mut url, value);
        }
        url
    }

    /// Connects, bounded by [`WsConfig::connect_timeout`] (TCP connect, TLS and handshake).
    pub async fn open(self) -> Result<WsConnection, ConnectError> {
        let url = self.url();
        if cfg!(not(feature = "rustls"))
            && url
                .get(..6)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"))
        {
            return Err(ConnectError::InvalidUrl(Box::new(tungstenite::Error::Url(
                UrlError::TlsFeatureNotEnabled,
            ))));
        }
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|error| ConnectError::InvalidUrl(Box::new(error)))?;
        for (name, value) in &self.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConnectError::InvalidHeader { name: name.clone() })?;
            let header_value = HeaderValue::from_str(value)
                .map_err(|_| ConnectError::InvalidHeader { name: name.clone() })?;
            request.headers_mut().append(header_name, header_value);
        }
        let mut peer = PeerInfo::new("ws");
        peer.path = request.uri().path().to_owned();
        peer.query = request.uri().query().map(str::to_owned);

        let connect = tokio_tungstenite::connect_async_with_config(
            request,
            Some(self.config.tungstenite()),
            true,
        );
        let (ws, response) = match tokio::time::timeout(self.config.connect_timeout, connect).await
        {
            Err(_) => return Err(ConnectError::TimedOut),
            Ok(Err(error)) => return Err(ConnectError::from_ws(error)),
            Ok(Ok(connected)) => connected,
        };
        peer.remote_addr = match ws.get_ref() {
            MaybeTlsStream::Plain(stream) => stream.peer_addr().ok(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(stream) => stream.get_ref().0.peer_addr().ok(),
            _ => None,
        };
        peer.headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(WsConnection::new(Box::new(ws), peer, &self.config))
    }
}

/// What a query component keeps as is: RFC 3986's unreserved characters.
const QUERY_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(out: &mut String, text: &str) {
    out.extend(percent_encoding::utf8_percent_encode(text, QUERY_COMPONENT));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_appended_and_encoded() {
        let client = WsClient::new("ws://h/p")
            .query_param("token", "a b/+=")
            .query_param("room", "r1");
        assert_eq!(client.url(), "ws://h/p?token=a%20b%2F%2B%3D&room=r1");
        let client = WsClient::new("ws://h/p?x=1").query_param("t", "é");
        assert_eq!(client.url(), "ws://h/p?x=1&t=%C3%A9");
        let client = WsClient::new("ws://h/p?").query_param("t", "1");
        assert_eq!(client.url(), "ws://h/p?t=1");
        let client = WsClient::new("ws://h/p#frag").query_param("t", "1");
        assert_eq!(client.url(), "ws://h/p?t=1");
    }
}
