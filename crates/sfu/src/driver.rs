//! The thin tokio driver: owns the UDP socket and the ICE-TCP listener, feeds the sans-IO
//! [`Sfu`] and carries out its output. It runs on a thread of its own (a current-thread runtime),
//! so media forwarding never waits behind HTTP work and its CPU time is easy to measure.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use natter_proto::signaling::PublishedTrack;
use natter_proto::{ErrorCode, PeerId, RoomId, ServerMessage};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::routing::ClientId;
use crate::sfu::{Output, Sfu, SfuConfig, SfuStats};

/// Hands a signaling message to a client's WebSocket session. Returns false once the session is
/// gone.
pub type Deliver = Box<dyn Fn(ServerMessage) -> bool + Send>;

/// Commands the SFU thread accepts before senders must wait.
const COMMAND_QUEUE: usize = 1024;
/// Most ICE-TCP connections at once; more are refused (UDP is the normal path).
const MAX_TCP_CONNECTIONS: usize = 1024;
/// Frames queued for one ICE-TCP connection before further ones are dropped (like UDP would).
const TCP_QUEUE: usize = 256;
/// How often the driver logs its counters (at debug level).
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Kernel buffer asked for on the UDP socket, each way. A video frame fans out as a burst of
/// packets (ten packets to each of 31 receivers); the default buffer (about 200 KiB) overflows
/// while the SFU works through such bursts. The kernel caps it at `net.core.rmem_max`/`wmem_max`.
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// UDP datagrams read in one go before the SFU's output is sent.
const RECEIVE_BATCH: usize = 32;

/// What a session asks of the SFU.
pub enum Command {
    /// A browser's offer; the answer and later updates go to `deliver`.
    Offer {
        /// The session's connection.
        client: ClientId,
        /// The room it is in.
        room: RoomId,
        /// Its peer id.
        peer: PeerId,
        /// The SDP offer.
        sdp: String,
        /// What it publishes.
        tracks: Vec<PublishedTrack>,
        /// Where its messages go.
        deliver: Deliver,
    },
    /// The session left its room or closed.
    Remove {
        /// The session's connection.
        client: ClientId,
    },
    /// Counters, for benchmarks.
    Stats {
        /// Where to send them.
        reply: oneshot::Sender<SfuStats>,
    },
}

/// Where to listen and what to advertise.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// UDP address to bind (port 0: any free port).
    pub udp: SocketAddr,
    /// ICE-TCP address to bind, if any.
    pub tcp: Option<SocketAddr>,
    /// The address browsers reach this host at; by default the bound address, or loopback when
    /// bound to all interfaces.
    pub public_ip: Option<IpAddr>,
    /// See [`SfuConfig::bandwidth_estimation`].
    pub bandwidth_estimation: bool,
}

/// A handle to the running SFU thread.
#[derive(Debug, Clone)]
pub struct SfuHandle {
    commands: mpsc::Sender<Command>,
    /// The addresses advertised to browsers.
    pub advertised: SfuConfig,
}

impl SfuHandle {
    /// Sends a command; false if the SFU is overloaded or stopped.
    pub fn try_send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Sends a command, waiting for room in the queue (for commands that must not be lost).
    pub async fn send(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// The SFU's counters.
    pub async fn stats(&self) -> Option<SfuStats> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Stats { reply }).await.then_some(())?;
        answer.await.ok()
    }
}

fn advertised(bound: SocketAddr, public_ip: Option<IpAddr>) -> SocketAddr {
    let ip = public_ip.unwrap_or(if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound.ip()
    });
    SocketAddr::new(ip, bound.port())
}

/// Binds the sockets and starts the SFU on its own thread. Fails if a socket cannot be bound.
pub fn start(config: &DriverConfig) -> io::Result<SfuHandle> {
    let udp = std::net::UdpSocket::bind(config.udp)?;
    udp.set_nonblocking(true)?;
    enlarge_buffers(&udp, UDP_BUFFER_BYTES);
    let tcp = match config.tcp {
        Some(address) => {
            let listener = std::net::TcpListener::bind(address)?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
        None => None,
    };
    let udp_local = udp.local_addr()?;
    let tcp_local = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let advertised = SfuConfig {
        udp: advertised(udp_local, config.public_ip),
        tcp: tcp_local.map(|local| advertised(local, config.public_ip)),
        bandwidth_estimation: config.bandwidth_estimation,
    };
    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let sfu_config = advertised.clone();
    std::thread::Builder::new()
        .name("natter-sfu".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "the SFU could not start");
                    return;
                }
            };
            runtime.block_on(async move {
                let (Ok(udp), tcp) = (
                    UdpSocket::from_std(udp),
                    tcp.map(TcpListener::from_std).transpose(),
                ) else {
                    tracing::error!("the SFU's UDP socket could not be registered");
                    return;
                };
                let tcp = tcp.unwrap_or_else(|error| {
                    tracing::error!(%error, "ICE-TCP is off: its socket could not be registered");
                    None
                });
                run(sfu_config, udp, udp_local, tcp, tcp_local, inbox).await;
            });
        })?;
    Ok(SfuHandle {
        commands,
        advertised,
    })
}

/// Asks for larger socket buffers; the kernel may grant less, which only means more drops under
/// load, so failure is not an error.
pub fn enlarge_buffers(udp: &std::net::UdpSocket, bytes: usize) {
    let socket = socket2::SockRef::from(udp);
    let _ = socket.set_recv_buffer_size(bytes);
    let _ = socket.set_send_buffer_size(bytes);
}

struct Driver {
    sfu: Sfu,
    udp: UdpSocket,
    delivers: HashMap<ClientId, Deliver>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    send_failures: u64,
}

impl Driver {
    fn flush(&mut self) {
        while let Some(output) = self.sfu.poll_output() {
            match output {
                Output::Transmit(transmit) => match transmit.proto {
                    Protocol::Udp => {
                        // Like any UDP sender, drop the datagram when the kernel buffer is full.
                        if self
                            .udp
                            .try_send_to(&transmit.contents, transmit.destination)
                            .is_err()
                        {
                            self.send_failures += 1;
                        }
                    }
                    _ => {
                        if let Some(writer) = self.tcp_writers.get(&transmit.destination) {
                            let _ = writer.try_send(transmit.contents.to_vec());
                        }
                    }
                },
                Output::Signal { client, message } => {
                    if let Some(deliver) = self.delivers.get(&client)
                        && !deliver(message)
                    {
                        self.delivers.remove(&client);
                    }
                }
                Output::Gone { client } => {
                    tracing::debug!(client = client.0, "media connection ended");
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Offer {
                client,
                room,
                peer,
                sdp,
                tracks,
                deliver,
            } => {
                let result = self.sfu.offer(now, client, &room, &peer, &sdp, &tracks);
                if let Err(error) = result {
                    tracing::debug!(client = client.0, %error, "offer refused");
                    deliver(ServerMessage::error_with(
                        ErrorCode::BadOffer,
                        error.to_string(),
                    ));
                }
                self.delivers.insert(client, deliver);
            }
            Command::Remove { client } => {
                self.sfu.remove(now, client);
                self.delivers.remove(&client);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.sfu.stats());
            }
        }
    }
}

async fn run(
    config: SfuConfig,
    udp: UdpSocket,
    udp_local: SocketAddr,
    tcp: Option<TcpListener>,
    tcp_local: Option<SocketAddr>,
    mut inbox: mpsc::Receiver<Command>,
) {
    let mut driver = Driver {
        sfu: Sfu::new(config, Instant::now()),
        udp,
        delivers: HashMap::new(),
        tcp_writers: HashMap::new(),
        send_failures: 0,
    };
    let (tcp_in, mut tcp_packets) = mpsc::channel::<(SocketAddr, Option<Vec<u8>>)>(1024);
    let mut buffer = vec![0u8; 2048];
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    loop {
        let deadline = tokio::time::Instant::from_std(driver.sfu.poll_timeout());
        tokio::select! {
            received = driver.udp.recv_from(&mut buffer) => {
                if let Ok((length, source)) = received {
                    let now = Instant::now();
                    driver.sfu.handle_receive(now, Protocol::Udp, source, udp_local, &buffer[..length]);
                    // Take what else has arrived before sending, so output goes out in batches.
                    for _ in 1..RECEIVE_BATCH {
                        let Ok((length, source)) = driver.udp.try_recv_from(&mut buffer) else {
                            break;
                        };
                        driver.sfu.handle_receive(Instant::now(), Protocol::Udp, source, udp_local, &buffer[..length]);
                    }
                }
            }
            command = inbox.recv() => match command {
                Some(command) => driver.command(command),
                None => break,
            },
            accepted = accept(tcp.as_ref()) => {
                if let (Ok((stream, remote)), Some(local)) = (accepted, tcp_local) {
                    if driver.tcp_writers.len() >= MAX_TCP_CONNECTIONS {
                        continue;
                    }
                    let (writer, frames) = mpsc::channel(TCP_QUEUE);
                    driver.tcp_writers.insert(remote, writer);
                    tokio::spawn(tcp_connection(stream, remote, local, frames, tcp_in.clone()));
                }
            }
            Some((remote, packet)) = tcp_packets.recv() => match (packet, tcp_local) {
                (Some(packet), Some(local)) => {
                    driver.sfu.handle_receive(Instant::now(), Protocol::Tcp, remote, local, &packet);
                }
                _ => {
                    driver.tcp_writers.remove(&remote);
                }
            },
            () = tokio::time::sleep_until(deadline) => driver.sfu.handle_timeout(Instant::now()),
            _ = report.tick() => {
                let stats = driver.sfu.stats();
                tracing::debug!(
                    clients = driver.sfu.client_count(),
                    forwarded = stats.forwarded,
                    relayed = stats.relayed,
                    relay_dropped = stats.relay_dropped,
                    failed = stats.failed,
                    send_failures = driver.send_failures,
                    "media relay"
                );
            }
        }
        driver.flush();
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// One ICE-TCP connection: RFC 4571 framing (a 16-bit length before each packet) both ways.
/// `None` to the SFU means the connection ended.
async fn tcp_connection(
    stream: TcpStream,
    remote: SocketAddr,
    _local: SocketAddr,
    mut frames: mpsc::Receiver<Vec<u8>>,
    packets: mpsc::Sender<(SocketAddr, Option<Vec<u8>>)>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            let Ok(length) = u16::try_from(frame.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(frame.len() + 2);
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(&frame);
            if writer.write_all(&framed).await.is_err() {
                break;
            }
        }
    });
    while let Ok(length) = reader.read_u16().await {
        let mut packet = vec![0; usize::from(length)];
        if reader.read_exact(&mut packet).await.is_err() {
            break;
        }
        if packets.send((remote, Some(packet))).await.is_err() {
            break;
        }
    }
    writing.abort();
    let _ = packets.send((remote, None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_defaults_sensibly() {
        let any: SocketAddr = "0.0.0.0:5000".parse().expect("address");
        assert_eq!(
            advertised(any, None),
            "127.0.0.1:5000".parse().expect("address")
        );
        let bound: SocketAddr = "10.0.0.7:5000".parse().expect("address");
        assert_eq!(advertised(bound, None), bound);
        let public: IpAddr = "203.0.113.9".parse().expect("address");
        assert_eq!(
            advertised(any, Some(public)),
            "203.0.113.9:5000".parse().expect("address")
        );
    }
}
