//! `AxumWs` against the `Transport` contract, with a script run on the server side of each
//! connection and a client of another WebSocket implementation on the other.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use signaling::transport::{CloseCode, CloseReason, Frame, Transport, TrySendError};
use signaling_core::admission::AllowAll;
use signaling_http::ws::{AxumWs, AxumWsConfig, WsUpgrade, MAX_CLOSE_REASON_BYTES};
use signaling_ws::{WsClient, WsConfig};
use support::{next_frame, recv, App, OFFER, WAIT};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Script = Arc<dyn Fn(AxumWs) -> BoxFuture<'static, String> + Send + Sync>;

/// An app whose `/t` route runs `script` on each connection (with `config`) and reports what
/// it returns.
async fn scripted(config: AxumWsConfig, script: Script) -> (App, mpsc::Receiver<String>) {
    let (report, reports) = mpsc::channel(8);
    let app = App::start(None, move |router, _| {
        router.route(
            "/t",
            get(move |upgrade: WsUpgrade| {
                let (config, script, report) = (config.clone(), script.clone(), report.clone());
                async move {
                    upgrade.accept(&config, &AllowAll, move |conn| async move {
                        let _ = report.send(script(conn).await).await;
                    })
                }
            }),
        )
    })
    .await;
    (app, reports)
}

async fn report(reports: &mut mpsc::Receiver<String>) -> String {
    tokio::time::timeout(WAIT, reports.recv())
        .await
        .expect("no hang")
        .expect("a report")
}

/// Reads to the end and says how it ended.
async fn read_to_end(mut conn: AxumWs) -> String {
    loop {
        match conn.recv().await {
            Ok(Some(frame)) => {
                if conn.send(frame).await.is_err() {
                    return "send failed".to_owned();
                }
            }
            Ok(None) => return "end".to_owned(),
            Err(error) => return error.to_string(),
        }
    }
}

#[tokio::test]
async fn a_peer_that_answers_no_ping_is_declared_dead_and_one_that_reads_is_not() {
    let config = AxumWsConfig::default()
        .with_ping_interval(Some(Duration::from_millis(100)))
        .with_pong_timeout(Duration::from_secs(2));
    let (app, mut reports) = scripted(config, Arc::new(|conn| read_to_end(conn).boxed())).await;
    let url = format!("ws://{}/t", app.addr);

    // Never reads, so never answers a ping.
    let (_deaf, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(
        report(&mut reports).await,
        "timed out: peer did not answer a ping in time"
    );

    // Keeps a `recv` pending, which answers pings, through several ping intervals.
    let mut live = WsClient::connect(&url, WsConfig::default()).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(1000), live.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    live.send(OFFER.into()).await.unwrap();
    assert_eq!(next_frame(&mut live).await, OFFER);
}

#[tokio::test]
async fn a_full_send_queue_hands_the_frame_back() {
    let config = AxumWsConfig::default()
        .with_send_queue(4)
        .with_ping_interval(None);
    let script: Script = Arc::new(|mut conn| {
        async move {
            let frame = Frame::from("x".repeat(60 * 1024));
            // The peer does not read: the socket's buffers fill, then the queue.
            for sent in 0..100_000usize {
                match conn.try_send(frame.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(back)) => {
                        return format!(
                            "full after {sent} frames; the same frame handed back: {}",
                            back == frame
                        );
                    }
                    Err(error) => return error.to_string(),
                }
                tokio::task::yield_now().await;
            }
            "never full".to_owned()
        }
        .boxed()
    });
    let (app, mut reports) = scripted(config, script).await;
    let (_reads_nothing, _) = tokio_tungstenite::connect_async(format!("ws://{}/t", app.addr))
        .await
        .unwrap();
    let report = report(&mut reports).await;
    let (sent, handed_back) = report
        .strip_prefix("full after ")
        .and_then(|rest| rest.split_once(" frames; the same frame handed back: "))
        .expect(&report);
    // The queue's 4 frames, and what the socket took, went first.
    assert!(sent.parse::<usize>().unwrap() >= 4, "{report}");
    assert_eq!(handed_back, "true");
}

#[tokio::test]
async fn close_writes_the_queued_frames_then_the_close_frame_with_its_reason_cut() {
    let script: Script = Arc::new(|mut conn| {
        async move {
            for n in 0..10 {
                if conn.try_send(Frame::from(format!("frame {n}"))).is_err() {
                    return "queue full".to_owned();
                }
            }
            // 100 two-byte characters: 200 bytes, more than a close frame carries.
            let reason = CloseReason::new(CloseCode(4000), "é".repeat(100));
            match conn.close(reason).await {
                Ok(()) => "closed".to_owned(),
                Err(error) => error.to_string(),
            }
        }
        .boxed()
    });
    let (app, mut reports) = scripted(AxumWsConfig::default(), script).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/t", app.addr))
        .await
        .unwrap();
    for n in 0..10 {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(message.to_text().unwrap(), format!("frame {n}"));
    }
    match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4000);
            // RFC 6455 §5.5: at most 125 bytes of payload, 2 of them the code; cut at a
            // character boundary.
            assert_eq!(frame.reason.as_str(), "é".repeat(61));
            assert!(frame.reason.len() <= MAX_CLOSE_REASON_BYTES);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report(&mut reports).await, "closed");
}

#[tokio::test]
async fn frames_arrive_in_order_and_the_end_follows_the_last() {
    let (app, mut reports) = scripted(
        AxumWsConfig::default().with_recv_queue(2),
        Arc::new(|conn| read_to_end(conn).boxed()),
    )
    .await;
    let url = format!("ws://{}/t", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // More frames than the receive queue holds, sent without waiting.
    for n in 0..200 {
        ws.feed(Message::text(format!("{n}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for n in 0..200 {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(message.to_text().unwrap(), format!("{n}"));
    }
    ws.close(None).await.unwrap();
    assert_eq!(report(&mut reports).await, "end");

    // The same through signaling-ws's client: an echo, then a clean close.
    let mut conn = WsClient::connect(&url, WsConfig::default()).await.unwrap();
    conn.send(OFFER.into()).await.unwrap();
    assert_eq!(next_frame(&mut conn).await, OFFER);
    conn.close(CloseReason::normal()).await.unwrap();
    assert!(recv(&mut conn).await.unwrap().is_none());
    assert_eq!(report(&mut reports).await, "end");
}
