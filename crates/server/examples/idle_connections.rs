//! Benchmark: server memory per idle WebSocket connection.
//!
//! Starts the `natter` binary (release build by default, or `NATTER_BIN`), measures its resident
//! set size with no connections (the baseline), then opens N connections and measures again, in
//! two fresh server processes: connections that only said `hello`, and connections that joined
//! rooms (two per room, as in real use). Prints the RSS delta divided by N for each.
//!
//! ```sh
//! cargo build --release && cargo run --release --example idle_connections -- 5000
//! ```
//! Needs a file-descriptor limit above N (`ulimit -n`); scripts/bench raises it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    HelloOnly,
    Joined,
}

fn server_binary() -> String {
    std::env::var("NATTER_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/natter").to_owned()
    })
}

fn start_server() -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--max-connections", "100000"])
        // Every connection comes from this one address, and only memory is measured: no
        // per-address limits, no proof of work, nothing on disk, a free media port.
        .args([
            "--ws-per-minute",
            "0",
            "--http-per-minute",
            "0",
            "--rooms-per-minute",
            "0",
            "--max-connections-per-ip",
            "1000000",
            "--pow-difficulty",
            "0",
            "--names-db",
            ":memory:",
            "--rtc-port",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting natter (build it with cargo build --release, or set NATTER_BIN)")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .context("no URL printed")?
        .trim_end_matches('/')
        .replace("http://", "ws://");
    Ok((child, format!("{url}/ws")))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS")?
        .parse()?)
}

async fn open_connection(url: String, index: usize, mode: Mode) -> anyhow::Result<()> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    socket
        .send(Message::text(r#"{"type":"hello","version":1}"#))
        .await?;
    let expect = |text: &str, want: &str| {
        if !text.contains(want) {
            bail!("expected {want}, got {text}");
        }
        Ok(())
    };
    let reply = socket.next().await.context("closed")??;
    expect(reply.to_text()?, r#""type":"hello""#)?;
    // The challenge follows; at difficulty 0 a join needs no proof.
    let reply = socket.next().await.context("closed")??;
    expect(reply.to_text()?, r#""type":"challenge""#)?;
    if mode == Mode::Joined {
        let room = format!("{:0>22}", index / 2);
        let secret = format!("bench-secret-{index:0>30}");
        let peer = natter_proto::PeerSecret::try_from(secret.clone())
            .context("43 URL-safe characters")?
            .peer_id();
        let join = format!(
            r#"{{"type":"join","room":"{room}","peer":"{peer}","peerSecret":"{secret}","name":"Bench {index}"}}"#
        );
        socket.send(Message::text(join)).await?;
        let reply = socket.next().await.context("closed")??;
        expect(reply.to_text()?, r#""type":"welcome""#)?;
    }
    // Stay connected and keep reading so the server's pings are answered.
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
    Ok(())
}

async fn measure(mode: Mode, count: usize) -> anyhow::Result<(u64, u64)> {
    let (mut child, url) = start_server()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(child.id())?;
    let gate = Arc::new(Semaphore::new(128));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let result = open_connection(url, index, mode).await;
            drop(permit);
            result
        }));
    }
    for task in tasks {
        task.await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(child.id())?;
    child.kill()?;
    child.wait()?;
    Ok((before, after))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5000);
    println!(
        "idle WebSocket connections: {count}, server {}",
        server_binary()
    );
    for (mode, label) in [
        (Mode::HelloOnly, "hello only"),
        (Mode::Joined, "joined, 2 per room"),
    ] {
        let (before, after) = measure(mode, count).await?;
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / count as f64;
        println!(
            "{label:>20}: baseline RSS {before} KiB (no connections), with {count}: {after} KiB, \
             delta {} KiB = {:.1} KiB per connection",
            after.saturating_sub(before),
            per / 1024.0
        );
    }
    Ok(())
}
