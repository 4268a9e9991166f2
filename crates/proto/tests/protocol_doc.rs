//! `docs/protocol.md` is normative: every JSON example in it must parse into the Rust types and
//! serialize back to the same JSON, and every error code must be documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use natter_proto::data::{DataMessage, FileMessage, SignalPayload};
use natter_proto::{ClientMessage, ErrorCode, ServerMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const DOC: &str = include_str!("../../../docs/protocol.md");

/// (info string after "json ", example text) for every fenced JSON block.
fn examples() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut lines = DOC.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line.trim().strip_prefix("```json") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        found.push((kind.trim().to_owned(), body.join("\n")));
    }
    found
}

fn round_trips<T: Serialize + DeserializeOwned>(kind: &str, text: &str) {
    let parsed: T = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{kind} example does not parse: {error}\n{text}"));
    let original: Value = serde_json::from_str(text).unwrap();
    let again = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        again, original,
        "{kind} example does not round-trip:\n{text}"
    );
}

#[test]
fn every_example_parses_and_round_trips() {
    let examples = examples();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (kind, text) in &examples {
        match kind.as_str() {
            "client" => round_trips::<ClientMessage>(kind, text),
            "server" => round_trips::<ServerMessage>(kind, text),
            "signal-payload" => round_trips::<SignalPayload>(kind, text),
            "data" => round_trips::<DataMessage>(kind, text),
            "files" => round_trips::<FileMessage>(kind, text),
            "relay" => {
                let request = natter_proto::relay::parse_text(text.as_bytes())
                    .unwrap_or_else(|error| panic!("relay example refused: {error}\n{text}"));
                let msg: Value = serde_json::from_slice(request.payload).unwrap();
                round_trips::<DataMessage>(kind, &msg.to_string());
            }
            "relayed" => {
                let value: Value = serde_json::from_str(text).unwrap();
                let from = value["from"].as_str().unwrap().to_owned();
                natter_proto::PeerId::try_from(from).expect("a valid sender");
                round_trips::<DataMessage>(kind, &value["msg"].to_string());
            }
            other => panic!(
                "a ```json block must say client, server, signal-payload, data, files, relay or relayed, not {other:?}"
            ),
        }
        *seen.entry(kind.clone()).or_default() += 1;
    }
    assert_eq!(
        seen.get("client"),
        Some(&15),
        "one example per client message: {seen:?}"
    );
    assert_eq!(
        seen.get("server"),
        Some(&17),
        "one example per server message: {seen:?}"
    );
    assert!(seen.contains_key("signal-payload") && seen.contains_key("data"));
    assert_eq!(
        seen.get("files"),
        Some(&6),
        "one example per files message: {seen:?}"
    );
}

#[test]
fn every_joins_peer_secret_proves_its_peer_id() {
    let mut joins = 0;
    for (kind, text) in examples() {
        if kind != "client" {
            continue;
        }
        let admission_and_peer = match ClientMessage::decode(&text).unwrap() {
            ClientMessage::Join {
                peer, admission, ..
            }
            | ClientMessage::JoinNamed {
                peer, admission, ..
            } => (peer, admission),
            _ => continue,
        };
        let (peer, admission) = admission_and_peer;
        let secret = admission
            .peer_secret
            .expect("every join carries peerSecret");
        assert!(secret.proves(&peer), "{text}");
        joins += 1;
    }
    assert_eq!(joins, 2, "join and join-named");
    // The worked example in "Identity".
    let secret = natter_proto::PeerSecret::try_from(
        "Hq3Zx8Lm4Np7Rs1Vc6Ws3Hd5Jf9Ga7Ue2Yo0Ri4KtPb".to_owned(),
    )
    .unwrap();
    let worked = format!(
        "`{}` gives the peer id `{}`",
        secret.as_str(),
        secret.peer_id()
    );
    assert!(DOC.replace('\n', " ").contains(&worked), "{worked}");
}

#[test]
fn every_message_type_has_a_section() {
    for (kind, text) in examples() {
        if kind == "client" || kind == "server" {
            let value: Value = serde_json::from_str(&text).unwrap();
            let name = value["type"].as_str().unwrap();
            assert!(
                DOC.contains(&format!("### {name}\n")),
                "no section for {name}"
            );
        }
    }
}

#[test]
fn every_error_code_is_documented() {
    for code in ErrorCode::ALL {
        let name = serde_json::to_value(code).unwrap();
        let row = format!("| `{}` |", name.as_str().unwrap());
        assert!(
            DOC.contains(&row),
            "error code {name} missing from the table"
        );
    }
}

#[test]
fn every_close_code_is_documented() {
    for code in natter_proto::close::ALL {
        assert!(
            DOC.contains(&format!("| {code} |")),
            "close code {code} missing"
        );
    }
}

#[test]
fn documented_limits_match_the_code() {
    use natter_proto::limits::*;
    assert_eq!(MAX_MESSAGE_BYTES, 65_536);
    assert!(DOC.contains("64 KiB (65,536 bytes)"));
    assert!(DOC.contains(&format!(
        "{MESSAGES_PER_SECOND} per second sustained, bursts of {MESSAGE_BURST}"
    )));
    assert!(DOC.contains(&format!(
        "| dropped messages per socket | {FLOOD_TOLERANCE} |"
    )));
    assert!(DOC.contains(&format!(
        "| {} s (solving the challenge included) | close 4001 |",
        HANDSHAKE_TIMEOUT.as_secs()
    )));
    assert!(DOC.contains(&format!(
        "| joins refused for their proof or their peer secret, per socket | {BAD_PROOF_TOLERANCE} |"
    )));
    assert!(DOC.contains(&format!(
        "| {} s | close 4001; the server pings every {} s",
        IDLE_TIMEOUT.as_secs(),
        PING_INTERVAL.as_secs()
    )));
    assert!(DOC.contains(&format!("| people in a pair room | {PAIR_ROOM_CAPACITY} |")));
    assert!(DOC.contains(&format!(
        "| reconnect grace | {} s",
        DEFAULT_RECONNECT_GRACE.as_secs()
    )));
    assert!(DOC.contains(&format!("exactly {ROOM_ID_LEN} characters")));
    assert!(DOC.contains(&format!("{PEER_ID_MIN_LEN}–{PEER_ID_MAX_LEN} characters")));
    assert!(DOC.contains(&format!("1–{NAME_MAX_CHARS} Unicode characters")));
    let chat_max = natter_proto::data::CHAT_TEXT_MAX_CHARS;
    assert_eq!(chat_max, 10_000);
    assert!(DOC.contains("| chat text | 10,000 characters |"));
    assert!(DOC.contains("`text` (1–10,000 characters)"));
    assert_eq!(FILE_CHUNK_BYTES, 16_384);
    assert!(DOC.contains("| file chunk payload | 16,384 bytes (16 KiB) |"));
    assert_eq!(DEFAULT_MAX_FILE_BYTES, 209_715_200);
    assert!(DOC.contains("| file size (`maxFileBytes`) | 200 MiB (209,715,200 bytes) by default"));
    assert_eq!(natter_proto::data::FILE_CHUNK_HEADER_BYTES, 20);
}
