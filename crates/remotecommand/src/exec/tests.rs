use super::*;

#[test]
fn options_follow_the_query_and_tty_drops_stderr() {
    let q = "command=sh&command=-c&command=exit+3&container=c&stderr=true&stdout=true";
    let o = StreamOptions::from_query(q);
    assert_eq!(
        o,
        StreamOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false
        }
    );
    assert_eq!(StreamOptions::command_from_query(q), ["sh", "-c", "exit 3"]);
    assert_eq!(StreamOptions::container_from_query(q).as_deref(), Some("c"));
    let tty = StreamOptions::from_query("stdin=1&stdout=1&stderr=1&tty=1");
    assert!(tty.tty && tty.stdin && !tty.stderr);
}

#[test]
fn resize_stream_parses_split_objects() {
    let (sizes, used, bad) = parse_sizes(br#"{"Width":80,"Height":24}{"Width":1"#);
    assert_eq!(
        sizes,
        [TerminalSize {
            width: 80,
            height: 24
        }]
    );
    assert_eq!(used, 24);
    assert!(!bad);
    let (_, _, bad) = parse_sizes(b"nope");
    assert!(bad);
}

use crate::negotiate::SpdyVersion;
use crate::spdy::frame::Frame;
use crate::test_client::{stream_data, ws_client_frame, ws_read_all, SpdyClient};
use crate::ws::frame::Opcode;

fn opts(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> StreamOptions {
    StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
    }
}

#[tokio::test]
async fn spdy_v4_session_replies_pings_feeds_stdin_resizes_and_reports_the_exit_code() {
    let (server, client) = tokio::io::duplex(1 << 20);
    let mut c = SpdyClient::new(client);
    let protocol = Protocol::Spdy {
        version: SpdyVersion::V4,
    };
    let session = tokio::spawn(exec_session(server, protocol, opts(true, true, true, true)));
    // An unexpected stream is refused; the rest are the ones a TTY session needs.
    c.open(1, &[("streamtype", "error")]).await;
    c.open(3, &[("streamtype", "bogus")]).await;
    c.open(5, &[("streamtype", "stdin")]).await;
    c.open(7, &[("streamtype", "stdout")]).await;
    c.open(9, &[("streamtype", "resize")]).await;
    let mut session = session.await.unwrap().unwrap();
    assert!(session.stderr().is_none(), "a TTY has no stderr");
    c.send(Frame::Ping { id: 1 }).await;
    c.data(5, b"abc", true).await;
    c.data(9, br#"{"Width":80,"He"#, false).await;
    c.data(9, br#"ight":24}"#, false).await;

    let mut stdin = String::new();
    session
        .stdin()
        .unwrap()
        .read_to_string(&mut stdin)
        .await
        .unwrap();
    assert_eq!(stdin, "abc");
    let size = session.resizes().unwrap().recv().await.unwrap();
    assert_eq!(
        size,
        TerminalSize {
            width: 80,
            height: 24
        }
    );
    session.stdout().unwrap().write_all(b"out").await.unwrap();
    session.finish(ExitStatus::Code(3)).await.unwrap();

    let frames = c.rest().await;
    let replies: Vec<u32> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::SynReply { stream_id, .. } => Some(*stream_id),
            _ => None,
        })
        .collect();
    assert_eq!(replies, [1, 3, 5, 7, 9]);
    assert!(frames.contains(&Frame::RstStream {
        stream_id: 3,
        status: crate::spdy::frame::RST_REFUSED_STREAM
    }));
    assert!(frames.contains(&Frame::Ping { id: 1 }));
    assert_eq!(stream_data(&frames, 7), (b"out".to_vec(), true));
    let (status, fin) = stream_data(&frames, 1);
    assert!(fin);
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    assert!(matches!(frames.last(), Some(Frame::GoAway { .. })));
    // stdout's data comes before the status that ends the session.
    let pos = |id| {
        frames
            .iter()
            .position(|f| matches!(f, Frame::Data { stream_id, .. } if *stream_id == id))
    };
    assert!(pos(7) < pos(1));
}

#[tokio::test]
async fn spdy_v3_writes_plain_text_and_nothing_on_success() {
    for (status, text) in [
        (
            ExitStatus::Code(2),
            "command terminated with non-zero exit code: exit status 2",
        ),
        (ExitStatus::Success, ""),
    ] {
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut c = SpdyClient::new(client);
        let protocol = Protocol::Spdy {
            version: SpdyVersion::V3,
        };
        let session = tokio::spawn(exec_session(
            server,
            protocol,
            opts(false, true, false, false),
        ));
        c.open(1, &[("streamtype", "stdout")]).await;
        c.open(3, &[("streamtype", "error")]).await;
        session
            .await
            .unwrap()
            .unwrap()
            .finish(status)
            .await
            .unwrap();
        let frames = c.rest().await;
        assert_eq!(stream_data(&frames, 3), (text.as_bytes().to_vec(), true));
        assert_eq!(stream_data(&frames, 1), (vec![], true));
    }
}

#[tokio::test(start_paused = true)]
async fn spdy_streams_that_never_arrive_time_out() {
    let (server, client) = tokio::io::duplex(1 << 16);
    let mut c = SpdyClient::new(client);
    let protocol = Protocol::Spdy {
        version: SpdyVersion::V5,
    };
    let session = tokio::spawn(exec_session(
        server,
        protocol,
        opts(false, true, true, false),
    ));
    c.open(1, &[("streamtype", "error")]).await;
    c.open(3, &[("streamtype", "stdout")]).await;
    let err = session.await.unwrap().err().unwrap();
    assert!(matches!(err, Error::StreamCreationTimeout), "{err}");
}

// Paused: the session waits a grace period for the close reply this client never sends.
#[tokio::test(start_paused = true)]
async fn websocket_v5_session_reads_stdin_until_close_and_sends_status_then_close() {
    let (server, mut client) = tokio::io::duplex(1 << 16);
    let mut session = exec_session(server, Protocol::WebSocketV5, opts(true, true, true, false))
        .await
        .unwrap();
    client
        .write_all(&ws_client_frame(2, b"\x00hi"))
        .await
        .unwrap();
    client.write_all(&ws_client_frame(9, b"p")).await.unwrap();
    client
        .write_all(&ws_client_frame(2, &[255, 0]))
        .await
        .unwrap();
    let mut stdin = Vec::new();
    session
        .stdin()
        .unwrap()
        .read_to_end(&mut stdin)
        .await
        .unwrap();
    assert_eq!(stdin, b"hi");
    session.stderr().unwrap().write_all(b"e").await.unwrap();
    let finish = tokio::spawn(session.finish(ExitStatus::Success));
    let frames = ws_read_all(&mut client).await;
    finish.await.unwrap().unwrap();
    let kinds: Vec<(Opcode, Vec<u8>)> = frames.into_iter().map(|f| (f.opcode, f.payload)).collect();
    assert_eq!(kinds[0], (Opcode::Pong, b"p".to_vec()));
    assert_eq!(kinds[1], (Opcode::Binary, b"\x02e".to_vec()));
    assert_eq!(kinds[2].1[0], 3);
    let status: serde_json::Value = serde_json::from_slice(&kinds[2].1[1..]).unwrap();
    assert_eq!(status["status"], "Success");
    assert_eq!(kinds[3], (Opcode::Close, 1000u16.to_be_bytes().to_vec()));
    assert_eq!(kinds.len(), 4);
}

#[tokio::test]
async fn no_streams_is_refused() {
    let (server, _client) = tokio::io::duplex(64);
    let err = exec_session(
        server,
        Protocol::WebSocketV5,
        opts(false, false, false, false),
    )
    .await;
    assert!(matches!(err, Err(Error::NoStreams)));
}

#[tokio::test]
async fn dropping_an_unfinished_session_closes_the_connection() {
    // websocket: a close frame, then EOF.
    let (server, mut client) = tokio::io::duplex(1 << 16);
    let mut session = exec_session(server, Protocol::WebSocketV4, opts(true, true, false, true))
        .await
        .unwrap();
    let resize = [&[4u8][..], br#"{"Width":100,"Height":30}"#].concat();
    client
        .write_all(&ws_client_frame(2, &resize))
        .await
        .unwrap();
    let size = session.resizes().unwrap().recv().await.unwrap();
    assert_eq!(
        size,
        TerminalSize {
            width: 100,
            height: 30
        }
    );
    let stdout = session.stdout().unwrap();
    drop(session);
    let frames = ws_read_all(&mut client).await;
    assert_eq!(frames.last().map(|f| f.opcode), Some(Opcode::Close));
    drop(stdout);

    // SPDY: GOAWAY, then EOF; the streams handed out stop working.
    let (server, client) = tokio::io::duplex(1 << 16);
    let mut c = SpdyClient::new(client);
    let protocol = Protocol::Spdy {
        version: SpdyVersion::V5,
    };
    let session = tokio::spawn(exec_session(
        server,
        protocol,
        opts(false, true, false, false),
    ));
    c.open(1, &[("streamtype", "error")]).await;
    c.open(3, &[("streamtype", "stdout")]).await;
    let mut session = session.await.unwrap().unwrap();
    let mut stdout = session.stdout().unwrap();
    drop(session);
    let frames = c.rest().await;
    assert!(
        matches!(frames.last(), Some(Frame::GoAway { .. })),
        "{frames:?}"
    );
    let mut failed = false;
    for _ in 0..100 {
        if stdout.write_all(&[0; 4096]).await.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "writes to a closed session's stdout fail");
}
