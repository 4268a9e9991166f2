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

// ---------------------------------------------------------------------------------------------
// The bot check

#[tokio::test]
async fn one_address_cannot_raise_everyones_difficulty() {
    let server = Server::start_with(proxied_config()).await;
    let base = natter_server::Config::for_tests().pow_difficulty;
    // One address, thirty sockets, each saying hello a hundred times and sending five joins
    // with wrong proofs: before, every hello was a challenge and the load ran 16 times over.
    let mut sockets = Vec::new();
    for _ in 0..30 {
        let mut socket = client_from(&server, "203.0.113.66").await;
        for _ in 0..100 {
            socket.send_text(r#"{"type":"hello","version":1}"#).await;
        }
        for _ in 0..5 {
            let join = json!({"type": "join", "room": crate::support::ROOM, "peer": ANN,
                "name": "Bot", "proof": {"challenge": "1.2.3.4", "nonce": 1}});
            socket.send_text(join.to_string()).await;
        }
        sockets.push(socket);
    }
    // The load is measured over 10 s windows: wait for the attack's window to be the last one.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut ann = client_from(&server, "192.0.2.1").await;
    ann.send(json!({"type": "hello", "version": 1})).await;
    assert_eq!(ann.recv().await["type"], "hello");
    let (_, difficulty) = ann.take_challenge().await;
    assert_eq!(difficulty, base, "one address moved the difficulty");
    drop(sockets);
    legitimate_pair_talks(&server, crate::support::OTHER_ROOM).await;
}

/// `join-named` for a name nobody has used, as a browser does it: a proof at the difficulty it
/// was asked, and once more at the harder difficulty when the server says a new name needs it.
/// `secret` proves `peer`. Returns the final answer and the difficulties the challenges asked.
async fn create_name(
    client: &mut crate::support::Client,
    room_name: &str,
    peer: &str,
    secret: &str,
) -> (serde_json::Value, Vec<u64>) {
    let mut asked = Vec::new();
    for _ in 0..2 {
        let (token, difficulty) = client.take_challenge().await;
        asked.push(difficulty);
        let nonce = natter_proto::pow::solve(&token, difficulty);
        let join = json!({"type": "join-named", "roomName": room_name, "peer": peer,
            "peerSecret": secret, "name": "Someone", "proof": {"challenge": token, "nonce": nonce}});
        client.send(join).await;
        let answer = client.recv().await;
        if answer["code"] != "harder-proof-required" {
            return (answer, asked);
        }
    }
    panic!("a new name was refused twice for its proof");
}

#[tokio::test]
async fn a_new_room_name_costs_four_joins_of_work_and_an_existing_one_costs_one() {
    let server = Server::start_with(proxied_config()).await;
    let base = natter_server::Config::for_tests().pow_difficulty;
    let harder = base * natter_proto::limits::NEW_NAME_PROOF_FACTOR;
    let mut ann = client_from(&server, "192.0.2.1").await;
    ann.hello().await;
    let (welcome, asked) = create_name(&mut ann, "book-club", ANN, secret_of(ANN).unwrap()).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        asked,
        [base, harder],
        "the first proof was refused and the next challenge asked four times the work"
    );
    // Bob joins the name that now exists with a proof at the ordinary difficulty.
    let mut bob = client_from(&server, "192.0.2.2").await;
    bob.hello().await;
    let (welcome, asked) = create_name(&mut bob, "book-club", BOB, secret_of(BOB).unwrap()).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(asked, [base]);

    // A bot that will not pay: its cheap proof for a new name is refused without counting as a
    // bad proof, and the challenge that follows cannot be answered at the ordinary difficulty.
    // Six tries, three of them refused proofs: within the tolerance, so the socket stays.
    let mut bot = client_from(&server, "203.0.113.66").await;
    bot.hello().await;
    let mut refused_names = Vec::new();
    for attempt in 0..=BAD_PROOF_TOLERANCE {
        let (token, difficulty) = bot.take_challenge().await;
        // After a cheap proof for a new name, the next challenge asks the higher difficulty.
        let expected = if attempt % 2 == 0 { base } else { harder };
        assert_eq!(difficulty, expected, "attempt {attempt}");
        // A number that solves the challenge at the ordinary difficulty but not the higher one.
        let solves = |nonce| natter_proto::pow::meets_difficulty(&token, nonce, base);
        let solves_harder = |nonce| natter_proto::pow::meets_difficulty(&token, nonce, harder);
        let nonce = (0..u64::MAX)
            .find(|&nonce| solves(nonce) && !solves_harder(nonce))
            .unwrap_or_default();
        let name = format!("spam-{attempt}");
        let join = json!({"type": "join-named", "roomName": name, "peer": CAT, "name": "Bot",
            "proof": {"challenge": token, "nonce": nonce}});
        bot.send(join).await;
        let answer = bot.recv().await;
        // A cheap answer to the harder challenge is a refused proof (and counts toward the
        // socket's tolerance); to a cheap challenge, a demand for more work (which does not).
        if difficulty == base {
            assert_error(&answer, "harder-proof-required");
        } else {
            assert_error(&answer, "bad-proof");
        }
        refused_names.push(name);
    }
    still_connected(&mut bot).await;
    // None of the names the bot tried exists: Dan, trying one, is asked to pay for a new name.
    let mut dan = client_from(&server, "198.51.100.8").await;
    dan.hello().await;
    let (welcome, asked) =
        create_name(&mut dan, &refused_names[0], DAN, secret_of(DAN).unwrap()).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(asked, [base, harder]);
}

#[tokio::test]
async fn one_network_cannot_fill_the_room_name_table() {
    let mut config = proxied_config();
    // 4 an hour per address (bursts of 2), 20 an hour per /24 (bursts of 10).
    config.names_per_hour = 4;
    let server = Server::start_with(config).await;
    let mut created = 0;
    let mut refused_per_address = Vec::new();
    // Eight addresses of one /24, each trying three new names.
    for host in 1..=8 {
        let mut bot = client_from(&server, &format!("203.0.113.{host}")).await;
        bot.hello().await;
        let (peer, secret) = new_person();
        let mut refused = 0;
        for attempt in 0..3 {
            let name = format!("squat-{host}-{attempt}");
            let (answer, _) = create_name(&mut bot, &name, &peer, &secret).await;
            if answer["type"] == "welcome" {
                created += 1;
                bot.send(json!({"type": "leave"})).await;
            } else {
                assert_error(&answer, "rate-limited");
                assert!(
                    answer["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0),
                    "{answer}"
                );
                refused += 1;
            }
        }
        refused_per_address.push(refused);
    }
    // Each address got its burst of 2 until the network's burst of 10 ran out.
    assert_eq!(created, 10, "names created from one /24");
    assert_eq!(refused_per_address, [1, 1, 1, 1, 1, 3, 3, 3]);
    // Someone on another network names a room as usual.
    let mut ann = client_from(&server, "198.51.100.7").await;
    ann.hello().await;
    let (welcome, _) = create_name(&mut ann, "family", ANN, secret_of(ANN).unwrap()).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}
