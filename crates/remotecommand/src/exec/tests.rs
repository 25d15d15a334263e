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
