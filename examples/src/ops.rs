//! What the servers' operators see: Prometheus metrics, health answers, and the small HTTP
//! answers that carry them.
//!
//! Metrics go through [`prometheus_client`] with an explicit [`Registry`] (no process-wide
//! recorder): each server builds its own [`Metrics`], so that two servers in one process (tests,
//! the load generators) never mix their figures. A server's counters usually live where its work
//! is done already (the relay's statistics, say); [`Metrics::collect`] reads them at scrape time,
//! so that serving traffic costs nothing more. Metrics updated as events happen are registered
//! on [`Metrics::registry`] the usual `prometheus_client` way.
//!
//! ```
//! use examples::ops::Metrics;
//!
//! let mut metrics = Metrics::new();
//! metrics.collect("demo", |scrape| {
//!     scrape.gauge("demo_rooms", "Rooms open now.", 3)?;
//!     scrape.counters(
//!         "demo_refusals",
//!         "Connections refused, by reason.",
//!         "reason",
//!         &[("room_full", 2), ("bad_request", 0)],
//!     )
//! });
//! let text = metrics.render();
//! assert!(text.contains("demo_rooms 3\n"));
//! assert!(text.contains("demo_refusals_total{reason=\"room_full\"} 2\n"));
//! ```
//!
//! # Health
//!
//! [`Health`] is what a server says of itself, and [`answer`] turns it into the answers of
//! `GET /healthz` (liveness: is the process worth keeping?) and `GET /readyz` (readiness: should
//! new traffic come here?), next to `GET /metrics`:
//!
//! | state | `/healthz` | `/readyz` |
//! |---|---|---|
//! | [`Health::Serving`] | 200 `ok` | 200 `ready` |
//! | [`Health::Degraded`] (a dependency is down, the server serves what it can) | 200 `degraded: ...` | 503 `not ready: ...` |
//! | [`Health::ShuttingDown`] (draining) | 503 `shutting down` | 503 `shutting down` |
//!
//! A degraded server is alive: restarting it would not bring its dependency back, and would
//! cut what it still serves.
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

/// The `Content-Type` of [`Metrics::render`]'s text: the Prometheus text format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A server's metrics: a [`prometheus_client`] registry, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry, to register metrics that are updated as events happen (a
    /// `prometheus_client` `Counter` or `Family`, say).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds metrics read at scrape time: `read` is called on every [`render`](Self::render)
    /// and writes its samples into the [`Scrape`] it is given. `name` names the source in
    /// `Debug` output only. `read` must be cheap and must not block: it runs on the task that
    /// answers the scrape.
    pub fn collect<F>(&mut self, name: &'static str, read: F)
    where
        F: Fn(&mut Scrape<'_>) -> fmt::Result + Send + Sync + 'static,
    {
        self.registry
            .register_collector(Box::new(ReadAtScrape { name, read }));
    }

    /// The metrics, in the Prometheus text format ([`METRICS_CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a `String` fails only if a collector does, which ours never do.
        if let Err(fmt::Error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!("a metrics collector failed; the scrape is incomplete");
        }
        text
    }
}

/// A source of metrics read at scrape time (see [`Metrics::collect`]).
struct ReadAtScrape<F> {
    name: &'static str,
    read: F,
}

impl<F> fmt::Debug for ReadAtScrape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadAtScrape")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> Collector for ReadAtScrape<F>
where
    F: Fn(&mut Scrape<'_>) -> fmt::Result + Send + Sync + 'static,
{
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
        (self.read)(&mut Scrape { encoder })
    }
}

/// Where a scrape-time source writes its samples (see [`Metrics::collect`]). Names follow
/// Prometheus' rules (`[a-zA-Z_:][a-zA-Z0-9_:]*`); a counter's name is given without `_total`,
/// which the text format appends.
pub struct Scrape<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl fmt::Debug for Scrape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Scrape<'_> {
    /// A counter: a total that only grows while the process runs.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let counter = ConstCounter::new(value);
        let metric = self
            .encoder
            .encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric)
    }

    /// A gauge: a value that goes up and down (values above `i64::MAX` are written as that).
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        let metric = self
            .encoder
            .encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }

    /// A family of counters told apart by one label: `values` holds each label value and its
    /// count. Give every label value the server can count, zeros included, so that rates and
    /// alerts see a series from the start.
    pub fn counters(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) -> fmt::Result {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for &(value, count) in values {
            let labels = [(label, value)];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(count).encode(metric)?;
        }
        Ok(())
    }
}

/// What a server says of its own health (see the [module docs](self#health)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Serving, with everything it depends on.
    Serving,
    /// Serving what it can while a dependency is down; the text says which, in a few words
    /// (`"NATS connection down"`).
    Degraded(&'static str),
    /// Shutting down: its connections are being drained, and it takes no new ones.
    ShuttingDown,
}

/// A plain HTTP answer: status line, `Content-Type` and body (see [`answer_http`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status, as on the status line (`"200 OK"`).
    pub status: &'static str,
    /// The body's `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Cow<'static, str>,
}

impl Answer {
    /// A `text/plain` answer.
    pub fn text(status: &'static str, body: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

const OK: &str = "200 OK";
const UNAVAILABLE: &str = "503 Service Unavailable";

/// The answer to an operator's request, or `None` when `path` is not one of theirs:
/// `GET /healthz` (liveness) and `GET /readyz` (readiness) from `health`, `GET /metrics` from
/// `metrics` (rendered on each request). Other methods on these paths get `None` too (the
/// server answers them as it answers any unknown request).
pub fn answer(method: &str, path: &str, health: Health, metrics: &Metrics) -> Option<Answer> {
    if method != "GET" {
        return None;
    }
    Some(match (path, health) {
        ("/healthz", Health::Serving) => Answer::text(OK, "ok\n"),
        ("/healthz", Health::Degraded(why)) => Answer::text(OK, format!("degraded: {why}\n")),
        ("/readyz", Health::Serving) => Answer::text(OK, "ready\n"),
        ("/readyz", Health::Degraded(why)) => {
            Answer::text(UNAVAILABLE, format!("not ready: {why}\n"))
        }
        ("/healthz" | "/readyz", Health::ShuttingDown) => {
            Answer::text(UNAVAILABLE, "shutting down\n")
        }
        ("/metrics", _) => Answer {
            status: OK,
            content_type: METRICS_CONTENT_TYPE,
            body: metrics.render().into(),
        },
        _ => return None,
    })
}

/// Writes `answer` as an HTTP/1.1 response (with `Content-Length`, `Cache-Control: no-store`
/// and `Connection: close`) to a stream whose request head has been read, and shuts the stream's
/// write side; gives up at `deadline` (the handshake's,
/// [`RequestHead::deadline`](signaling_ws::RequestHead::deadline)).
pub async fn answer_http<S>(mut stream: S, deadline: Instant, answer: &Answer) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    // One write: the response leaves in as few segments (or TLS records) as it fits in.
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.content_type,
        answer.body.len(),
        answer.body
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout_at(deadline, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "answering a plain request"))?
}

/// `SIGTERM` and `SIGINT`, the signals that shut a server down gracefully. Install them before
/// the server listens, so that a signal arriving once clients can connect always finds them.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers (they replace the default action, ending the process).
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next signal; its name (`SIGTERM` or `SIGINT`).
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Parses a command-line number of seconds that must be positive (a drain time, say).
pub fn positive_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err("must be a number of seconds greater than 0".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(path: &str, health: Health) -> Option<&'static str> {
        answer("GET", path, health, &Metrics::new()).map(|a| a.status)
    }

    #[test]
    fn liveness_and_readiness_follow_the_table() {
        let degraded = Health::Degraded("NATS connection down");
        assert_eq!(status("/healthz", Health::Serving), Some(OK));
        assert_eq!(status("/readyz", Health::Serving), Some(OK));
        assert_eq!(status("/healthz", degraded), Some(OK));
        assert_eq!(status("/readyz", degraded), Some(UNAVAILABLE));
        assert_eq!(status("/healthz", Health::ShuttingDown), Some(UNAVAILABLE));
        assert_eq!(status("/readyz", Health::ShuttingDown), Some(UNAVAILABLE));
        assert_eq!(status("/metrics", Health::ShuttingDown), Some(OK));
        assert_eq!(status("/other", Health::Serving), None);
        let body = answer("GET", "/healthz", degraded, &Metrics::new()).map(|a| a.body);
        assert_eq!(body.as_deref(), Some("degraded: NATS connection down\n"));
        assert_eq!(
            answer("POST", "/healthz", Health::Serving, &Metrics::new()),
            None
        );
    }

    #[test]
    fn samples_are_read_at_every_scrape_in_the_text_format() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;

        let count = Arc::new(AtomicU64::new(0));
        let mut metrics = Metrics::new();
        let read = count.clone();
        metrics.collect("test", move |scrape| {
            scrape.counter("t_frames", "Frames.", read.load(Ordering::Relaxed))?;
            scrape.gauge("t_open", "Open now.", u64::MAX)
        });
        count.store(7, Ordering::Relaxed);
        let text = metrics.render();
        // The text format of Prometheus 0.0.4, as its documentation writes it.
        assert!(
            text.contains(
                "# HELP t_frames_total Frames.\n# TYPE t_frames_total counter\nt_frames_total 7\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE t_open gauge\nt_open 9223372036854775807\n"),
            "{text}"
        );
        count.store(9, Ordering::Relaxed);
        assert!(metrics.render().contains("t_frames_total 9\n"));
    }
}
