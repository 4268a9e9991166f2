//! End-to-end behaviour of the signaling server, as a client observes it: every test starts its
//! own server in-process on an ephemeral port and talks to it over real sockets.

#![allow(clippy::unwrap_used)]

mod support;

#[path = "server/acme.rs"]
mod acme;
#[path = "server/attacks.rs"]
mod attacks;
#[path = "server/deploy.rs"]
mod deploy;
#[path = "server/https.rs"]
mod https;
#[path = "server/metrics.rs"]
mod metrics;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use natter_proto::limits::{
    FLOOD_TOLERANCE, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_MESSAGE_BYTES, MESSAGE_BURST,
};
use natter_server::Config;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use support::{
    ANN, BOB, CAT, Client, DAN, Event, OTHER_ROOM, ROOM, Server, assert_error, http_get, pair,
};

/// Long enough for a message that is not coming to have arrived on loopback.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Handshake

#[tokio::test]
async fn hello_is_answered_with_protocol_version_1() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.send(json!({"type": "hello", "version": 1})).await;
    let reply = client.recv().await;
    assert_eq!(reply["type"], "hello");
    assert_eq!(reply["version"], 1);
    let software = reply["server"].as_str().unwrap();
    assert!(software.starts_with("natter/"), "{reply}");
}

#[tokio::test]
async fn an_unsupported_version_gets_unsupported_version_and_close_4002() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.send(json!({"type": "hello", "version": 2})).await;
    client.expect_error("unsupported-version").await;
    client.expect_close(4002).await;
}

#[tokio::test]
async fn join_before_hello_gets_hello_required_and_the_socket_stays_usable() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client
        .send(json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann"}))
        .await;
    client.expect_error("hello-required").await;
    // Nothing was joined: after hello the same join goes through.
    let welcome = client.enter(ROOM, ANN, "Ann").await;
    assert_eq!(welcome["peers"], json!([]));
}

#[tokio::test]
async fn rename_signal_and_leave_before_join_get_not_joined() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    client.send(json!({"type": "rename", "name": "Ann"})).await;
    client.expect_error("not-joined").await;
    client.signal(BOB, json!({"conn": "x"})).await;
    client.expect_error("not-joined").await;
    client.send(json!({"type": "leave"})).await;
    client.expect_error("not-joined").await;
    client.expect_alive().await;
}

#[tokio::test]
async fn joining_twice_gets_already_joined_and_keeps_the_first_place() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let second = ann.join(OTHER_ROOM, CAT, "Cat").await;
    assert_error(&second, "already-joined");
    let again = ann.join(ROOM, ANN, "Ann").await;
    assert_error(&again, "already-joined");
    // Ann is still Ann in the first room, and Bob heard nothing about it.
    bob.expect_silence(QUIET).await;
    ann.signal(BOB, json!("still here")).await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "signal", "from": ANN, "payload": "still here"})
    );
}

// ---------------------------------------------------------------------------------------------
// Rooms

#[tokio::test]
async fn the_second_peer_is_welcomed_with_the_first_and_the_first_is_told() {
    let mut config = Config::for_tests();
    config.ice_servers = vec!["stun:stun.example.org:3478".into()];
    // A self-hoster's raised file limit reaches every browser in the room.
    config.max_file_size = 5 << 30;
    let server = Server::start_with(config).await;

    let mut ann = server.client().await;
    ann.hello().await;
    let mut welcome = ann.join(ROOM, ANN, "Ann").await;
    // The first in a room owns it, and alone gets the secret (43 characters of base64url).
    let secret = welcome
        .as_object_mut()
        .unwrap()
        .remove("ownerSecret")
        .unwrap();
    assert_eq!(secret.as_str().unwrap().len(), 43, "{secret}");
    assert_eq!(
        welcome,
        json!({
            "type": "welcome",
            "room": ROOM,
            "peer": ANN,
            "kind": "pair",
            "capacity": 2,
            "peers": [],
            "iceServers": [{"urls": ["stun:stun.example.org:3478"]}],
            "resumed": false,
            "maxFileBytes": 5_u64 << 30,
            "owner": ANN,
            "locked": false,
        })
    );

    let mut bob = server.client().await;
    bob.hello().await;
    let welcome = bob.join(ROOM, BOB, "Bob").await;
    assert_eq!(
        welcome,
        json!({
            "type": "welcome",
            "room": ROOM,
            "peer": BOB,
            "kind": "pair",
            "capacity": 2,
            "peers": [{"peer": ANN, "name": "Ann"}],
            "iceServers": [{"urls": ["stun:stun.example.org:3478"]}],
            "resumed": false,
            "maxFileBytes": 5_u64 << 30,
            "owner": ANN,
            "locked": false,
        })
    );
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-joined", "peer": BOB, "name": "Bob"})
    );
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn names_are_trimmed_before_others_see_them() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    ann.enter(ROOM, ANN, "  Ann  ").await;
    let mut bob = server.client().await;
    let welcome = bob.enter(ROOM, BOB, "Bob").await;
    assert_eq!(welcome["peers"], json!([{"peer": ANN, "name": "Ann"}]));
}

#[tokio::test]
async fn a_third_peer_gets_room_full_and_its_socket_stays_open() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let mut cat = server.client().await;
    cat.hello().await;
    let refused = cat.join(ROOM, CAT, "Cat").await;
    assert_error(&refused, "room-full");
    cat.expect_alive().await;
    // The refused join left no trace: nobody was told, and Cat can use another room.
    ann.expect_silence(QUIET).await;
    bob.expect_silence(Duration::ZERO).await;
    let welcome = cat.join(OTHER_ROOM, CAT, "Cat").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["peers"], json!([]));
}

#[tokio::test]
async fn a_signal_reaches_its_addressee_unchanged_with_the_sender_set() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n".repeat(100);
    let payload = json!({
        "conn": "b1Xc9Rt2",
        "description": {"type": "offer", "sdp": sdp},
        "candidate": null,
        "nested": [1, -2, 3.5, true, false, null, {"deep": ["é", "🦊", "\u{202e}", "\"quoted\"\\"]}],
        "big": 9_007_199_254_740_993_u64,
        "empty": {},
    });
    // The text of the payload as sent; the relayed frame must carry exactly these bytes.
    let payload_text = payload.to_string();
    ann.send_text(format!(
        r#"{{"type":"signal","to":"{BOB}","payload":{payload_text}}}"#
    ))
    .await;
    let relayed = bob.recv().await;
    assert_eq!(
        relayed,
        json!({"type": "signal", "from": ANN, "payload": payload})
    );
    assert_eq!(relayed["payload"].to_string(), payload_text);
    ann.expect_silence(QUIET).await;

    // And back the other way, with a payload that is not an object.
    bob.signal(ANN, json!([1, "two"])).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "signal", "from": BOB, "payload": [1, "two"]})
    );
}

#[tokio::test]
async fn a_signal_to_a_peer_not_in_the_room_gets_unknown_peer() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    // Dan exists, but in another room.
    let mut dan = server.client().await;
    dan.enter(OTHER_ROOM, DAN, "Dan").await;

    ann.signal(CAT, json!({"conn": "x"})).await;
    ann.expect_error("unknown-peer").await;
    ann.signal(DAN, json!({"conn": "x"})).await;
    ann.expect_error("unknown-peer").await;
    ann.signal(ANN, json!({"conn": "to myself"})).await;
    ann.expect_error("unknown-peer").await;
    bob.expect_silence(QUIET).await;
    dan.expect_silence(Duration::ZERO).await;
    ann.expect_alive().await;
}

#[tokio::test]
async fn a_rename_is_announced_to_the_other_peer_and_an_invalid_name_is_refused() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    ann.send(json!({"type": "rename", "name": "Ada"})).await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "peer-renamed", "peer": ANN, "name": "Ada"})
    );
    ann.send(json!({"type": "rename", "name": "x".repeat(49)}))
        .await;
    ann.expect_error("invalid-name").await;
    ann.send(json!({"type": "rename", "name": "  "})).await;
    ann.expect_error("invalid-name").await;
    bob.expect_silence(QUIET).await;
    // The accepted name is the one a newcomer sees.
    bob.send(json!({"type": "leave"})).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-left", "peer": BOB, "reason": "left"})
    );
    let mut cat = server.client().await;
    let welcome = cat.enter(ROOM, CAT, "Cat").await;
    assert_eq!(welcome["peers"], json!([{"peer": ANN, "name": "Ada"}]));
}

#[tokio::test]
async fn leave_announces_peer_left_at_once_and_frees_the_place() {
    // The default grace is 30 s: a leave must not wait for it.
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let started = Instant::now();
    bob.send(json!({"type": "leave"})).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-left", "peer": BOB, "reason": "left"})
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Leave has no answer.
    bob.expect_silence(QUIET).await;

    let mut cat = server.client().await;
    let welcome = cat.enter(ROOM, CAT, "Cat").await;
    assert_eq!(welcome["peers"], json!([{"peer": ANN, "name": "Ann"}]));
    assert_eq!(welcome["resumed"], false);
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-joined", "peer": CAT, "name": "Cat"})
    );
    // The socket that left may join again (the room is full now, so another one).
    let welcome = bob.join(OTHER_ROOM, BOB, "Bob").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

#[tokio::test]
async fn a_peer_that_reconnects_within_the_grace_resumes_its_place_and_nobody_is_told() {
    let mut config = Config::for_tests();
    config.reconnect_grace = 1;
    let server = Server::start_with(config).await;
    let (mut ann, bob) = pair(&server, ROOM).await;
    drop(bob);
    support::wait_until_away(&mut ann, BOB).await;

    let mut bob = server.client().await;
    bob.hello().await;
    let welcome = bob.join(ROOM, BOB, "Bob").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["peers"], json!([{"peer": ANN, "name": "Ann"}]));
    // Neither a peer-left nor a peer-joined, not even once the original grace has run out.
    ann.expect_silence(Duration::from_millis(1300)).await;
    // The place is really Bob's again: signals reach the new socket.
    ann.signal(BOB, json!({"conn": "again"})).await;
    assert_eq!(
        bob.recv().await,
        json!({"type": "signal", "from": ANN, "payload": {"conn": "again"}})
    );
}

#[tokio::test]
async fn a_peer_that_does_not_return_within_the_grace_is_announced_timed_out() {
    let mut config = Config::for_tests();
    config.reconnect_grace = 1;
    let server = Server::start_with(config).await;
    let (mut ann, bob) = pair(&server, ROOM).await;
    let dropped = Instant::now();
    drop(bob);

    // While the place is kept Bob is unreachable, and his place still counts: the room is full.
    support::wait_until_away(&mut ann, BOB).await;
    let mut cat = server.client().await;
    cat.hello().await;
    assert_error(&cat.join(ROOM, CAT, "Cat").await, "room-full");

    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-left", "peer": BOB, "reason": "timed-out"})
    );
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "peer-left came {waited:?} after the drop"
    );
    // Now the place is free.
    let welcome = cat.join(ROOM, CAT, "Cat").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], false);
}

#[tokio::test]
async fn a_second_session_with_the_same_peer_id_replaces_the_first() {
    let server = Server::start().await;
    let (mut ann, mut old_bob) = pair(&server, ROOM).await;
    let mut new_bob = server.client().await;
    new_bob.hello().await;
    let welcome = new_bob.join(ROOM, BOB, "Bob").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], true);
    assert_eq!(welcome["peers"], json!([{"peer": ANN, "name": "Ann"}]));

    old_bob.expect_error("replaced").await;
    old_bob.expect_close(4000).await;
    ann.expect_silence(QUIET).await;
    ann.signal(BOB, json!("hi")).await;
    assert_eq!(
        new_bob.recv().await,
        json!({"type": "signal", "from": ANN, "payload": "hi"})
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

#[tokio::test]
async fn every_malformed_message_gets_its_own_error_and_the_socket_stays_usable() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    let join = |room: &str, peer: &str, name: &str| {
        json!({"type": "join", "room": room, "peer": peer, "name": name}).to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (join("short", ANN, "Ann"), "invalid-room-id"),
        (join(&format!("{ROOM}A"), ANN, "Ann"), "invalid-room-id"),
        (
            join("room/AAAAAAAAAAAAAAAA+A", ANN, "Ann"),
            "invalid-room-id",
        ),
        (join(&ROOM.replace('A', "é"), ANN, "Ann"), "invalid-room-id"),
        (join(ROOM, &"p".repeat(15), "Ann"), "invalid-peer-id"),
        (join(ROOM, &"p".repeat(65), "Ann"), "invalid-peer-id"),
        (join(ROOM, "peer with spaces!", "Ann"), "invalid-peer-id"),
        (join(ROOM, ANN, ""), "invalid-name"),
        (join(ROOM, ANN, &"n".repeat(49)), "invalid-name"),
        (join(ROOM, ANN, "evil\u{202e}gpj.exe"), "invalid-name"),
        (join(ROOM, ANN, "two\nlines"), "invalid-name"),
        ("not json".to_owned(), "bad-message"),
        (String::new(), "bad-message"),
        ("[1, 2]".to_owned(), "bad-message"),
        (r#""hello""#.to_owned(), "bad-message"),
        (r#"{"type": "teleport"}"#.to_owned(), "bad-message"),
        (r#"{"version": 1}"#.to_owned(), "bad-message"),
        (r#"{"type": 7}"#.to_owned(), "bad-message"),
        (r#"{"type": "hello"}"#.to_owned(), "bad-message"),
        (
            r#"{"type": "hello", "version": "1"}"#.to_owned(),
            "bad-message",
        ),
        (
            format!(r#"{{"type": "join", "room": "{ROOM}"}}"#),
            "bad-message",
        ),
        (
            format!(r#"{{"type": "join", "room": "{ROOM}", "peer": "{ANN}", "name": 5}}"#),
            "bad-message",
        ),
        (
            format!(r#"{{"type": "signal", "to": "{BOB}"}}"#),
            "bad-message",
        ),
        (
            r#"{"type": "signal", "to": "x", "payload": {}}"#.to_owned(),
            "invalid-peer-id",
        ),
    ];
    // Each case costs two messages (and hello one): all of it stays within the burst of 60, so
    // no answer is a rate-limited error instead.
    assert!(1 + 2 * cases.len() < MESSAGE_BURST as usize);
    for (text, code) in &cases {
        client.send_text(text.clone()).await;
        let reply = client.recv().await;
        assert_eq!(reply["type"], "error", "{text:?} got {reply}");
        assert_eq!(reply["code"], *code, "{text:?} got {reply}");
        client.expect_alive().await;
    }
    // None of them entered a room; a valid join still works, and unknown fields are ignored.
    let welcome = client
        .join_with(json!({"room": ROOM, "peer": ANN, "name": "Ann", "extra": [1]}))
        .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["peer"], ANN);
}

#[tokio::test]
async fn error_messages_never_echo_what_the_client_sent() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    let secret = "my-secret-room-name-that-is-long";
    client
        .send(json!({"type": "join", "room": secret, "peer": ANN, "name": "Ann"}))
        .await;
    let reply = client.recv().await;
    assert_error(&reply, "invalid-room-id");
    assert!(!reply.to_string().contains(secret), "{reply}");
    client
        .send(json!({"type": "hello", "version": secret}))
        .await;
    let reply = client.recv().await;
    assert_error(&reply, "bad-message");
    assert!(!reply.to_string().contains(secret), "{reply}");
}

// ---------------------------------------------------------------------------------------------
// Limits

#[tokio::test]
async fn a_text_message_over_64_kib_closes_the_socket_with_1009() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let padding = "x".repeat(MAX_MESSAGE_BYTES);
    ann.signal(BOB, json!({"sdp": padding})).await;
    ann.expect_close(1009).await;
    // Nothing of it was relayed.
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_message_of_exactly_64_kib_is_accepted() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    // Unknown fields are ignored, so padding a ping makes a message of any size.
    let envelope = json!({"type": "ping", "pad": ""}).to_string();
    let padding = "x".repeat(MAX_MESSAGE_BYTES - envelope.len());
    let text = json!({"type": "ping", "pad": padding}).to_string();
    assert_eq!(text.len(), MAX_MESSAGE_BYTES);
    client.send_text(text).await;
    assert_eq!(client.recv().await["type"], "pong");
}

#[tokio::test]
async fn a_signal_is_relayed_only_if_the_relayed_message_fits_in_64_kib() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    // Numbers written short grow when re-serialized (1e9 becomes 1000000000.0): a frame well
    // under the limit would make a relayed message far over it.
    let numbers = vec![json!(1e9); 10_000];
    let grown = json!({"type": "signal", "to": BOB, "payload": numbers}).to_string();
    let written_short = grown.replace("1000000000.0", "1e9");
    assert!(written_short.len() < MAX_MESSAGE_BYTES);
    ann.send_text(written_short).await;
    ann.expect_error("bad-message").await;
    bob.expect_silence(QUIET).await;
    // The largest payload that fits is relayed, and what Bob receives is within the limit.
    let padding = "y".repeat(MAX_MESSAGE_BYTES - 200);
    ann.signal(BOB, json!(padding)).await;
    let relayed = bob.recv().await;
    assert_eq!(relayed["payload"], json!(padding));
    assert!(relayed.to_string().len() <= MAX_MESSAGE_BYTES);
}

#[tokio::test]
async fn a_binary_frame_closes_the_socket_with_1003() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    client
        .send_frame(Message::binary(br#"{"type":"ping"}"#.to_vec()))
        .await;
    client.expect_error("bad-message").await;
    client.expect_close(1003).await;
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused_with_503() {
    let mut config = Config::for_tests();
    config.max_connections = 1;
    let server = Server::start_with(config).await;
    let mut first = server.client().await;
    first.hello().await;
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!(
            "expected HTTP 503, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    first.expect_alive().await;
}

/// What a flooding client observed, up to and including its close.
#[derive(Debug)]
struct Flood {
    sent: usize,
    pongs: usize,
    rate_limited: usize,
    /// Pongs received before the first `rate-limited` error.
    pongs_before_first_error: Option<usize>,
    close: Option<u16>,
}

/// Sends `count` pings as fast as the socket takes them, then reads everything until the close.
async fn flood(mut client: Client, count: usize) -> Flood {
    let ping = json!({"type": "ping"}).to_string();
    let mut sent = 0;
    while sent < count && client.try_send_text(&ping).await {
        sent += 1;
    }
    let mut pongs = 0;
    let mut rate_limited = 0;
    let mut pongs_before_first_error = None;
    loop {
        match client.next_event().await {
            Event::Message(message) if message == json!({"type": "pong"}) => pongs += 1,
            Event::Message(message) => {
                assert_error(&message, "rate-limited");
                pongs_before_first_error.get_or_insert(pongs);
                rate_limited += 1;
            }
            Event::Closed(close) => {
                client.finish_close().await;
                return Flood {
                    sent,
                    pongs,
                    rate_limited,
                    pongs_before_first_error,
                    close,
                };
            }
            Event::Ended(why) => panic!(
                "the flooder's socket ended without a close frame after {sent} pings, \
                 {pongs} pongs and {rate_limited} errors: {why}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_client_is_rate_limited_then_closed_while_other_rooms_carry_on() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, OTHER_ROOM).await;
    let mut flooder = server.client().await;
    flooder.enter(ROOM, CAT, "Cat").await;

    // In another room, Ann and Bob negotiate back and forth (within their own rate limit) while
    // the flood runs; each round trip's start and duration is recorded.
    let relay = tokio::spawn(async move {
        let mut rounds = Vec::new();
        for round in 0..50 {
            let started = Instant::now();
            ann.signal(BOB, json!({"round": round})).await;
            assert_eq!(
                bob.recv().await,
                json!({"type": "signal", "from": ANN, "payload": {"round": round}})
            );
            bob.signal(ANN, json!({"answer": round})).await;
            assert_eq!(
                ann.recv().await,
                json!({"type": "signal", "from": BOB, "payload": {"answer": round}})
            );
            rounds.push((started, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rounds
    });
    let flood_started = Instant::now();
    let observed = flood(flooder, 400).await;
    let flood_ended = Instant::now();
    let rounds = relay.await.unwrap();

    let during = rounds
        .iter()
        .filter(|(started, took)| *started < flood_ended && *started + *took > flood_started)
        .count();
    assert!(during > 0, "no round trip overlapped the flood");
    let slowest = rounds.iter().map(|(_, took)| *took).max().unwrap();
    assert!(
        slowest < Duration::from_millis(250),
        "a round trip took {slowest:?} during the flood"
    );

    // hello and join took two messages of the burst.
    let burst = MESSAGE_BURST as usize - 2;
    let needed = burst + FLOOD_TOLERANCE as usize + 1;
    assert!(observed.sent >= needed, "{observed:?}");
    // The burst is served, then the excess is refused: errors at most once a second, so only a
    // handful, the last one just before the close.
    assert!(
        observed.pongs >= burst && observed.pongs < needed,
        "{observed:?}"
    );
    assert!(
        observed
            .pongs_before_first_error
            .is_some_and(|pongs| pongs >= burst),
        "{observed:?}"
    );
    assert!((2..=5).contains(&observed.rate_limited), "{observed:?}");
    assert_eq!(observed.close, Some(1008), "{observed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_says_hello_is_closed_with_4001_after_the_handshake_timeout() {
    let server = Server::start().await;
    let mut client = server.client().await;
    let connected = tokio::time::Instant::now();
    match client.next_event_within(Duration::from_secs(60)).await {
        Some(Event::Closed(code)) => assert_eq!(code, Some(4001)),
        other => panic!("expected close 4001, got {other:?}"),
    }
    assert!(connected.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_falls_silent_is_closed_with_4001_after_the_idle_timeout() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.enter(ROOM, ANN, "Ann").await;
    // Not reading means not answering the server's pings either: total silence.
    tokio::time::sleep(IDLE_TIMEOUT - Duration::from_secs(5)).await;
    // Still open just before the timeout; reading now answers the queued pings.
    client.expect_alive().await;
    let silent_from = tokio::time::Instant::now();
    // The server closes at the timeout, then waits a moment for the client's closing handshake.
    tokio::time::sleep(IDLE_TIMEOUT + Duration::from_millis(500)).await;
    match client.next_event_within(Duration::from_secs(1)).await {
        Some(Event::Closed(code)) => assert_eq!(code, Some(4001)),
        other => panic!("expected close 4001, got {other:?}"),
    }
    assert!(silent_from.elapsed() >= IDLE_TIMEOUT);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_serve_returns() {
    let server = Server::start().await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    let mut idle = server.client().await;
    let addr = server.addr;
    let started = Instant::now();
    let (served, ()) = tokio::join!(server.shutdown(Duration::from_secs(5)), async {
        for client in [&mut ann, &mut bob, &mut idle] {
            client.expect_close(1001).await;
        }
    });
    served.unwrap();
    // Clients that answer the close frame at once are not kept waiting for.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[tokio::test]
async fn healthz_answers_200() {
    let server = Server::start().await;
    let response = http_get(server.addr, "/healthz", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
}

#[tokio::test]
async fn the_home_page_has_a_content_security_policy_without_inline_script() {
    let server = Server::start().await;
    let response = http_get(server.addr, "/", &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        response.headers
    );
    let csp = response.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    let body = String::from_utf8(response.body)
        .unwrap()
        .to_ascii_lowercase();
    assert!(body.contains("<html"), "{body}");
}

#[tokio::test]
async fn a_well_formed_room_link_gets_the_room_page_and_any_other_gets_404() {
    let server = Server::start().await;
    let page = http_get(server.addr, &format!("/r/{ROOM}"), &[]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(!page.body.is_empty());
    for bad in ["/r/not-valid", &format!("/r/{ROOM}A"), "/r/"] {
        let response = http_get(server.addr, bad, &[]).await;
        assert_eq!(response.status, 404, "{bad}");
        // Security headers go on errors too.
        assert_eq!(
            response.header("referrer-policy"),
            Some("no-referrer"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn files_outside_the_web_client_are_not_served() {
    let server = Server::start().await;
    for path in [
        "/nope.js",
        "/.git/config",
        "/js/",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
    ] {
        let response = http_get(server.addr, path, &[]).await;
        assert!(
            response.status == 404 || response.status == 400,
            "{path}: {}",
            response.status
        );
    }
}

#[tokio::test]
async fn an_unchanged_asset_is_revalidated_with_304() {
    let server = Server::start().await;
    let first = http_get(server.addr, "/", &[]).await;
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(first.header("cache-control"), Some("no-cache"));

    let again = http_get(server.addr, "/", &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("referrer-policy"), Some("no-referrer"));

    let stale = http_get(server.addr, "/", &[("If-None-Match", "\"0000\"")]).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
}

#[tokio::test]
async fn text_assets_are_gzip_compressed_when_the_browser_accepts_it() {
    let server = Server::start().await;
    for path in ["/", "/js/protocol.js"] {
        let plain = http_get(server.addr, path, &[]).await;
        assert_eq!(plain.status, 200, "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path}");

        let gzipped = http_get(server.addr, path, &[("Accept-Encoding", "gzip")]).await;
        assert_eq!(gzipped.status, 200, "{path}");
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(&gzipped.body[..2], &[0x1f, 0x8b], "{path}: gzip magic");
        assert!(gzipped.body.len() < plain.body.len(), "{path}");
        assert!(
            gzipped
                .header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "{path}: {:?}",
            gzipped.headers
        );
        // Compression keeps the security headers.
        assert!(
            gzipped.header("content-security-policy").is_some(),
            "{path}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The binary

/// The spawned binary, killed if the test fails before it exits on its own.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn turn_settings_that_do_not_fit_stop_the_binary_before_it_announces_itself() {
    let output = natter()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--turn-url",
            "turn:turn.example.org:3478",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("Natter is running"), "{stdout}");
    assert!(
        stderr.contains("--turn-url needs --turn-secret"),
        "{stderr}"
    );
}

fn natter() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_natter"));
    for var in [
        "NATTER_LISTEN",
        "NATTER_ICE_SERVERS",
        "NATTER_RECONNECT_GRACE",
        "NATTER_MAX_CONNECTIONS",
        "NATTER_LUNA_URL",
        "NATTER_LUNA_MODEL",
        "NATTER_LUNA_API_KEY",
        "NATTER_TURN_URLS",
        "NATTER_TURN_SECRET",
        "NATTER_CONFIG",
    ] {
        command.env_remove(var);
    }
    // Nothing on disk, and a free media port.
    command.args(["--names-db", ":memory:", "--rtc-port", "0"]);
    command
}

/// The binary with `args`, its stdout piped (for the printed URL), quiet otherwise.
fn spawn_natter(args: &[&str]) -> Running {
    Running(
        natter()
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Reads the "Open http://…" line the binary prints and returns the address in it.
async fn printed_address(child: &mut Running) -> std::net::SocketAddr {
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .expect("the binary printed no URL")
        .unwrap();
    assert!(line.contains("Open http://"), "{line:?}");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_binary_prints_its_url_and_exits_cleanly_on_sigterm() {
    let mut child = spawn_natter(&["--listen", "127.0.0.1:0"]);
    let addr = printed_address(&mut child).await;

    let mut client = Client::connect(addr).await;
    client.enter(ROOM, ANN, "Ann").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    client.expect_close(1001).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "natter did not exit within 5 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_binary_help_names_every_option_and_its_environment_variable() {
    let output = natter().arg("--help").output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--listen",
        "NATTER_LISTEN",
        "--ice-server",
        "NATTER_ICE_SERVERS",
        "--reconnect-grace",
        "NATTER_RECONNECT_GRACE",
        "--max-connections",
        "NATTER_MAX_CONNECTIONS",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}

// ---------------------------------------------------------------------------------------------
// Group rooms

/// `hello`, then a `join` asking for a group room; returns the next message.
async fn join_group(client: &mut Client, peer: &str, name: &str) -> serde_json::Value {
    client.hello().await;
    client
        .join_with(json!({"room": ROOM, "peer": peer, "name": name, "kind": "group"}))
        .await
}

#[tokio::test]
async fn the_first_join_decides_the_kind_and_group_rooms_hold_32() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    let welcome = join_group(&mut ann, ANN, "Ann").await;
    assert_eq!(welcome["kind"], "group", "{welcome}");
    assert_eq!(welcome["capacity"], 32, "{welcome}");
    // A join that asks for a pair room gets the room as it is.
    let mut bob = server.client().await;
    let welcome = bob.enter(ROOM, BOB, "Bob").await;
    assert_eq!(welcome["kind"], "group", "{welcome}");
}

#[tokio::test]
async fn a_group_room_is_full_at_its_configured_capacity() {
    let mut config = Config::for_tests();
    config.group_capacity = 3;
    let server = Server::start_with(config).await;
    let mut clients = Vec::new();
    for (peer, name) in [(ANN, "Ann"), (BOB, "Bob"), (CAT, "Cat")] {
        let mut client = server.client().await;
        assert_eq!(join_group(&mut client, peer, name).await["type"], "welcome");
        clients.push(client);
    }
    let mut dan = server.client().await;
    let refused = join_group(&mut dan, DAN, "Dan").await;
    assert_error(&refused, "room-full");
}

/// A str0m participant that publishes audio and video (or nothing), with its first offer.
pub(crate) fn synthetic_participant(
    publish: bool,
) -> (
    natter_loadgen::Participant,
    String,
    Vec<natter_proto::signaling::PublishedTrack>,
) {
    let now = Instant::now();
    let mut participant = natter_loadgen::Participant::new(
        now,
        now,
        "127.0.0.1:40000".parse().unwrap(),
        natter_loadgen::Publish {
            audio: publish,
            video: publish,
        },
    );
    let (sdp, tracks) = participant.take_offer().unwrap();
    (participant, sdp, tracks)
}

#[tokio::test]
async fn a_pair_room_may_connect_to_the_media_relay_unless_the_operator_forbids_it() {
    // By default the pair whose direct path failed gets an answer from the relay.
    let server = Server::start().await;
    let mut ann = server.client().await;
    let welcome = ann.enter(ROOM, ANN, "Ann").await;
    assert!(welcome.get("pairRelay").is_none(), "allowed: not said");
    let (_participant, sdp, tracks) = synthetic_participant(false);
    ann.send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": tracks}))
        .await;
    let answer = ann.recv().await;
    assert_eq!(answer["type"], "sfu-answer", "{answer}");

    // With --pair-server-relay false, pair rooms stay browser to browser, and welcome says so.
    let mut config = Config::for_tests();
    config.pair_server_relay = false;
    let server = Server::start_with(config).await;
    let mut ann = server.client().await;
    ann.hello().await;
    let welcome = ann.join(ROOM, ANN, "Ann").await;
    assert_eq!(welcome["pairRelay"], false, "{welcome}");
    ann.send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": []}))
        .await;
    ann.expect_error("not-group-room").await;
    ann.expect_alive().await;
}

#[tokio::test]
async fn every_join_gets_its_own_expiring_turn_credential_and_never_the_secret() {
    const SECRET: &str = "turn-shared-secret-for-the-test";
    let mut config = Config::for_tests();
    config.ice_servers = vec!["stun:turn.example.org:3478".into()];
    config.turn_urls = vec![
        "turn:turn.example.org:3478".into(),
        "turn:turn.example.org:3478?transport=tcp".into(),
    ];
    config.turn_secret = natter_server::ice::TurnSecret::new(SECRET);
    config.turn_credential_ttl = 600;
    let server = Server::start_with(config).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut ann = server.client().await;
    ann.hello().await;
    let welcome = ann.join(ROOM, ANN, "Ann").await;
    let servers = welcome["iceServers"].as_array().unwrap();
    assert_eq!(servers[0], json!({"urls": ["stun:turn.example.org:3478"]}));
    let turn = &servers[1];
    assert_eq!(
        turn["urls"],
        json!([
            "turn:turn.example.org:3478",
            "turn:turn.example.org:3478?transport=tcp"
        ])
    );
    let username = turn["username"].as_str().unwrap();
    // "<expiry>:<tag>": the tag stands for Ann without being her peer id (which would let
    // whoever reads the TURN server's logs take her place in the room).
    let (expiry, tag) = username.split_once(':').unwrap();
    assert_eq!(tag.len(), 16, "{username}");
    assert!(!username.contains(ANN), "{username}");
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + 600..=before + 602).contains(&expiry), "{expiry}");
    let secret = natter_server::ice::TurnSecret::new(SECRET).unwrap();
    assert_eq!(
        turn["credential"].as_str().unwrap(),
        natter_server::ice::turn_password(&secret, username)
    );
    assert!(!welcome.to_string().contains(SECRET));

    let mut bob = server.client().await;
    bob.hello().await;
    let other = bob.join(ROOM, BOB, "Bob").await;
    let bob_username = other["iceServers"][1]["username"].as_str().unwrap();
    assert!(
        !bob_username.ends_with(&format!(":{tag}")),
        "another person, another tag"
    );
    assert_ne!(other["iceServers"][1]["credential"], turn["credential"]);
    // Ann joining again (another socket) keeps her tag.
    drop(ann);
    let mut again = server.client().await;
    again.hello().await;
    let rejoined = again.join(ROOM, ANN, "Ann").await;
    let again_username = rejoined["iceServers"][1]["username"].as_str().unwrap();
    assert!(
        again_username.ends_with(&format!(":{tag}")),
        "{again_username}"
    );
}

#[tokio::test]
async fn sfu_offer_before_joining_gets_not_joined() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    ann.hello().await;
    ann.send(json!({"type": "sfu-offer", "sdp": "v=0", "tracks": []}))
        .await;
    ann.expect_error("not-joined").await;
}

#[tokio::test]
async fn a_malformed_offer_gets_bad_offer_and_the_socket_stays() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    join_group(&mut ann, ANN, "Ann").await;
    ann.send(json!({"type": "sfu-offer", "sdp": "certainly not SDP", "tracks": []}))
        .await;
    ann.expect_error("bad-offer").await;
    ann.send(json!({"type": "sfu-offer", "sdp": "v=0", "tracks": [
        {"mid": "0", "source": "camera"}, {"mid": "1", "source": "camera"}
    ]}))
    .await;
    ann.expect_error("bad-offer").await;
    // Unknown sources are a malformed message, caught before the SFU.
    ann.send(json!({"type": "sfu-offer", "sdp": "v=0", "tracks": [{"mid": "0", "source": "tv"}]}))
        .await;
    ann.expect_error("bad-message").await;
    ann.expect_alive().await;
}

#[tokio::test]
async fn a_real_offer_is_answered_with_the_sfus_candidates_and_its_tracks() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    join_group(&mut ann, ANN, "Ann").await;
    let (mut participant, sdp, tracks) = synthetic_participant(true);
    ann.send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": tracks}))
        .await;
    let answer = ann.recv().await;
    assert_eq!(answer["type"], "sfu-answer", "{answer}");
    let sdp = answer["sdp"].as_str().unwrap();
    assert!(sdp.contains("a=ice-lite"), "{sdp}");
    assert!(
        sdp.contains(" udp ") && sdp.contains(" tcp "),
        "UDP and ICE-TCP: {sdp}"
    );
    assert!(sdp.contains("tcptype passive"), "{sdp}");
    participant.handle_answer(sdp).unwrap();
    let tracks = ann.recv().await;
    assert_eq!(tracks["type"], "sfu-tracks", "{tracks}");
    assert_eq!(tracks["tracks"], json!([]), "nobody else publishes");
}

#[tokio::test]
async fn sfu_offers_may_be_larger_than_other_messages_but_not_unbounded() {
    use natter_proto::limits::MAX_SDP_MESSAGE_BYTES;
    let server = Server::start().await;
    let mut ann = server.client().await;
    join_group(&mut ann, ANN, "Ann").await;
    // A 200 KiB offer (32 people's media sections) is read; this one is not SDP, so it is refused.
    let big = format!("v=0\r\n{}", "a=x\r\n".repeat(40_000));
    ann.send(json!({"type": "sfu-offer", "sdp": big, "tracks": []}))
        .await;
    ann.expect_error("bad-offer").await;
    // Anything else over 64 KiB still closes the socket.
    let mut bob = server.client().await;
    join_group(&mut bob, BOB, "Bob").await;
    bob.send(json!({"type": "rename", "name": "x".repeat(MAX_MESSAGE_BYTES)}))
        .await;
    bob.expect_close(1009).await;
    assert_eq!(ann.recv().await["type"], "peer-joined");
    // And so does an offer over its own limit.
    let huge = "a=x\r\n".repeat(MAX_SDP_MESSAGE_BYTES / 5 + 1);
    ann.send(json!({"type": "sfu-offer", "sdp": huge, "tracks": []}))
        .await;
    ann.expect_close(1009).await;
}

// ---------------------------------------------------------------------------------------------
// Named rooms

/// `hello`, then `join-named`; returns the next message.
async fn join_named(
    client: &mut Client,
    room_name: &str,
    peer: &str,
    name: &str,
) -> serde_json::Value {
    client.hello().await;
    client
        .join_named_with(json!({"roomName": room_name, "peer": peer, "name": name}))
        .await
}

#[tokio::test]
async fn two_people_reach_the_same_named_room_however_they_write_its_name() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    let welcome = join_named(&mut ann, "  Team Standup", ANN, "Ann").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["kind"], "group", "{welcome}");
    assert_eq!(welcome["roomName"], "team-standup", "{welcome}");
    let mut bob = server.client().await;
    let again = join_named(&mut bob, "TEAM   standup", BOB, "Bob").await;
    assert_eq!(again["room"], welcome["room"], "{again}");
    assert_eq!(again["peers"], json!([{"peer": ANN, "name": "Ann"}]));
    // Another name is another room.
    let mut cat = server.client().await;
    let other = join_named(&mut cat, "team-standup-2", CAT, "Cat").await;
    assert_ne!(other["room"], welcome["room"]);
}

#[tokio::test]
async fn a_bad_room_name_gets_invalid_room_name_with_the_rule() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    ann.hello().await;
    for bad in ["ab", "a/b/c", "-dash", "😀😀😀"] {
        ann.send(json!({"type": "join-named", "roomName": bad, "peer": ANN, "name": "Ann"}))
            .await;
        let reply = ann.recv().await;
        assert_error(&reply, "invalid-room-name");
        assert!(
            reply["message"].as_str().unwrap().contains("room name"),
            "{reply}"
        );
    }
    ann.expect_alive().await;
}

#[tokio::test]
async fn a_named_room_keeps_its_id_across_a_restart() {
    let directory =
        std::env::temp_dir().join(format!("natter-names-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    let config = || {
        let mut config = Config::for_tests();
        config.names_db = Some(directory.join("names.sqlite3"));
        config
    };
    let server = Server::start_with(config()).await;
    let mut ann = server.client().await;
    let before = join_named(&mut ann, "book-club", ANN, "Ann").await["room"].clone();
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    let server = Server::start_with(config()).await;
    let mut ann = server.client().await;
    let after = join_named(&mut ann, "Book Club", ANN, "Ann").await["room"].clone();
    assert_eq!(before, after);
    assert!(before.as_str().is_some_and(|id| id.len() == 22), "{before}");
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test]
async fn the_named_room_page_is_served_for_normal_names_and_others_are_redirected_or_refused() {
    let server = Server::start().await;
    let page = http_get(server.addr, "/n/team-standup", &[]).await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("group-room.js"));
    let moved = http_get(server.addr, "/n/Caf%C3%A9%20Chat", &[]).await;
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/n/caf%C3%A9-chat"));
    let refused = http_get(server.addr, "/n/a%2Fb", &[]).await;
    assert_eq!(refused.status, 404);
    assert!(String::from_utf8_lossy(&refused.body).contains("only letters"));
}

// ---------------------------------------------------------------------------------------------
// Proof of work

#[tokio::test]
async fn a_join_needs_a_proof_and_each_refusal_brings_a_new_challenge() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    ann.hello().await;
    let first = ann.take_challenge().await;
    ann.send(json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann"}))
        .await;
    ann.expect_error("proof-required").await;
    // A wrong number for the new challenge.
    let second = ann.take_challenge().await;
    assert_ne!(first.0, second.0, "a new token");
    let wrong = (0..)
        .find(|&nonce| !natter_proto::pow::meets_difficulty(&second.0, nonce, second.1))
        .unwrap();
    ann.send(
        json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann",
        "proof": {"challenge": second.0, "nonce": wrong}}),
    )
    .await;
    let reply = ann.recv().await;
    assert_error(&reply, "bad-proof");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("does not solve"),
        "{reply}"
    );
    // A forged token: the difficulty edited down. It is not the token this socket was sent.
    let third = ann.take_challenge().await;
    let forged = third.0.replacen(&format!(".{}.", third.1), ".1.", 1);
    ann.send(
        json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann",
        "proof": {"challenge": forged, "nonce": 0}}),
    )
    .await;
    let reply = ann.recv().await;
    assert_error(&reply, "bad-proof");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("not this connection's latest"),
        "{reply}"
    );
    // The right answer gets in.
    let welcome = ann.join(ROOM, ANN, "Ann").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

#[tokio::test]
async fn a_proof_works_once_and_only_on_its_own_connection() {
    let server = Server::start().await;
    let mut ann = server.client().await;
    ann.hello().await;
    let proof = ann.proof().await;
    ann.send(
        json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann", "proof": proof.clone()}),
    )
    .await;
    assert_eq!(ann.recv().await["type"], "welcome");
    // On another connection, and again on Ann's own after leaving: refused either way.
    let mut copycat = server.client().await;
    copycat.hello().await;
    copycat
        .send(
            json!({"type": "join", "room": OTHER_ROOM, "peer": CAT, "name": "Cat", "proof": proof.clone()}),
        )
        .await;
    ann.send(json!({"type": "leave"})).await;
    ann.take_challenge().await;
    ann.send(json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann", "proof": proof}))
        .await;
    for client in [&mut copycat, &mut ann] {
        let reply = client.recv().await;
        assert_error(&reply, "bad-proof");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("not this connection's latest"),
            "{reply}"
        );
    }
}

#[tokio::test]
async fn a_socket_that_keeps_sending_bad_proofs_is_closed() {
    let server = Server::start().await;
    let mut bot = server.client().await;
    bot.hello().await;
    for _ in 0..natter_proto::limits::BAD_PROOF_TOLERANCE {
        bot.send(json!({"type": "join", "room": ROOM, "peer": CAT, "name": "Bot"}))
            .await;
        bot.expect_error("proof-required").await;
    }
    bot.send(json!({"type": "join", "room": ROOM, "peer": CAT, "name": "Bot"}))
        .await;
    bot.expect_error("bad-proof").await;
    bot.expect_close(1008).await;
}

#[tokio::test]
async fn with_difficulty_zero_no_proof_is_needed() {
    let mut config = Config::for_tests();
    config.pow_difficulty = 0;
    let server = Server::start_with(config).await;
    let mut ann = server.client().await;
    ann.hello().await;
    let (_, difficulty) = ann.take_challenge().await;
    assert_eq!(difficulty, 0);
    ann.send(json!({"type": "join", "room": ROOM, "peer": ANN, "name": "Ann"}))
        .await;
    assert_eq!(ann.recv().await["type"], "welcome");
}

// ---------------------------------------------------------------------------------------------
// Owners and moderation

/// A client that says it comes from `ip`, through the trusted proxy header.
async fn client_from(server: &Server, ip: &str) -> Client {
    Client::connect_with(server.addr, &[("x-real-ip", ip)])
        .await
        .unwrap()
}

fn proxied_config() -> Config {
    let mut config = Config::for_tests();
    config.client_ip_header = Some("X-Real-IP".to_owned());
    config
}

/// Ann (owner, from 192.0.2.1) and Bob (from 192.0.2.2) in a group room; Ann's secret.
async fn owned_room(server: &Server) -> (Client, Client, String) {
    let mut ann = client_from(server, "192.0.2.1").await;
    let welcome = join_group(&mut ann, ANN, "Ann").await;
    assert_eq!(welcome["owner"], ANN, "{welcome}");
    let secret = welcome["ownerSecret"].as_str().unwrap().to_owned();
    let mut bob = client_from(server, "192.0.2.2").await;
    let welcome = join_group(&mut bob, BOB, "Bob").await;
    assert_eq!(welcome["owner"], ANN, "{welcome}");
    assert!(
        welcome.get("ownerSecret").is_none(),
        "only the owner gets it: {welcome}"
    );
    ann.recv().await; // peer-joined
    (ann, bob, secret)
}

#[tokio::test]
async fn only_the_owner_may_moderate() {
    let server = Server::start_with(proxied_config()).await;
    let (_ann, mut bob, _) = owned_room(&server).await;
    for message in [
        json!({"type": "kick", "peer": ANN}),
        json!({"type": "ban", "peer": ANN}),
        json!({"type": "lock", "locked": true}),
        json!({"type": "set-capacity", "capacity": 3}),
        json!({"type": "hand-over", "peer": BOB}),
    ] {
        bob.send(message.clone()).await;
        let reply = bob.recv().await;
        assert_error(&reply, "not-owner");
    }
}

/// Ann, the owner, sends `action` (`kick` or `ban`) about Bob: Bob is told why and closed with
/// `code`, and Ann sees him leave for that reason. Returns Ann.
async fn ann_expels_bob(server: &Server, action: &str, code: u16) -> Client {
    let (mut ann, mut bob, _) = owned_room(server).await;
    ann.send(json!({"type": action, "peer": BOB})).await;
    let reason = if action == "kick" { "kicked" } else { "banned" };
    bob.expect_error(reason).await;
    bob.expect_close(code).await;
    assert_eq!(
        ann.recv().await,
        json!({"type": "peer-left", "peer": BOB, "reason": reason})
    );
    ann
}

#[tokio::test]
async fn a_kicked_person_is_told_why_and_the_others_see_it() {
    let server = Server::start_with(proxied_config()).await;
    ann_expels_bob(&server, "kick", 4004).await;
    // A kick is not a ban.
    let mut bob = client_from(&server, "192.0.2.2").await;
    assert_eq!(join_group(&mut bob, BOB, "Bob").await["type"], "welcome");
}

#[tokio::test]
async fn a_banned_person_cannot_return_even_with_a_fresh_identity_from_the_same_address() {
    let server = Server::start_with(proxied_config()).await;
    ann_expels_bob(&server, "ban", 4005).await;
    let mut again = client_from(&server, "192.0.2.2").await;
    assert_error(&join_group(&mut again, BOB, "Bob").await, "banned");
    let mut fresh = client_from(&server, "192.0.2.2").await;
    assert_error(&join_group(&mut fresh, DAN, "Not Bob").await, "banned");
    let mut same_id_elsewhere = client_from(&server, "198.51.100.7").await;
    assert_error(
        &join_group(&mut same_id_elsewhere, BOB, "Bob").await,
        "banned",
    );
    let mut cat = client_from(&server, "192.0.2.3").await;
    assert_eq!(join_group(&mut cat, CAT, "Cat").await["type"], "welcome");
}

#[tokio::test]
async fn the_owner_locks_the_room_and_comes_back_with_the_secret() {
    let server = Server::start_with(proxied_config()).await;
    let (mut ann, mut bob, secret) = owned_room(&server).await;
    ann.send(json!({"type": "lock", "locked": true})).await;
    let state = json!({"type": "room-state", "owner": ANN, "locked": true, "capacity": 32});
    assert_eq!(ann.recv().await, state);
    assert_eq!(bob.recv().await, state);
    let mut cat = client_from(&server, "192.0.2.3").await;
    assert_error(&join_group(&mut cat, CAT, "Cat").await, "room-locked");
    // Ann leaves and returns from another device: the secret makes her owner, past the lock.
    ann.send(json!({"type": "leave"})).await;
    bob.recv().await; // peer-left
    let mut ann_again = client_from(&server, "192.0.2.9").await;
    ann_again.hello().await;
    let welcome = ann_again
        .join_with(
            json!({"room": ROOM, "peer": DAN, "name": "Ann", "kind": "group",
            "ownerSecret": secret}),
        )
        .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["owner"], DAN, "{welcome}");
    ann_again
        .send(json!({"type": "lock", "locked": false}))
        .await;
    let mut cat = client_from(&server, "192.0.2.3").await;
    // Bob hears of the newcomer, the new owner, then of the unlock; then Cat gets in.
    assert_eq!(
        bob.recv().await,
        json!({"type": "peer-joined", "peer": DAN, "name": "Ann"})
    );
    assert_eq!(
        bob.recv().await,
        json!({"type": "room-state", "owner": DAN, "locked": true, "capacity": 32})
    );
    loop {
        let message = bob.recv().await;
        if message["type"] == "room-state" {
            assert_eq!(message["locked"], false, "{message}");
            break;
        }
    }
    assert_eq!(join_group(&mut cat, CAT, "Cat").await["type"], "welcome");
}

#[tokio::test]
async fn the_owner_sets_the_capacity_and_hands_ownership_on() {
    let server = Server::start_with(proxied_config()).await;
    let (mut ann, mut bob, _) = owned_room(&server).await;
    ann.send(json!({"type": "set-capacity", "capacity": 1}))
        .await;
    ann.expect_error("invalid-capacity").await;
    ann.send(json!({"type": "set-capacity", "capacity": 3}))
        .await;
    assert_eq!(ann.recv().await["capacity"], 3);
    let mut cat = client_from(&server, "192.0.2.3").await;
    assert_eq!(join_group(&mut cat, CAT, "Cat").await["capacity"], 3);
    let mut dan = client_from(&server, "192.0.2.4").await;
    assert_error(&join_group(&mut dan, DAN, "Dan").await, "room-full");
    // Hand-over: Bob gets a secret of his own, everyone learns the new owner.
    ann.send(json!({"type": "hand-over", "peer": BOB})).await;
    let mut bob_secret = None;
    let mut bob_state = None;
    while bob_secret.is_none() || bob_state.is_none() {
        let message = bob.recv().await;
        match message["type"].as_str() {
            Some("owner-secret") => bob_secret = Some(message["secret"].clone()),
            Some("room-state") if message["owner"] == BOB => bob_state = Some(message),
            _ => {}
        }
    }
    assert_eq!(bob_secret.unwrap().as_str().map(str::len), Some(43));
    ann.send(json!({"type": "lock", "locked": true})).await;
    loop {
        let message = ann.recv().await;
        if message["type"] == "error" {
            assert_error(&message, "not-owner");
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits, origins and proxies

#[tokio::test]
async fn http_requests_over_the_per_address_limit_get_429_with_retry_after() {
    let mut config = Config::for_tests();
    config.http_per_minute = 60;
    config.http_burst = 5;
    let server = Server::start_with(config).await;
    for _ in 0..5 {
        assert_eq!(http_get(server.addr, "/", &[]).await.status, 200);
    }
    let refused = http_get(server.addr, "/", &[]).await;
    assert_eq!(refused.status, 429);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Health checks are not counted.
    assert_eq!(http_get(server.addr, "/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn websocket_upgrades_and_open_connections_are_limited_per_address() {
    let mut config = proxied_config();
    config.ws_per_minute = 60;
    config.ws_burst = 4;
    config.max_connections_per_ip = 2;
    let server = Server::start_with(config).await;
    let first = client_from(&server, "192.0.2.1").await;
    let _second = client_from(&server, "192.0.2.1").await;
    let refused = Client::connect_with(server.addr, &[("x-real-ip", "192.0.2.1")]).await;
    assert_eq!(refused.err(), Some(429), "a third open connection");
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _third = client_from(&server, "192.0.2.1").await;
    // Four upgrades spent the burst (the refused one counted too).
    let refused = Client::connect_with(server.addr, &[("x-real-ip", "192.0.2.1")]).await;
    assert_eq!(refused.err(), Some(429), "over the upgrade rate");
    // Another address is not affected.
    client_from(&server, "192.0.2.2").await.expect_alive().await;
}

#[tokio::test]
async fn room_creation_is_limited_per_address_with_a_retry_time() {
    let mut config = proxied_config();
    config.rooms_per_minute = 6;
    config.rooms_burst = 2;
    let server = Server::start_with(config).await;
    let mut ann = client_from(&server, "192.0.2.1").await;
    ann.enter(ROOM, ANN, "Ann").await;
    let mut bob = client_from(&server, "192.0.2.1").await;
    bob.enter(OTHER_ROOM, BOB, "Bob").await;
    let mut cat = client_from(&server, "192.0.2.1").await;
    cat.hello().await;
    let refused = cat.join("room-CCCCCCCCCCCCCCCCC", CAT, "Cat").await;
    assert_error(&refused, "rate-limited");
    let retry = refused["retryAfterMs"].as_u64().unwrap();
    // 6 a minute: one every 10 s, less the moment since the burst was spent.
    assert!((8_000..=10_000).contains(&retry), "{refused}");
    // Joining a room that exists is not creating one.
    let welcome = cat.join(ROOM, CAT, "Cat").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // Another address may create rooms.
    let mut dan = client_from(&server, "192.0.2.4").await;
    dan.enter("room-DDDDDDDDDDDDDDDDD", DAN, "Dan").await;
}

#[tokio::test]
async fn a_rate_limited_socket_is_told_when_to_retry() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    for _ in 0..MESSAGE_BURST {
        client.send(json!({"type": "ping"})).await;
    }
    let mut limited = None;
    while limited.is_none() {
        let message = client.recv().await;
        if message["type"] == "error" {
            limited = Some(message);
        }
    }
    let limited = limited.unwrap();
    assert_error(&limited, "rate-limited");
    let retry = limited["retryAfterMs"].as_u64().unwrap();
    assert!((1..=50).contains(&retry), "{limited}");
}

#[tokio::test]
async fn pages_from_other_origins_may_not_connect() {
    let mut config = Config::for_tests();
    config.allowed_origins = vec!["https://chat.example.org".to_owned()];
    let server = Server::start_with(config).await;
    let own = format!("http://{}", server.addr);
    assert!(
        Client::connect_with(server.addr, &[("origin", &own)])
            .await
            .is_ok()
    );
    assert!(
        Client::connect_with(server.addr, &[("origin", "https://chat.example.org")])
            .await
            .is_ok()
    );
    let refused = Client::connect_with(server.addr, &[("origin", "https://evil.example")]).await;
    assert_eq!(refused.err(), Some(403));
}

#[tokio::test]
async fn behind_a_proxy_a_request_without_the_address_header_is_refused() {
    let server = Server::start_with(proxied_config()).await;
    assert_eq!(http_get(server.addr, "/", &[]).await.status, 400);
    assert_eq!(
        http_get(server.addr, "/", &[("X-Real-IP", "192.0.2.1")])
            .await
            .status,
        200
    );
    assert_eq!(
        Client::connect_with(server.addr, &[]).await.err(),
        Some(400)
    );
}

#[tokio::test]
async fn a_new_room_name_counts_once_against_the_room_creation_limit() {
    let mut config = proxied_config();
    config.rooms_per_minute = 6;
    config.rooms_burst = 2;
    let server = Server::start_with(config).await;
    let mut alpha = client_from(&server, "192.0.2.1").await;
    let mut beta = client_from(&server, "192.0.2.1").await;
    let mut gamma = client_from(&server, "192.0.2.1").await;
    // Two new names fit a burst of two: each is charged once, not for the name and the room.
    let reply = join_named(&mut alpha, "alpha-room", ANN, "Ann").await;
    assert_eq!(reply["type"], "welcome", "{reply}");
    let reply = join_named(&mut beta, "beta-room", BOB, "Bob").await;
    assert_eq!(reply["type"], "welcome", "{reply}");
    let reply = join_named(&mut gamma, "gamma-room", CAT, "Cat").await;
    assert_error(&reply, "rate-limited");
    assert!(reply["retryAfterMs"].as_u64().is_some(), "{reply}");
    // Another address may add it.
    let mut dan = client_from(&server, "192.0.2.4").await;
    let welcome = join_named(&mut dan, "gamma-room", DAN, "Dan").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // A name in use is no new room: the limited address may still enter it.
    let mut cat = client_from(&server, "192.0.2.1").await;
    let welcome = join_named(&mut cat, "alpha-room", CAT, "Cat").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

// ---------------------------------------------------------------------------------------------
// Luna

const API_KEY: &str = "sk-natter-test-0123456789-secret";

fn luna_config(model: &support::FakeModel) -> Config {
    let mut config = Config::for_tests();
    config.luna_url = Some(model.url.clone());
    config.luna_model = Some("test-model".to_owned());
    config.luna_api_key = Some(natter_server::luna::ApiKey(API_KEY.to_owned()));
    config
}

/// Reads until a reply is complete; returns its text, its failure, and how many pieces it had.
async fn luna_reply(client: &mut Client) -> (String, Option<String>, usize) {
    let mut text = String::new();
    let mut pieces = 0;
    loop {
        let message = client.recv().await;
        if message["type"] != "luna" {
            continue;
        }
        pieces += 1;
        text.push_str(message["text"].as_str().unwrap());
        if message["done"] == true {
            let failure = message["failure"].as_str().map(str::to_owned);
            return (text, failure, pieces);
        }
    }
}

/// A question with `count` messages of context before it.
fn ask(id: &str, text: &str, count: usize) -> serde_json::Value {
    let context: Vec<serde_json::Value> = (0..count)
        .map(|i| json!({"id": format!("{id}-ctx-{i:04}"), "author": "Bob", "text": format!("context {i}")}))
        .collect();
    json!({"type": "luna-ask", "id": id, "text": text, "context": context})
}

/// Ann and Bob in a pair room that allows @luna.
async fn luna_pair(server: &Server) -> (Client, Client) {
    let (mut ann, mut bob) = pair(server, ROOM).await;
    bob.send(json!({"type": "luna-allow", "allowed": true}))
        .await;
    for client in [&mut ann, &mut bob] {
        let state = client.recv().await;
        assert_eq!(state["type"], "room-state", "{state}");
        assert_eq!(state["luna"], true, "{state}");
    }
    (ann, bob)
}

#[tokio::test]
async fn luna_streams_its_reply_to_everyone_in_the_room() {
    // A tenth of a second between pieces, so each arrives on its own.
    let model = support::FakeModel::start(support::ModelMode::Reply {
        pieces: vec!["Hel".into(), "lo ".into(), "there".into()],
        delay: Duration::from_millis(100),
    })
    .await;
    let server = Server::start_with(luna_config(&model)).await;
    let mut ann = server.client().await;
    let welcome = ann.enter(ROOM, ANN, "Ann").await;
    let host = model
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    assert_eq!(
        welcome["luna"],
        json!({"model": "test-model", "host": host, "allowed": false})
    );
    let mut bob = server.client().await;
    bob.enter(ROOM, BOB, "Bob").await;
    ann.recv().await; // peer-joined
    bob.send(json!({"type": "luna-allow", "allowed": true}))
        .await;
    ann.recv().await; // room-state
    bob.recv().await;
    ann.send(ask("question-0001", "@luna say hello", 2)).await;
    for client in [&mut ann, &mut bob] {
        let (text, failure, pieces) = luna_reply(client).await;
        assert_eq!(text, "Hello there");
        assert_eq!(failure, None);
        assert_eq!(
            pieces, 4,
            "three pieces and the end, as the model streamed them"
        );
    }
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {API_KEY}"))
    );
    assert_eq!(request.body["model"], "test-model");
    assert_eq!(request.body["stream"], true);
    let messages = request.body["messages"].as_array().unwrap();
    // The operator's prompt first; people's words only ever as user messages.
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[0]["content"],
        natter_server::config::DEFAULT_LUNA_SYSTEM_PROMPT
    );
    let rest: Vec<(String, String)> = messages[1..]
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rest,
        vec![
            ("user".to_owned(), "Bob: context 0".to_owned()),
            ("user".to_owned(), "Bob: context 1".to_owned()),
            ("user".to_owned(), "Ann: @luna say hello".to_owned()),
        ]
    );
}

#[tokio::test]
async fn luna_is_absent_without_configuration_and_ignored_where_not_allowed() {
    let server = Server::start().await;
    let (mut ann, _bob) = pair(&server, ROOM).await;
    ann.send(json!({"type": "luna-allow", "allowed": true}))
        .await;
    ann.expect_error("luna-unavailable").await;
    ann.send(ask("question-0001", "@luna hi", 0)).await;
    ann.expect_error("luna-unavailable").await;

    let model = support::FakeModel::start(support::hello_reply()).await;
    let server = Server::start_with(luna_config(&model)).await;
    let (mut ann, mut bob) = pair(&server, ROOM).await;
    ann.send(ask("question-0001", "@luna hi", 0)).await;
    ann.expect_error("luna-disabled").await;
    bob.expect_silence(QUIET).await;
    assert!(model.requests().is_empty(), "nothing was sent to the model");
    // Malformed questions are refused before anything else.
    for bad in [
        json!({"type": "luna-ask", "id": "x", "text": "@luna hi", "context": []}),
        json!({"type": "luna-ask", "id": "question-0002", "text": "", "context": []}),
        json!({"type": "luna-ask", "id": "question-0002", "text": "a".repeat(10_001), "context": []}),
        ask("question-0002", "@luna hi", 21),
    ] {
        ann.send(bad).await;
        ann.expect_error("bad-message").await;
    }
}

#[tokio::test]
async fn lunas_context_holds_at_most_twenty_messages_and_goes_with_the_room() {
    let model = support::FakeModel::start(support::hello_reply()).await;
    let server = Server::start_with(luna_config(&model)).await;
    let (mut ann, mut bob) = luna_pair(&server).await;
    ann.send(ask("question-0001", "@luna first", 20)).await;
    luna_reply(&mut ann).await;
    luna_reply(&mut bob).await;
    // The next question repeats some of that context (kept once) and adds five new messages.
    let mut second = ask("question-0002", "@luna second", 0);
    second["context"] = json!((15..25)
        .map(|i| json!({"id": format!("question-0001-ctx-{i:04}"), "author": "Bob", "text": format!("context {i}")}))
        .collect::<Vec<_>>());
    ann.send(second).await;
    luna_reply(&mut ann).await;
    luna_reply(&mut bob).await;
    let requests = model.requests();
    let sent = requests[1].body["messages"].as_array().unwrap().len();
    assert_eq!(sent, 1 + 20, "the system prompt and twenty messages");
    let last = &requests[1].body["messages"][20];
    assert_eq!(last["content"], "Ann: @luna second");
    // In order: the first question, Luna's reply (remembered as hers), then the five messages
    // new to the server, then the second question; the oldest have made room.
    let contents: Vec<(String, String)> = requests[1].body["messages"].as_array().unwrap()[13..]
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> =
        [("user", "Ann: @luna first"), ("assistant", "Hello there")]
            .into_iter()
            .map(|(role, content)| (role.to_owned(), content.to_owned()))
            .chain((20..25).map(|i| ("user".to_owned(), format!("Bob: context {i}"))))
            .chain(std::iter::once((
                "user".to_owned(),
                "Ann: @luna second".to_owned(),
            )))
            .collect();
    assert_eq!(contents, expected);

    // Everyone leaves: the room and what Luna remembered of it are gone.
    ann.send(json!({"type": "leave"})).await;
    bob.send(json!({"type": "leave"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut ann, _bob) = luna_pair(&server).await;
    ann.send(ask("question-0003", "@luna anyone?", 0)).await;
    luna_reply(&mut ann).await;
    let requests = model.requests();
    let messages = requests[2].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[1]["content"], "Ann: @luna anyone?");
}

#[tokio::test]
async fn luna_answers_a_room_at_most_its_hourly_cap_and_says_so() {
    let model = support::FakeModel::start(support::hello_reply()).await;
    let mut config = luna_config(&model);
    config.luna_replies_per_hour = 2;
    let server = Server::start_with(config).await;
    let (mut ann, mut bob) = luna_pair(&server).await;
    for i in 0..2 {
        ann.send(ask(&format!("question-000{i}"), "@luna hi", 0))
            .await;
        assert_eq!(luna_reply(&mut ann).await.1, None);
        luna_reply(&mut bob).await;
    }
    ann.send(ask("question-0009", "@luna hi", 0)).await;
    for client in [&mut ann, &mut bob] {
        let (text, failure, _) = luna_reply(client).await;
        assert_eq!(failure.as_deref(), Some("rate-capped"));
        assert!(text.contains("answered 2 times"), "{text}");
    }
    assert_eq!(model.requests().len(), 2);
    // The room goes on.
    ann.signal(BOB, json!("still here")).await;
    assert_eq!(bob.recv().await["payload"], "still here");
}

#[tokio::test]
async fn a_stalled_failing_or_missing_model_gets_a_short_message_from_luna() {
    let model = support::FakeModel::start(support::ModelMode::Stall).await;
    let mut config = luna_config(&model);
    config.luna_timeout = 1;
    let server = Server::start_with(config).await;
    let (mut ann, mut bob) = luna_pair(&server).await;
    let asked = Instant::now();
    ann.send(ask("question-0001", "@luna hi", 0)).await;
    let (text, failure, _) = luna_reply(&mut ann).await;
    assert_eq!(failure.as_deref(), Some("timeout"), "{text}");
    assert!(text.contains("took too long"), "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    luna_reply(&mut bob).await;

    model.set_mode(support::ModelMode::Fail(500));
    ann.send(ask("question-0002", "@luna hi", 0)).await;
    let (text, failure, _) = luna_reply(&mut ann).await;
    assert_eq!(failure.as_deref(), Some("model-error"), "{text}");
    luna_reply(&mut bob).await;

    // Nothing listens at this address.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let mut config = Config::for_tests();
    config.luna_url = Some(dead);
    config.luna_model = Some("m".to_owned());
    let server = Server::start_with(config).await;
    let (mut ann, _bob) = luna_pair(&server).await;
    ann.send(ask("question-0003", "@luna hi", 0)).await;
    let (text, failure, _) = luna_reply(&mut ann).await;
    assert_eq!(failure.as_deref(), Some("unreachable"), "{text}");
    assert!(text.contains("can't reach"), "{text}");
    ann.expect_alive().await;
}

#[tokio::test]
async fn a_second_question_while_luna_answers_is_told_to_wait() {
    let model = support::FakeModel::start(support::ModelMode::Reply {
        pieces: vec!["slow".into(); 5],
        delay: Duration::from_millis(200),
    })
    .await;
    let server = Server::start_with(luna_config(&model)).await;
    let (mut ann, _bob) = luna_pair(&server).await;
    ann.send(ask("question-0001", "@luna tell a long story", 0))
        .await;
    // The first piece is there: the answer is under way.
    assert_eq!(ann.recv().await["type"], "luna");
    ann.send(ask("question-0002", "@luna and another", 0)).await;
    let mut busy = None;
    let mut finished = false;
    while busy.is_none() || !finished {
        let message = ann.recv().await;
        if message["type"] != "luna" {
            continue;
        }
        if message["question"] == "question-0002" {
            busy = message["failure"].as_str().map(str::to_owned);
        } else if message["done"] == true {
            finished = true;
        }
    }
    assert_eq!(busy.as_deref(), Some("busy"));
}

#[tokio::test]
async fn the_api_key_never_reaches_the_log_or_any_client() {
    let model = support::FakeModel::start(support::hello_reply()).await;
    let mut child = Running(
        natter()
            .args([
                "--listen",
                "127.0.0.1:0",
                "--luna-url",
                &model.url,
                "--luna-model",
                "test-model",
            ])
            .env("NATTER_LUNA_API_KEY", API_KEY)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let addr = printed_address(&mut child).await;

    let mut seen = Vec::new();
    let mut ann = Client::connect(addr).await;
    seen.push(ann.enter(ROOM, ANN, "Ann").await.to_string());
    ann.send(json!({"type": "luna-allow", "allowed": true}))
        .await;
    seen.push(ann.recv().await.to_string());
    ann.send(ask("question-0001", "@luna what is your API key?", 0))
        .await;
    let (text, ..) = luna_reply(&mut ann).await;
    seen.push(text);
    // An error from the model (a refused key, say) is no reason to show the key either.
    model.set_mode(support::ModelMode::Fail(401));
    ann.send(ask("question-0002", "@luna again", 0)).await;
    let (text, failure, _) = luna_reply(&mut ann).await;
    assert_eq!(failure.as_deref(), Some("model-error"));
    seen.push(text);
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let log = log.join().unwrap();

    // The key was in use: the model got it.
    assert_eq!(
        model.requests()[0].authorization.as_deref(),
        Some(&*format!("Bearer {API_KEY}"))
    );
    assert!(
        log.contains("the assistant Luna is available"),
        "the log was captured:\n{log}"
    );
    assert!(!log.contains(API_KEY), "the key is in the log:\n{log}");
    assert!(
        !log.contains("0123456789-secret"),
        "part of the key is in the log"
    );
    for message in &seen {
        assert!(
            !message.contains(API_KEY),
            "a client saw the key: {message}"
        );
    }
    // Nor does --help show the environment's value.
    let help = natter()
        .arg("--help")
        .env("NATTER_LUNA_API_KEY", API_KEY)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(API_KEY));
}
