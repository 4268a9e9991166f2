//! What admission control costs and what it holds back, measured on this machine:
//!
//! 1. Server time to verify one proof of work, against its two parts as baselines: one SHA-256
//!    of the token (the solution check) and one HMAC-SHA-256 (the signature check).
//! 2. Join attempts a client without solutions gets answered per second before it is refused,
//!    against what a client that solves every challenge could do: native code (the cheapest
//!    solver there is) solving at the default difficulty on one core.
//!
//! Run with `cargo bench -p natter-server --bench admission`. Medians; this machine is noisy.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use natter_proto::pow::{Proof, meets_difficulty, solve};
use natter_server::pow::ChallengeIssuer;
use natter_server::{Config, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * fraction).round() as usize]
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn verification() {
    // Verifying costs the same at any difficulty (one hash); a low one keeps preparation short.
    const PROOFS: usize = 20_000;
    let issuer = ChallengeIssuer::new(64, 0).unwrap();
    let now = now_unix();
    let proofs: Vec<Proof> = (0..PROOFS)
        .map(|_| {
            let challenge = issuer
                .issue(now, natter_room::AddressTag([7; 16]), 1)
                .unwrap();
            Proof {
                nonce: solve(&challenge.token, challenge.difficulty),
                challenge: challenge.token,
            }
        })
        .collect();
    let mut verify_ns = Vec::with_capacity(PROOFS);
    for proof in &proofs {
        let start = Instant::now();
        let result = issuer.verify(proof, now, Some(&proof.challenge));
        verify_ns.push(start.elapsed().as_nanos() as f64);
        assert_eq!(result, Ok(64));
    }
    let mut hash_ns = Vec::with_capacity(PROOFS);
    for proof in &proofs {
        let start = Instant::now();
        std::hint::black_box(meets_difficulty(&proof.challenge, proof.nonce, 64));
        hash_ns.push(start.elapsed().as_nanos() as f64);
    }
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
    let mut hmac_ns = Vec::with_capacity(PROOFS);
    for proof in &proofs {
        let start = Instant::now();
        std::hint::black_box(aws_lc_rs::hmac::sign(&key, proof.challenge.as_bytes()));
        hmac_ns.push(start.elapsed().as_nanos() as f64);
    }
    println!("verify one proof ({PROOFS} proofs, each timed):");
    println!(
        "  natter verify     median {:.2} µs, p99 {:.2} µs",
        median(&mut verify_ns) / 1000.0,
        percentile(&mut verify_ns, 0.99) / 1000.0
    );
    println!(
        "  baseline SHA-256  median {:.2} µs",
        median(&mut hash_ns) / 1000.0
    );
    println!(
        "  baseline HMAC     median {:.2} µs",
        median(&mut hmac_ns) / 1000.0
    );
}

struct Flood {
    answered: u64,
    /// Attempts answered in the first second, before the address's burst of sockets is spent.
    answered_first_second: u64,
    welcomed: u64,
    upgrades: u64,
    refused_upgrades: u64,
    closed_sockets: u64,
    first_refusal: Option<Duration>,
}

/// Opens sockets and sends joins without proofs as fast as the server answers, as a bot would.
async fn flood(address: std::net::SocketAddr, seconds: u64) -> Flood {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut flood = Flood {
        answered: 0,
        answered_first_second: 0,
        welcomed: 0,
        upgrades: 0,
        refused_upgrades: 0,
        closed_sockets: 0,
        first_refusal: None,
    };
    let mut room = 0u64;
    while Instant::now() < deadline {
        let url = format!("ws://{address}/ws");
        let mut ws = match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                flood.refused_upgrades += 1;
                flood.first_refusal.get_or_insert(started.elapsed());
                // Refused: try again at once, as a bot would.
                continue;
            }
        };
        flood.upgrades += 1;
        ws.send(Message::text(
            json!({"type": "hello", "version": 1}).to_string(),
        ))
        .await
        .unwrap();
        'socket: while Instant::now() < deadline {
            // Wait for the challenge (after hello, and after each refused join).
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(text.as_str()).unwrap();
                        match value["type"].as_str() {
                            Some("challenge") => break,
                            Some("error") => {
                                flood.answered += 1;
                                if started.elapsed() < Duration::from_secs(1) {
                                    flood.answered_first_second += 1;
                                }
                            }
                            Some("welcome") => {
                                flood.answered += 1;
                                flood.welcomed += 1;
                                // One join per socket: start over with a new one.
                                let _ = ws.close(None).await;
                                break 'socket;
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        flood.closed_sockets += 1;
                        flood.first_refusal.get_or_insert(started.elapsed());
                        break 'socket;
                    }
                    Some(Ok(_)) => {}
                }
            }
            room += 1;
            let room_id = format!("bench-room-{room:011}");
            // A real identity, so the refusal is the bot check's, not the identity check's.
            let secret = format!("bench-secret-{room:030}");
            let peer = natter_proto::PeerSecret::try_from(secret.clone())
                .expect("43 URL-safe characters")
                .peer_id();
            let join = json!({"type": "join", "room": room_id, "peer": peer, "peerSecret": secret, "name": "Bench"});
            if ws.send(Message::text(join.to_string())).await.is_err() {
                break;
            }
        }
    }
    flood
}

fn join_flood() {
    const SECONDS: u64 = 10;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config::parse_from(["natter", "--rtc-port", "0", "--names-db", ":memory:"]);
    let difficulty = config.pow_difficulty;
    let flood = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        let flood = flood(address, SECONDS).await;
        let _ = stop.send(());
        let _ = server.await;
        flood
    });
    let later = flood.answered - flood.answered_first_second;
    println!("a client without solutions, one address, default limits, {SECONDS} s:");
    println!(
        "  join attempts answered: {} ({:.1}/s): {} in the first second, then {:.1}/s; none admitted ({})",
        flood.answered,
        flood.answered as f64 / SECONDS as f64,
        flood.answered_first_second,
        later as f64 / (SECONDS - 1) as f64,
        flood.welcomed
    );
    println!(
        "  sockets opened {}, each closed by the server after its 6th bad join ({} closed); {} upgrades refused with 429 ({:.0}/s)",
        flood.upgrades,
        flood.closed_sockets,
        flood.refused_upgrades,
        flood.refused_upgrades as f64 / SECONDS as f64
    );
    // Baseline: the fastest honest client, native code on one core, at the same difficulty.
    let issuer = ChallengeIssuer::new(difficulty, 0).unwrap();
    let mut solve_ms: Vec<f64> = (0..50)
        .map(|_| {
            let challenge = issuer
                .issue(now_unix(), natter_room::AddressTag([7; 16]), 1)
                .unwrap();
            let start = Instant::now();
            std::hint::black_box(solve(&challenge.token, challenge.difficulty));
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let typical = median(&mut solve_ms);
    println!(
        "baseline: solving every challenge in native code, difficulty {difficulty}: median {typical:.1} ms, p95 {:.1} ms per join, at most ~{:.0} joins/s per core before any limit",
        percentile(&mut solve_ms, 0.95),
        1000.0 / typical
    );
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    verification();
    join_flood();
}
