//! Request limits against hostile clients: slow-loris connections, header
//! floods, and oversized heads. (Form body limits are in `bad_input`, the
//! per-user export cap in `export`.)

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Sends a raw request head and returns the status line's code, or `None`
/// when the server closed the connection without answering.
async fn raw_status(port: u16, head: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(head).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_slow_loris_connections_do_not_starve_a_normal_client_and_are_cut_off() {
    const SLOW_CLIENTS: usize = 200;
    let app = spawn_app(&Backend::Sqlite).await;
    let port = app.port;
    // Each slow client sends the start of a request head, then one more
    // header byte every second, never finishing it.
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut slow = Vec::new();
    for i in 0..SLOW_CLIENTS {
        let closed_tx = closed_tx.clone();
        slow.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                return;
            };
            let head = format!("GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: ");
            if stream.write_all(head.as_bytes()).await.is_err() {
                let _ = closed_tx.send(started.elapsed());
                return;
            }
            // Up to 60 s of dribbling; the server must hang up long before.
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if stream.write_all(b"a").await.is_err() {
                    break;
                }
                // A read that returns at once means the server answered
                // (408) or closed.
                let mut probe = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
                {
                    Ok(Ok(_)) | Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
            let _ = closed_tx.send(started.elapsed());
        }));
    }
    drop(closed_tx);
    // Let the slow clients connect and start dribbling.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A normal client is served while they hold their connections.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for path in ["/healthz", "/login"] {
        let res = client
            .get(app.url(path))
            .send()
            .await
            .expect("normal request answered");
        assert_eq!(res.status(), 200, "{path}");
    }
    let res = client
        .get(app.url("/api/v1/customers/"))
        .send()
        .await
        .expect("normal API request answered");
    assert_eq!(res.status(), 401);
    // Every slow connection is cut off by the head timeout (10 s), well
    // before its 60 s of dribbling end.
    let mut cut_off = 0;
    while let Some(held) = closed_rx.recv().await {
        assert!(
            held < Duration::from_secs(45),
            "a slow client was held {held:?}"
        );
        cut_off += 1;
    }
    assert_eq!(cut_off, SLOW_CLIENTS);
    for task in slow {
        task.await.unwrap();
    }
    // And the server still serves.
    let res = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_header_floods_are_refused_and_the_server_keeps_serving() {
    let app = spawn_app(&Backend::Sqlite).await;
    // One 200 KiB header: over the 128 KiB head limit, 431.
    let huge = format!(
        "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let status = raw_status(app.port, huge.as_bytes()).await;
    assert!(matches!(status, None | Some(431)), "{status:?}");
    // 500 header lines: over the 96-header limit, a 4xx or a hang-up.
    let mut flood = String::from("GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..500 {
        flood.push_str(&format!("X-H{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    let status = raw_status(app.port, flood.as_bytes()).await;
    assert!(status.is_none_or(|s| (400..500).contains(&s)), "{status:?}");
    // A very long request line (a 100 KiB query): refused as a 4xx, never
    // a 500.
    let long_line = format!(
        "GET /customers?search={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "b".repeat(100 * 1024)
    );
    let status = raw_status(app.port, long_line.as_bytes()).await;
    assert!(status.is_none_or(|s| (300..500).contains(&s)), "{status:?}");
    // Garbage instead of HTTP.
    let status = raw_status(app.port, b"\x00\x01\x02 NOT HTTP\r\n\r\n").await;
    assert!(status.is_none_or(|s| (400..500).contains(&s)), "{status:?}");
    // A normal request still works.
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
}
