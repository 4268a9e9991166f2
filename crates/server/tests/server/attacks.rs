//! Attacks from docs/protocol.md's point of view, written as a hostile member or a hostile
//! address would try them, each asserting what the victim and a legitimate pair of people from
//! another address experience: nothing, or a clear documented error.

use std::time::Duration;

use natter_proto::limits::BAD_PROOF_TOLERANCE;
use serde_json::json;

use crate::support::{ANN, BOB, CAT, DAN, Server, assert_error, new_person, pair, secret_of};
use crate::{QUIET, client_from, join_group, proxied_config};

/// A join for `peer` written by hand, so the test chooses exactly what proves (or fails to prove)
/// the id; `proof` is the solved challenge.
fn impostor_join(room: &str, peer: &str, secret: Option<&str>, proof: serde_json::Value) -> String {
    let mut join =
        json!({"type": "join", "room": room, "peer": peer, "name": "Ann", "proof": proof});
    if let Some(secret) = secret {
        join["peerSecret"] = json!(secret);
    }
    join.to_string()
}

/// Cat and Dan, from an address of their own, open a pair room and exchange a signal: what a
/// legitimate pair does while an attack goes on.
async fn legitimate_pair_talks(server: &Server, room: &str) {
    let mut cat = client_from(server, "198.51.100.7").await;
    cat.enter(room, CAT, "Cat").await;
    let mut dan = client_from(server, "198.51.100.8").await;
    dan.enter(room, DAN, "Dan").await;
    assert_eq!(cat.recv().await["type"], "peer-joined");
    dan.signal(CAT, json!({"sdp": "offer"})).await;
    let signal = cat.recv().await;
    assert_eq!(signal["from"], DAN, "{signal}");
}

#[tokio::test]
async fn knowing_the_owners_peer_id_takes_nothing_from_them() {
    let server = Server::start_with(proxied_config()).await;
    let mut ann = client_from(&server, "192.0.2.1").await;
    let welcome = join_group(&mut ann, ANN, "Ann").await;
    assert_eq!(welcome["owner"], ANN, "{welcome}");
    let mut bob = client_from(&server, "192.0.2.2").await;
    assert_eq!(join_group(&mut bob, BOB, "Bob").await["type"], "welcome");
    assert_eq!(ann.recv().await["type"], "peer-joined");

    // Mallory, a member of the room on another socket, knows Ann's id from `welcome` and tries
    // it: with a malformed secret (refused as it is read), without a secret, and with her own
    // (valid, but it proves another id). Each join is refused with peer-unproven, the last two
    // with a new challenge for the next try.
    let (_, mallorys_secret) = new_person();
    let mut mallory = client_from(&server, "203.0.113.66").await;
    mallory.hello().await;
    let room = crate::support::ROOM;
    mallory
        .send_text(impostor_join(room, ANN, Some("not-a-secret"), json!(null)))
        .await;
    let refusal = mallory.recv().await;
    assert_error(&refusal, "peer-unproven");
    assert!(!refusal.to_string().contains("not-a-secret"), "{refusal}");
    let tries = [None, Some(mallorys_secret.as_str())];
    for secret in tries {
        let proof = mallory.proof().await;
        mallory
            .send_text(impostor_join(room, ANN, secret, proof))
            .await;
        mallory.expect_error("peer-unproven").await;
    }
    // Not in the room: nothing of it reaches her.
    mallory.signal(BOB, json!("for Ann's eyes")).await;
    mallory.expect_error("not-joined").await;

    // Ann noticed nothing: not closed, not replaced, still the owner; Bob saw nobody come.
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
    ann.send(json!({"type": "lock", "locked": true})).await;
    assert_eq!(ann.recv().await["type"], "room-state");
    bob.signal(ANN, json!({"sdp": "to Ann"})).await;
    let signal = ann.recv().await;
    assert_eq!(
        signal["from"], BOB,
        "the signals for Ann still reach Ann: {signal}"
    );

    // Past the tolerance for refused joins the impostor's socket is closed with 1008.
    let tolerance = usize::try_from(BAD_PROOF_TOLERANCE).unwrap();
    for _ in tries.len()..tolerance {
        let proof = mallory.proof().await;
        mallory
            .send_text(impostor_join(crate::support::ROOM, ANN, None, proof))
            .await;
        mallory.expect_error("peer-unproven").await;
    }
    let proof = mallory.proof().await;
    mallory
        .send_text(impostor_join(crate::support::ROOM, ANN, None, proof))
        .await;
    mallory.expect_error("peer-unproven").await;
    mallory.expect_close(1008).await;
    ann.expect_silence(QUIET).await;

    legitimate_pair_talks(&server, crate::support::OTHER_ROOM).await;
}

#[tokio::test]
async fn a_pair_rooms_signals_stay_with_the_person_who_proved_the_id() {
    let server = Server::start_with(proxied_config()).await;
    let mut ann = client_from(&server, "192.0.2.1").await;
    ann.enter(crate::support::ROOM, ANN, "Ann").await;
    let mut bob = client_from(&server, "192.0.2.2").await;
    bob.enter(crate::support::ROOM, BOB, "Bob").await;
    assert_eq!(ann.recv().await["type"], "peer-joined");
    // Bob drops; while his place is kept, an impostor presents his id without his secret.
    drop(bob);
    let mut mallory = client_from(&server, "203.0.113.66").await;
    mallory.hello().await;
    let proof = mallory.proof().await;
    mallory
        .send_text(impostor_join(crate::support::ROOM, BOB, None, proof))
        .await;
    mallory.expect_error("peer-unproven").await;
    // Ann's offer does not reach the impostor.
    ann.signal(BOB, json!({"sdp": "Ann's offer"})).await;
    mallory.expect_silence(QUIET).await;
    // The real Bob, with his secret, takes his place back and reads on.
    bob = client_from(&server, "192.0.2.2").await;
    let welcome = {
        bob.hello().await;
        bob.join(crate::support::ROOM, BOB, "Bob").await
    };
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], true, "{welcome}");
    ann.signal(BOB, json!({"sdp": "again"})).await;
    let mut got = bob.recv().await;
    // A signal sent while Bob was away may come first; Ann's latest follows.
    if got["payload"]["sdp"] == "Ann's offer" {
        got = bob.recv().await;
    }
    assert_eq!(got["payload"]["sdp"], "again", "{got}");
}

#[tokio::test]
async fn a_second_tab_with_the_secret_still_takes_over_its_own_place() {
    let server = Server::start().await;
    let (mut ann, mut old_bob) = pair(&server, crate::support::ROOM).await;
    let mut new_bob = server.client().await;
    new_bob.hello().await;
    let secret = secret_of(BOB).unwrap();
    let proof = new_bob.proof().await;
    new_bob
        .send(
            json!({"type": "join", "room": crate::support::ROOM, "peer": BOB, "name": "Bob",
            "peerSecret": secret, "proof": proof}),
        )
        .await;
    assert_eq!(new_bob.recv().await["resumed"], true);
    old_bob.expect_error("replaced").await;
    old_bob.expect_close(4000).await;
    ann.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_peer_secret_never_comes_back_in_any_message() {
    let server = Server::start().await;
    let (id, secret) = new_person();
    let mut client = server.client().await;
    client.hello().await;
    let proof = client.proof().await;
    client
        .send(
            json!({"type": "join", "room": crate::support::ROOM, "peer": id, "name": "Eve",
            "peerSecret": secret, "proof": proof}),
        )
        .await;
    let welcome = client.recv().await;
    assert_eq!(welcome["peer"], id.as_str());
    assert!(!welcome.to_string().contains(&secret), "{welcome}");
}

/// An offer with `sections` receive-only audio sections, as a hostile client writes one.
fn offer_with_sections(sections: usize) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for mid in 0..sections {
        sdp.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=recvonly\r\n"
        ));
    }
    sdp
}

#[tokio::test]
async fn an_offer_with_a_thousand_sections_is_refused_before_the_relay_parses_it() {
    let server = Server::start_with(proxied_config()).await;
    let mut mallory = client_from(&server, "203.0.113.66").await;
    assert_eq!(
        join_group(&mut mallory, ANN, "Mallory").await["type"],
        "welcome"
    );
    let per_offer = natter_server::Config::for_tests().media_sections_per_offer();
    mallory
        .send(json!({"type": "sfu-offer", "sdp": offer_with_sections(1000), "tracks": []}))
        .await;
    let refusal = mallory.recv().await;
    assert_error(&refusal, "bad-offer");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains(&per_offer.to_string()), "{refusal}");
    // A refusal, not a punishment: the socket stays.
    mallory.expect_alive().await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_of_the_relay_than_its_budget() {
    let mut config = proxied_config();
    config.media_sections_per_address = 16;
    let server = Server::start_with(config).await;
    // Ann, from her own address, is in the room with a real connection to the relay.
    let mut ann = client_from(&server, "192.0.2.1").await;
    assert_eq!(join_group(&mut ann, ANN, "Ann").await["type"], "welcome");
    let (_ann_media, sdp, tracks) = crate::synthetic_participant(true);
    ann.send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": tracks}))
        .await;
    assert_eq!(ann.recv().await["type"], "sfu-answer");

    // Mallory's first socket takes 12 sections of her address's 16; her second asks for 8 more
    // and is closed with over-budget and 4006. Her first is untouched.
    let mut first = client_from(&server, "203.0.113.66").await;
    assert_eq!(join_group(&mut first, BOB, "Bob").await["type"], "welcome");
    first
        .send(json!({"type": "sfu-offer", "sdp": offer_with_sections(12), "tracks": []}))
        .await;
    let (eve, eves_secret) = new_person();
    let mut second = client_from(&server, "203.0.113.66").await;
    second.hello().await;
    let proof = second.proof().await;
    second
        .send(
            json!({"type": "join", "room": crate::support::ROOM, "kind": "group", "peer": eve,
            "peerSecret": eves_secret, "name": "Eve", "proof": proof}),
        )
        .await;
    assert_eq!(second.recv().await["type"], "welcome");
    second
        .send(json!({"type": "sfu-offer", "sdp": offer_with_sections(8), "tracks": []}))
        .await;
    loop {
        let message = second.recv().await;
        if message["type"] == "peer-left" || message["type"] == "peer-joined" {
            continue;
        }
        assert_error(&message, "over-budget");
        break;
    }
    second.expect_close(4006).await;

    // A smaller offer fits: the budget counts what each connection holds now, not what it asked.
    first
        .send(json!({"type": "sfu-offer", "sdp": offer_with_sections(4), "tracks": []}))
        .await;
    // Another address has a budget of its own, and Ann's connection carries on.
    let mut cat = client_from(&server, "198.51.100.7").await;
    assert_eq!(join_group(&mut cat, CAT, "Cat").await["type"], "welcome");
    let (_cat_media, sdp, tracks) = crate::synthetic_participant(true);
    cat.send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": tracks}))
        .await;
    loop {
        let message = cat.recv().await;
        if message["type"] == "sfu-answer" {
            break;
        }
        assert_ne!(message["type"], "error", "{message}");
    }
    still_connected(&mut ann).await;
}

/// Asserts the socket still answers, past whatever room traffic (`sfu-tracks`, `peer-joined`)
/// arrives meanwhile, none of it an error.
async fn still_connected(client: &mut crate::support::Client) {
    client.send(json!({"type": "ping"})).await;
    loop {
        let message = client.recv().await;
        if message["type"] == "pong" {
            return;
        }
        assert_ne!(message["type"], "error", "{message}");
    }
}

#[tokio::test]
async fn a_second_hello_is_refused_and_earns_no_challenge() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    for _ in 0..3 {
        client.send(json!({"type": "hello", "version": 1})).await;
        client.expect_error("bad-message").await;
    }
    // The challenge from the first hello is still the one to solve: no other came.
    let welcome = client.join(crate::support::ROOM, ANN, "Ann").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, coding::Data, coding::OpCode};
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    let frame = Frame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
    client
        .send_frame(tokio_tungstenite::tungstenite::Message::Frame(frame))
        .await;
    client.expect_error("bad-message").await;
    client.expect_close(1007).await;
}

#[tokio::test]
async fn a_ping_flood_is_closed_like_a_message_flood() {
    let server = Server::start().await;
    let mut client = server.client().await;
    client.hello().await;
    let mut sent = 0;
    while sent < 5_000
        && client
            .try_send_frame(tokio_tungstenite::tungstenite::Message::Ping(
                Default::default(),
            ))
            .await
    {
        sent += 1;
    }
    // Somewhere past the burst and the flood tolerance the server closes: 1008 and rate-limited.
    loop {
        match client.next_event().await {
            crate::support::Event::Message(message) => {
                assert_error(&message, "rate-limited");
            }
            crate::support::Event::Closed(code) => {
                assert_eq!(code, Some(1008));
                break;
            }
            crate::support::Event::Ended(why) => panic!("ended without a close frame: {why}"),
        }
    }
    assert!(sent < 5_000 || sent > 160, "{sent}");
}

#[tokio::test]
async fn a_refused_offer_names_the_problem_and_nothing_of_the_servers_insides() {
    let server = Server::start().await;
    let mut mallory = server.client().await;
    assert_eq!(
        join_group(&mut mallory, ANN, "Mallory").await["type"],
        "welcome"
    );
    // Inputs that make str0m's SDP parser report positions and internal state.
    for sdp in [
        "v=0\r\nm=",
        "certainly not SDP",
        "v=0\r\no=- x\r\nm=audio nine\r\n",
        "\u{0}\u{1}",
    ] {
        mallory
            .send(json!({"type": "sfu-offer", "sdp": sdp, "tracks": []}))
            .await;
        let refusal = mallory.recv().await;
        assert_error(&refusal, "bad-offer");
        let message = refusal["message"].as_str().unwrap();
        for inside in ["0x", "Pointer", "Offset", "panicked", "str0m", "line "] {
            assert!(!message.contains(inside), "{message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Slowloris: connections that never finish their requests

/// A TCP connection to `server` from the loopback address `from` (any of 127.0.0.0/8 is this
/// host, so each stands for another client address).
async fn tcp_from(server: &Server, from: [u8; 4]) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    socket.connect(server.addr).await.unwrap()
}

/// How long until the server closes `stream` (reads return 0 or fail), at most `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + within, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn requests_sent_too_slowly_and_idle_connections_are_closed_after_10_s() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    // One that trickles its headers a byte a second, one that says nothing, and one that made a
    // request and keeps the connection open without another.
    let mut trickle = tcp_from(&server, [127, 0, 0, 21]).await;
    let mut silent = tcp_from(&server, [127, 0, 0, 22]).await;
    let mut kept_alive = tcp_from(&server, [127, 0, 0, 23]).await;
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: natter\r\n\r\n")
        .await
        .unwrap();
    let trickling = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: natter\r\nX-Slow: ".iter().cycle() {
            if trickle.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        trickle
    });
    let limit = Duration::from_secs(13);
    let silent_for = closed_within(&mut silent, limit).await;
    assert!(
        silent_for.is_some_and(|d| d >= Duration::from_secs(9)),
        "{silent_for:?}"
    );
    let kept_for = closed_within(&mut kept_alive, limit).await;
    assert!(
        kept_for.is_some(),
        "an idle kept-alive connection stays open"
    );
    let trickle = tokio::time::timeout(Duration::from_secs(5), trickling).await;
    assert!(
        trickle.is_ok(),
        "the trickling request is still open after 13 s"
    );
    // A legitimate pair meanwhile, and after.
    legitimate_pair_talks(&server, crate::support::ROOM).await;
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = Server::start().await;
    let per_address = natter_server::Config::for_tests().max_connections_per_ip as usize + 32;
    // The attacker opens many more half-open connections than its share.
    let mut held = Vec::new();
    for _ in 0..per_address + 40 {
        held.push(tcp_from(&server, [127, 0, 0, 66]).await);
    }
    // Its share stays open; every one past it is closed at once.
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(50))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 40, "closed past the share of {per_address}");
    // Someone else, from another address, gets in and talks as usual.
    let mut other = tcp_from(&server, [127, 0, 0, 67]).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: natter\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    other.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    legitimate_pair_talks(&server, crate::support::ROOM).await;
}

#[tokio::test]
async fn connections_still_in_http_are_limited_in_total_and_websockets_do_not_count() {
    let mut config = natter_server::Config::for_tests();
    config.max_http_connections = Some(8);
    let server = Server::start_with(config).await;
    // Two WebSockets first: once upgraded they leave the HTTP stage.
    let mut ann = server.client().await;
    ann.enter(crate::support::ROOM, ANN, "Ann").await;
    // Eight half-open requests from eight addresses fill the HTTP stage...
    let mut held = Vec::new();
    for last in 0..8 {
        held.push(tcp_from(&server, [127, 0, 1, last]).await);
    }
    // ...so a ninth connection is closed at once,
    let mut ninth = tcp_from(&server, [127, 0, 1, 9]).await;
    assert!(
        closed_within(&mut ninth, Duration::from_secs(2))
            .await
            .is_some()
    );
    // while the WebSocket already open carries on.
    ann.expect_alive().await;
    // When they go, others get in again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = server.client().await;
    bob.enter(crate::support::ROOM, BOB, "Bob").await;
    assert_eq!(ann.recv().await["type"], "peer-joined");
}
