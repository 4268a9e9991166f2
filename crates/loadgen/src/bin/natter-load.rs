//! `natter-load`: N synthetic participants join one group room of a running Natter server and
//! send synthetic audio (50 packets a second each) and video (about 300 packets a second each);
//! it reports how many RTP packets the SFU forwarded per second, the loss, the forwarding delay
//! and, given the server's pid, the server's CPU time per forwarded packet.
//!
//! `scripts/bench-sfu` runs it against a server pinned to one core.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use natter_loadgen::{Participant, Publish, is_rtp};
use natter_proto::signaling::TrackNeed;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

/// Load a Natter server's SFU with synthetic participants.
#[derive(Debug, Parser)]
struct Args {
    /// The server's base URL, as it prints it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Participants in the room.
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// How many of them also send video (all send audio).
    #[arg(long)]
    video: Option<usize>,
    /// Seconds to measure, after everyone receives everything.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's process id, to read its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Every this many participants decrypts and reassembles what it receives, to measure the
    /// forwarding delay; the others only count the packets (one core of load generator could not
    /// decrypt everything one core of SFU encrypts).
    #[arg(long, default_value_t = 4)]
    measure_every: usize,
    /// Baseline: instead of joining a Natter room, send plain UDP datagrams of the same sizes and
    /// rates to a plain relay (`--serve-relay`) at this address.
    #[arg(long, value_name = "ADDR")]
    baseline_relay: Option<SocketAddr>,
    /// Be the baseline's plain relay: forward each datagram as it is to every other sender seen,
    /// with no encryption and no RTP processing (the cost of the sockets alone).
    #[arg(long, value_name = "ADDR")]
    serve_relay: Option<SocketAddr>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    rtp_sent: u64,
    rtp_received: u64,
    frames_received: u64,
    connected: usize,
}

#[derive(Default)]
struct Shared {
    counters: Counters,
    delays_us: Vec<u64>,
    stop: bool,
    measuring: bool,
}

/// The server's user + system CPU time, from /proc (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are space-separated.
    let after = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

/// A random id of `len` URL-safe characters (not cryptographic: test rooms only).
fn random_id(len: usize, seed: &mut u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ALPHABET[(*seed % 64) as usize] as char
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    if let Some(bind) = args.serve_relay {
        return local.block_on(&runtime, serve_relay(bind));
    }
    if let Some(relay) = args.baseline_relay {
        return local.block_on(&runtime, baseline(args, relay));
    }
    local.block_on(&runtime, run(args))
}

fn bound_udp(address: SocketAddr) -> anyhow::Result<UdpSocket> {
    let udp = std::net::UdpSocket::bind(address)?;
    udp.set_nonblocking(true)?;
    // Losses in the load generator's own buffers would count against what it measures; the SFU
    // asks for the same size.
    let socket = socket2::SockRef::from(&udp);
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    Ok(UdpSocket::from_std(udp)?)
}

async fn serve_relay(bind: SocketAddr) -> anyhow::Result<()> {
    let udp = bound_udp(bind)?;
    println!("relay listening on {}", udp.local_addr()?);
    // Every sender heard from in the last two seconds: the runs before this one are forgotten.
    let mut peers: Vec<(SocketAddr, Instant)> = Vec::new();
    let mut buffer = vec![0u8; 2048];
    let mut pruned = Instant::now();
    loop {
        let (length, source) = udp.recv_from(&mut buffer).await?;
        let now = Instant::now();
        match peers.iter_mut().find(|(peer, _)| *peer == source) {
            Some((_, heard)) => *heard = now,
            None => peers.push((source, now)),
        }
        if now.duration_since(pruned) > Duration::from_secs(1) {
            pruned = now;
            peers.retain(|(_, heard)| now.duration_since(*heard) < Duration::from_secs(2));
        }
        for (peer, _) in peers.iter().filter(|(peer, _)| *peer != source) {
            let _ = udp.try_send_to(&buffer[..length], *peer);
        }
    }
}

/// Sizes on the wire of the SFU's packets: the synthetic frame, RTP header and extensions, and
/// SRTP's authentication tag.
const BASELINE_AUDIO_BYTES: usize = 140;
const BASELINE_VIDEO_BYTES: usize = 1_150;
const BASELINE_VIDEO_PACKETS_PER_FRAME: usize = 10;

async fn baseline(args: Args, relay: SocketAddr) -> anyhow::Result<()> {
    let video = args
        .video
        .unwrap_or(args.participants)
        .min(args.participants);
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut tasks = Vec::new();
    for index in 0..args.participants {
        let shared = Rc::clone(&shared);
        let sends_video = index < video;
        tasks.push(tokio::task::spawn_local(async move {
            let udp = bound_udp("127.0.0.1:0".parse()?)?;
            udp.send_to(&[0x80, 0], relay).await?;
            let start = tokio::time::Instant::now();
            let mut next_audio = start;
            let mut next_video = start;
            let mut buffer = vec![0u8; 2048];
            let audio = vec![0x80u8; BASELINE_AUDIO_BYTES];
            let frame = vec![0x80u8; BASELINE_VIDEO_BYTES];
            loop {
                if shared.borrow().stop {
                    return anyhow::Ok(());
                }
                let due = if sends_video { next_audio.min(next_video) } else { next_audio };
                tokio::select! {
                    received = udp.recv_from(&mut buffer) => {
                        received?;
                        let mut count = 1;
                        while udp.try_recv_from(&mut buffer).is_ok() {
                            count += 1;
                        }
                        shared.borrow_mut().counters.rtp_received += count;
                    }
                    () = tokio::time::sleep_until(due) => {
                        let now = tokio::time::Instant::now();
                        let mut sent = 0;
                        while next_audio <= now {
                            let _ = udp.try_send_to(&audio, relay);
                            sent += 1;
                            next_audio += Duration::from_secs(1) / natter_loadgen::AUDIO_FRAMES_PER_SECOND;
                        }
                        while sends_video && next_video <= now {
                            for _ in 0..BASELINE_VIDEO_PACKETS_PER_FRAME {
                                let _ = udp.try_send_to(&frame, relay);
                                sent += 1;
                            }
                            next_video += Duration::from_secs(1) / natter_loadgen::VIDEO_FRAMES_PER_SECOND;
                        }
                        shared.borrow_mut().counters.rtp_sent += sent;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(task) = tasks.iter().find(|task| task.is_finished()) {
        bail!("a baseline sender stopped: {}", task.is_finished());
    }
    measure(&args, video, &shared).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let video = args
        .video
        .unwrap_or(args.participants)
        .min(args.participants);
    let mut seed =
        Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) ^ 0x9e37_79b9;
    let room = random_id(22, &mut seed);
    let ws_url = format!(
        "{}/ws",
        args.url.trim_end_matches('/').replacen("http", "ws", 1)
    );
    let shared = Rc::new(RefCell::new(Shared::default()));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..args.participants {
        let publish = Publish {
            audio: true,
            video: index < video,
        };
        // A peer secret of its own, and the id it proves, as a browser makes them.
        let secret = random_id(natter_proto::limits::PEER_SECRET_LEN, &mut seed);
        let task = tokio::task::spawn_local(participant(
            ws_url.clone(),
            room.clone(),
            secret,
            publish,
            epoch,
            index % args.measure_every.max(1) == 0,
            Rc::clone(&shared),
        ));
        tasks.push(task);
        // Joins a little apart, as people do; it also keeps the first offers from piling up.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everyone is connected and receiving.
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = shared.borrow().counters.connected;
        if connected == args.participants {
            break;
        }
        if let Some(index) = tasks.iter().position(|task| task.is_finished()) {
            let failed = tasks.swap_remove(index).await;
            bail!("participant {index} stopped: {failed:?}");
        }
        if Instant::now() > ready_by {
            bail!(
                "only {connected} of {} participants connected",
                args.participants
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let slots, keyframes and bandwidth estimates settle.
    tokio::time::sleep(Duration::from_secs(3)).await;

    measure(&args, video, &shared).await
}

/// Measures for `args.seconds` and prints the report.
async fn measure(args: &Args, video: usize, shared: &Rc<RefCell<Shared>>) -> anyhow::Result<()> {
    let start = Instant::now();
    let cpu_start = args.server_pid.map(cpu_time).transpose()?;
    let before = {
        let mut shared = shared.borrow_mut();
        shared.delays_us.clear();
        shared.measuring = true;
        shared.counters
    };
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let after = shared.borrow().counters;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_end = args.server_pid.map(cpu_time).transpose()?;
    shared.borrow_mut().stop = true;

    let sent = (after.rtp_sent - before.rtp_sent) as f64;
    let received = (after.rtp_received - before.rtp_received) as f64;
    // Every packet goes to everyone else.
    let expected = sent * (args.participants as f64 - 1.0);
    let loss = if expected > 0.0 {
        (1.0 - received / expected).max(0.0)
    } else {
        0.0
    };
    let mut delays = std::mem::take(&mut shared.borrow_mut().delays_us);
    delays.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if delays.is_empty() {
            return f64::NAN;
        }
        let index = ((delays.len() - 1) as f64 * p).round() as usize;
        delays[index] as f64 / 1000.0
    };
    println!("participants          {}", args.participants);
    println!("sending video         {video}");
    println!("seconds measured      {elapsed:.1}");
    println!("rtp sent /s           {:.0}", sent / elapsed);
    println!("rtp forwarded /s      {:.0}", received / elapsed);
    println!("expected /s           {:.0}", expected / elapsed);
    println!("loss                  {:.2} %", loss * 100.0);
    println!("frame delay p50       {:.2} ms", percentile(0.5));
    println!("frame delay p99       {:.2} ms", percentile(0.99));
    if let (Some(cpu_start), Some(cpu_end)) = (cpu_start, cpu_end) {
        let cpu = (cpu_end - cpu_start).as_secs_f64();
        println!("server cpu            {:.1} %", cpu / elapsed * 100.0);
        if received > 0.0 {
            println!("server cpu /packet    {:.2} us", cpu * 1e6 / received);
        }
    }
    Ok(())
}

async fn participant(
    ws_url: String,
    room: String,
    secret: String,
    publish: Publish,
    epoch: Instant,
    measure: bool,
    shared: Rc<RefCell<Shared>>,
) -> anyhow::Result<()> {
    let peer = natter_proto::PeerSecret::try_from(secret.clone())
        .context("a peer secret of 43 URL-safe characters")?
        .peer_id()
        .to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .with_context(|| format!("connecting to {ws_url}"))?;
    let send = |value: Value| Message::Text(value.to_string().into());
    // The join follows the server's challenge, solved here (see docs/protocol.md).
    ws.send(send(json!({"type": "hello", "version": 1})))
        .await?;
    let udp = bound_udp("127.0.0.1:0".parse()?)?;
    let addr = udp.local_addr()?;
    let mut participant = Participant::new(Instant::now(), epoch, addr, publish);
    let mut connected = false;
    let mut transmits = Vec::new();
    let mut buffer = vec![0u8; 2048];
    let mut timeout = Instant::now();
    let mut welcomed = false;
    loop {
        if shared.borrow().stop {
            return Ok(());
        }
        if welcomed && let Some((sdp, tracks)) = participant.take_offer() {
            ws.send(send(
                json!({"type": "sfu-offer", "sdp": sdp, "tracks": tracks}),
            ))
            .await?;
        }
        tokio::select! {
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => bail!("the server closed signaling: {frame:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => bail!("signaling failed: {error}"),
                    None => bail!("signaling ended"),
                };
                let value: Value = serde_json::from_str(text.as_str())?;
                match value["type"].as_str() {
                    Some("challenge") if !welcomed => {
                        let token = value["token"].as_str().unwrap_or_default();
                        let difficulty = value["difficulty"].as_u64().unwrap_or(0);
                        let nonce = natter_proto::pow::solve(token, difficulty);
                        let proof = json!({"challenge": token, "nonce": nonce});
                        ws.send(send(json!({"type": "join", "room": room, "peer": peer,
                            "peerSecret": secret, "name": peer, "kind": "group", "proof": proof})))
                        .await?;
                    }
                    Some("welcome") => welcomed = true,
                    Some("sfu-answer") => {
                        if std::env::var_os("NATTER_LOAD_SDP_SIZES").is_some() {
                            eprintln!("answer of {} bytes", text.len());
                        }
                        participant.handle_answer(value["sdp"].as_str().unwrap_or_default())?;
                    }
                    Some("sfu-tracks") => {
                        let need: TrackNeed = serde_json::from_value(value["need"].clone())?;
                        participant.handle_need(need);
                    }
                    Some("error") => eprintln!("{peer}: {value}"),
                    _ => {}
                }
            }
            received = udp.recv_from(&mut buffer) => {
                let (length, source) = received?;
                if note_received(&shared, &buffer[..length]) || measure {
                    participant.handle_receive(Instant::now(), source, &buffer[..length])?;
                }
                // Drain what else is waiting before sending.
                while let Ok((length, source)) = udp.try_recv_from(&mut buffer) {
                    if note_received(&shared, &buffer[..length]) || measure {
                        participant.handle_receive(Instant::now(), source, &buffer[..length])?;
                    }
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout)) => {
                participant.handle_timeout(Instant::now())?;
            }
        }
        let now = Instant::now();
        let rtc_timeout = participant.poll(now, &mut transmits)?;
        timeout = participant.next_timeout(rtc_timeout);
        let mut rtp = 0;
        for transmit in transmits.drain(..) {
            if is_rtp(&transmit.contents) {
                rtp += 1;
            }
            send_to(&udp, &transmit.contents, transmit.destination);
        }
        let mut shared = shared.borrow_mut();
        shared.counters.rtp_sent += rtp;
        if !connected && participant.rtc.is_connected() {
            connected = true;
            shared.counters.connected += 1;
        }
        if shared.measuring {
            let delays = std::mem::take(&mut participant.received.delays_us);
            shared.counters.frames_received += delays.len() as u64;
            shared.delays_us.extend(delays);
        } else {
            participant.received.delays_us.clear();
        }
    }
}

/// Counts a media packet; true for anything else (STUN, DTLS, RTCP), which str0m must see.
fn note_received(shared: &Rc<RefCell<Shared>>, datagram: &[u8]) -> bool {
    if is_rtp(datagram) {
        shared.borrow_mut().counters.rtp_received += 1;
        false
    } else {
        true
    }
}

fn send_to(udp: &UdpSocket, data: &[u8], destination: SocketAddr) {
    // UDP: a full socket buffer drops the datagram, which the loss figure then shows.
    let _ = udp.try_send_to(data, destination);
}
