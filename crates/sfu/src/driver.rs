//! The thin tokio driver: owns the UDP socket and the ICE-TCP listener, feeds the sans-IO
//! [`Sfu`] and carries out its output. It runs on a thread of its own (a current-thread runtime),
//! so media forwarding never waits behind HTTP work and its CPU time is easy to measure.

use std::collections::HashMap;
use std::io;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use natter_proto::signaling::PublishedTrack;
use natter_proto::{ErrorCode, PeerId, RoomId, ServerMessage};
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSocketState};
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
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
    /// Addresses to bind, at most one per family (later ones of a family are ignored). An
    /// unspecified address (`0.0.0.0`, `::`) takes packets sent to any local address of its
    /// family; the socket learns, per datagram, which one.
    pub listen: Vec<IpAddr>,
    /// UDP port (0: any free port, then the same one for every address).
    pub udp_port: u16,
    /// ICE-TCP port, if any (0: the UDP port if free, else any).
    pub tcp_port: Option<u16>,
    /// The addresses browsers reach this host at, when they are not its own (a 1:1 NAT, a
    /// cloud's public address). Empty: the host's interface addresses are advertised.
    pub public_ips: Vec<IpAddr>,
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

/// Most addresses advertised as candidates: a host with many bridges (containers, VPNs) would
/// otherwise make every browser check dozens of paths.
pub const MAX_ADVERTISED: usize = 8;

/// Which addresses the relay advertises, and which of them a datagram that arrived at a given
/// local address was sent to. str0m answers a connectivity check only when its destination is
/// one of the advertised candidates, so every arriving datagram is labelled with one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    /// The candidates' addresses, in order of preference.
    pub advertised: Vec<IpAddr>,
    /// The advertised addresses are public ones the host does not hold (1:1 NAT): a datagram
    /// that arrived at another local address of the same family was sent to one of them.
    translated: bool,
}

impl AddressPlan {
    /// Plans the advertised addresses for sockets bound to `bound`: the given public addresses
    /// (those of a bound family), or else each bound address, an unspecified one standing for
    /// the host's `interfaces` of its family. Loopback and link-local addresses are advertised
    /// only when nothing else is, since no other host can reach them.
    pub fn new(bound: &[IpAddr], public: &[IpAddr], interfaces: &[IpAddr]) -> Self {
        let covers = |ip: &IpAddr| bound.iter().any(|b| b.is_ipv4() == ip.is_ipv4());
        let mut advertised = Vec::new();
        let push = |ip: IpAddr, list: &mut Vec<IpAddr>| {
            if !list.contains(&ip) && list.len() < MAX_ADVERTISED {
                list.push(ip);
            }
        };
        if !public.is_empty() {
            for ip in public.iter().filter(|ip| covers(ip)) {
                push(*ip, &mut advertised);
            }
            return Self {
                advertised,
                translated: true,
            };
        }
        let mut local_only = Vec::new();
        for bound in bound {
            let candidates: Vec<IpAddr> = if bound.is_unspecified() {
                interfaces
                    .iter()
                    .filter(|ip| ip.is_ipv4() == bound.is_ipv4() && !ip.is_unspecified())
                    .copied()
                    .collect()
            } else {
                vec![*bound]
            };
            for ip in candidates {
                if reachable_only_here(ip) {
                    push(ip, &mut local_only);
                } else {
                    push(ip, &mut advertised);
                }
            }
        }
        if advertised.is_empty() {
            advertised = local_only;
        }
        if advertised.is_empty() {
            // No interface list at all (it could not be read): loopback still serves this host.
            for bound in bound {
                push(
                    if bound.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::LOCALHOST)
                    } else {
                        IpAddr::V6(Ipv6Addr::LOCALHOST)
                    },
                    &mut advertised,
                );
            }
        }
        Self {
            advertised,
            translated: false,
        }
    }

    /// The advertised address a datagram that arrived at `local` was sent to. An address that is
    /// neither advertised nor translatable is returned as it is, and str0m ignores the datagram.
    pub fn advertised_for(&self, local: IpAddr) -> IpAddr {
        if self.advertised.contains(&local) || !self.translated {
            return local;
        }
        self.advertised
            .iter()
            .find(|ip| ip.is_ipv4() == local.is_ipv4())
            .copied()
            .unwrap_or(local)
    }
}

/// Loopback and link-local addresses: no other host can reach them.
pub fn reachable_only_here(ip: IpAddr) -> bool {
    ip.is_loopback() || is_link_local(ip)
}

/// 169.254.0.0/16 and fe80::/10: valid only on one link, and for IPv6 only with a scope.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The host's interface addresses (empty if they cannot be read).
pub fn interface_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list this host's addresses; set --public-ip");
            Vec::new()
        }
    }
}

/// One bound UDP socket of the relay.
struct UdpEndpoint {
    socket: UdpSocket,
    /// Reads each datagram's local destination address (IP_PKTINFO) and sets the source of
    /// replies, so a socket bound to all interfaces answers from the address it was reached at.
    state: UdpSocketState,
    bound: SocketAddr,
}

/// Binds one UDP socket per family (the first address of each), all on one port.
fn bind_udp(listen: &[IpAddr], port: u16) -> io::Result<Vec<(std::net::UdpSocket, SocketAddr)>> {
    let mut sockets: Vec<(std::net::UdpSocket, SocketAddr)> = Vec::new();
    let mut port = port;
    for ip in listen {
        if sockets.iter().any(|(_, b)| b.is_ipv4() == ip.is_ipv4()) {
            continue;
        }
        let udp = match bind_udp_socket(SocketAddr::new(*ip, port)) {
            Ok(udp) => udp,
            // A host without IPv6 still serves IPv4 when both were asked for by default.
            Err(error) if ip.is_ipv6() && ip.is_unspecified() && !sockets.is_empty() => {
                tracing::warn!(%error, "the media relay serves IPv4 only: IPv6 is unavailable");
                continue;
            }
            Err(error) => return Err(error),
        };
        let local = udp.local_addr()?;
        port = local.port();
        sockets.push((udp, local));
    }
    if sockets.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to bind the media relay to",
        ));
    }
    Ok(sockets)
}

fn bind_udp_socket(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if address.is_ipv6() {
        // IPv4 goes to a socket of its own, so addresses never arrive IPv4-mapped.
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    let udp: std::net::UdpSocket = socket.into();
    udp.set_nonblocking(true)?;
    enlarge_buffers(&udp, UDP_BUFFER_BYTES);
    Ok(udp)
}

/// Binds the ICE-TCP listeners on the bound UDP sockets' addresses: on the UDP port when
/// `port` is 0 and that port is free, else on `port`.
fn bind_tcp(
    udp: &[(std::net::UdpSocket, SocketAddr)],
    port: u16,
) -> io::Result<Vec<(std::net::TcpListener, SocketAddr)>> {
    let mut listeners: Vec<(std::net::TcpListener, SocketAddr)> = Vec::new();
    for (_, bound) in udp {
        let want = listeners.first().map_or(port, |(_, l)| l.port());
        let listener = match (
            want,
            bind_tcp_listener(SocketAddr::new(
                bound.ip(),
                if want == 0 { bound.port() } else { want },
            )),
        ) {
            (_, Ok(listener)) => listener,
            (0, Err(_)) => bind_tcp_listener(SocketAddr::new(bound.ip(), 0))?,
            (_, Err(error)) => return Err(error),
        };
        let local = listener.local_addr()?;
        listeners.push((listener, local));
    }
    Ok(listeners)
}

fn bind_tcp_listener(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    let listener: std::net::TcpListener = socket.into();
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds the sockets and starts the SFU on its own thread. Fails if a socket cannot be bound.
pub fn start(config: &DriverConfig) -> io::Result<SfuHandle> {
    let udp = bind_udp(&config.listen, config.udp_port)?;
    let tcp = match config.tcp_port {
        Some(port) => bind_tcp(&udp, port)?,
        None => Vec::new(),
    };
    let bound: Vec<IpAddr> = udp.iter().map(|(_, b)| b.ip()).collect();
    let plan = AddressPlan::new(&bound, &config.public_ips, &interface_addresses());
    let udp_port = udp.first().map_or(0, |(_, b)| b.port());
    let tcp_port = tcp.first().map(|(_, b)| b.port());
    let advertised = SfuConfig {
        udp: plan
            .advertised
            .iter()
            .map(|ip| SocketAddr::new(*ip, udp_port))
            .collect(),
        tcp: tcp_port
            .map(|port| {
                plan.advertised
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect()
            })
            .unwrap_or_default(),
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
                let Some(udp) = register_udp(udp) else {
                    tracing::error!("the SFU's UDP socket could not be registered");
                    return;
                };
                let tcp = tcp
                    .into_iter()
                    .filter_map(|(listener, local)| match TcpListener::from_std(listener) {
                        Ok(listener) => Some((listener, local)),
                        Err(error) => {
                            tracing::error!(%error, "ICE-TCP is off on {local}: its socket could not be registered");
                            None
                        }
                    })
                    .collect();
                run(sfu_config, plan, udp, tcp, inbox).await;
            });
        })?;
    Ok(SfuHandle {
        commands,
        advertised,
    })
}

fn register_udp(sockets: Vec<(std::net::UdpSocket, SocketAddr)>) -> Option<Vec<UdpEndpoint>> {
    sockets
        .into_iter()
        .map(|(udp, bound)| {
            let state = UdpSocketState::new((&udp).into()).ok()?;
            let socket = UdpSocket::from_std(udp).ok()?;
            Some(UdpEndpoint {
                socket,
                state,
                bound,
            })
        })
        .collect()
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
    plan: AddressPlan,
    udp: Vec<UdpEndpoint>,
    /// For each advertised address, the local one datagrams to it last arrived at: replies go
    /// out from there, so they pass back through the same NAT mapping.
    reply_from: HashMap<IpAddr, IpAddr>,
    delivers: HashMap<ClientId, Deliver>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Socket-level counters (packets and bytes each way, drops), reported with the SFU's own.
    traffic: SfuStats,
}

impl Driver {
    fn flush(&mut self) {
        while let Some(output) = self.sfu.poll_output() {
            match output {
                Output::Transmit(transmit) => {
                    let sent = match transmit.proto {
                        // Like any UDP sender, drop the datagram when the kernel buffer is full.
                        Protocol::Udp => {
                            self.send_udp(transmit.source, transmit.destination, &transmit.contents)
                        }
                        _ => self
                            .tcp_writers
                            .get(&transmit.destination)
                            .is_some_and(|writer| {
                                writer.try_send(transmit.contents.to_vec()).is_ok()
                            }),
                    };
                    if sent {
                        self.traffic.packets_out += 1;
                        self.traffic.bytes_out += transmit.contents.len() as u64;
                    } else {
                        self.traffic.packets_dropped += 1;
                    }
                }
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

    /// The SFU's counters with the driver's own.
    fn stats(&self) -> SfuStats {
        SfuStats {
            clients: self.sfu.client_count() as u64,
            packets_in: self.traffic.packets_in,
            bytes_in: self.traffic.bytes_in,
            packets_out: self.traffic.packets_out,
            bytes_out: self.traffic.bytes_out,
            packets_dropped: self.traffic.packets_dropped,
            ..self.sfu.stats()
        }
    }

    /// Sends one datagram from the socket of the destination's family, with the local source
    /// address the advertised `source` was last reached at.
    fn send_udp(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) -> bool {
        let Some(endpoint) = self
            .udp
            .iter()
            .find(|e| e.bound.is_ipv4() == destination.is_ipv4())
        else {
            return false;
        };
        let src_ip = if endpoint.bound.ip().is_unspecified() {
            self.reply_from.get(&source.ip()).copied()
        } else {
            None
        };
        let transmit = UdpTransmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip,
        };
        endpoint
            .socket
            .try_io(Interest::WRITABLE, || {
                endpoint
                    .state
                    .try_send((&endpoint.socket).into(), &transmit)
            })
            .is_ok()
    }

    /// Reads what has arrived on one socket (at most a batch) into the SFU.
    fn receive_udp(&mut self, index: usize, buffer: &mut [u8]) {
        for _ in 0..RECEIVE_BATCH {
            let Some(endpoint) = self.udp.get(index) else {
                return;
            };
            let mut meta = [RecvMeta::default()];
            let received = endpoint.socket.try_io(Interest::READABLE, || {
                endpoint.state.recv(
                    (&endpoint.socket).into(),
                    &mut [IoSliceMut::new(buffer)],
                    &mut meta,
                )
            });
            if !matches!(received, Ok(count) if count > 0) {
                return;
            }
            let [meta] = meta;
            let local = meta.dst_ip.unwrap_or(endpoint.bound.ip());
            let advertised = self.plan.advertised_for(local);
            if self.reply_from.get(&advertised) != Some(&local) {
                self.reply_from.insert(advertised, local);
            }
            let destination = SocketAddr::new(advertised, endpoint.bound.port());
            let now = Instant::now();
            // Generic receive offload may hand over several datagrams from one sender at once,
            // each `stride` bytes long but the last.
            let stride = meta.stride.max(1);
            for datagram in buffer[..meta.len.min(buffer.len())].chunks(stride) {
                self.traffic.packets_in += 1;
                self.traffic.bytes_in += datagram.len() as u64;
                self.sfu
                    .handle_receive(now, Protocol::Udp, meta.addr, destination, datagram);
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
                        error.client_message(),
                    ));
                }
                self.delivers.insert(client, deliver);
            }
            Command::Remove { client } => {
                self.sfu.remove(now, client);
                self.delivers.remove(&client);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }
}

/// Room for one read: a datagram, or several coalesced by generic receive offload.
const RECEIVE_BUFFER: usize = 64 * 1024;

async fn run(
    config: SfuConfig,
    plan: AddressPlan,
    udp: Vec<UdpEndpoint>,
    tcp: Vec<(TcpListener, SocketAddr)>,
    mut inbox: mpsc::Receiver<Command>,
) {
    let mut driver = Driver {
        sfu: Sfu::new(config, Instant::now()),
        plan,
        udp,
        reply_from: HashMap::new(),
        delivers: HashMap::new(),
        tcp_writers: HashMap::new(),
        traffic: SfuStats::default(),
    };
    let (tcp_in, mut tcp_packets) =
        mpsc::channel::<(SocketAddr, SocketAddr, Option<Vec<u8>>)>(1024);
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    loop {
        let deadline = tokio::time::Instant::from_std(driver.sfu.poll_timeout());
        tokio::select! {
            ready = readable(&driver.udp) => {
                if let Some(index) = ready {
                    driver.receive_udp(index, &mut buffer);
                }
            }
            command = inbox.recv() => match command {
                Some(command) => driver.command(command),
                None => break,
            },
            accepted = accept(&tcp) => {
                if let Ok((stream, remote)) = accepted {
                    if driver.tcp_writers.len() >= MAX_TCP_CONNECTIONS {
                        continue;
                    }
                    // The local address the browser reached, labelled as advertised.
                    let Ok(local) = stream.local_addr() else { continue };
                    let local = SocketAddr::new(driver.plan.advertised_for(local.ip()), local.port());
                    let (writer, frames) = mpsc::channel(TCP_QUEUE);
                    driver.tcp_writers.insert(remote, writer);
                    tokio::spawn(tcp_connection(stream, remote, local, frames, tcp_in.clone()));
                }
            }
            Some((remote, local, packet)) = tcp_packets.recv() => match packet {
                Some(packet) => {
                    driver.traffic.packets_in += 1;
                    driver.traffic.bytes_in += packet.len() as u64;
                    driver.sfu.handle_receive(Instant::now(), Protocol::Tcp, remote, local, &packet);
                }
                None => {
                    driver.tcp_writers.remove(&remote);
                }
            },
            () = tokio::time::sleep_until(deadline) => driver.sfu.handle_timeout(Instant::now()),
            _ = report.tick() => {
                let stats = driver.stats();
                tracing::debug!(
                    clients = stats.clients,
                    forwarded = stats.forwarded,
                    relayed = stats.relayed,
                    relay_dropped = stats.relay_dropped,
                    failed = stats.failed,
                    send_failures = stats.packets_dropped,
                    "media relay"
                );
            }
        }
        driver.flush();
    }
}

/// Resolves with the index of a UDP socket that has datagrams to read (at most two sockets, one
/// per family, so polling both in turn is cheap).
async fn readable(endpoints: &[UdpEndpoint]) -> Option<usize> {
    match endpoints {
        [] => std::future::pending().await,
        [only] => only.socket.readable().await.ok().map(|()| 0),
        [first, second, ..] => tokio::select! {
            ready = first.socket.readable() => ready.ok().map(|()| 0),
            ready = second.socket.readable() => ready.ok().map(|()| 1),
        },
    }
}

/// Accepts the next ICE-TCP connection on any listener.
async fn accept(listeners: &[(TcpListener, SocketAddr)]) -> io::Result<(TcpStream, SocketAddr)> {
    match listeners {
        [] => std::future::pending().await,
        [(only, _)] => only.accept().await,
        [(first, _), (second, _), ..] => tokio::select! {
            accepted = first.accept() => accepted,
            accepted = second.accept() => accepted,
        },
    }
}

/// One ICE-TCP connection: RFC 4571 framing (a 16-bit length before each packet) both ways.
/// `None` to the SFU means the connection ended.
async fn tcp_connection(
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    mut frames: mpsc::Receiver<Vec<u8>>,
    packets: mpsc::Sender<(SocketAddr, SocketAddr, Option<Vec<u8>>)>,
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
        if packets.send((remote, local, Some(packet))).await.is_err() {
            break;
        }
    }
    writing.abort();
    let _ = packets.send((remote, local, None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn all_interfaces_advertise_the_hosts_reachable_addresses() {
        let interfaces = [
            ip("127.0.0.1"),
            ip("198.51.100.10"),
            ip("10.0.0.7"),
            ip("::1"),
            ip("fe80::1"),
            ip("2001:db8::10"),
        ];
        let plan = AddressPlan::new(&[ip("0.0.0.0"), ip("::")], &[], &interfaces);
        assert_eq!(
            plan.advertised,
            [ip("198.51.100.10"), ip("10.0.0.7"), ip("2001:db8::10")],
            "no loopback or link-local address: no other host can reach them"
        );
        // A packet to an advertised address keeps it; to an unknown one, str0m ignores it.
        assert_eq!(plan.advertised_for(ip("10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(plan.advertised_for(ip("127.0.0.1")), ip("127.0.0.1"));
    }

    #[test]
    fn a_host_with_only_loopback_advertises_loopback() {
        let plan = AddressPlan::new(&[ip("0.0.0.0")], &[], &[ip("127.0.0.1"), ip("::1")]);
        assert_eq!(plan.advertised, [ip("127.0.0.1")]);
        let plan = AddressPlan::new(&[ip("0.0.0.0"), ip("::")], &[], &[]);
        assert_eq!(plan.advertised, [ip("127.0.0.1"), ip("::1")]);
    }

    #[test]
    fn a_specific_listen_address_is_advertised_as_it_is() {
        let plan = AddressPlan::new(&[ip("10.0.0.7")], &[], &[ip("10.0.0.7"), ip("10.0.0.8")]);
        assert_eq!(plan.advertised, [ip("10.0.0.7")]);
    }

    #[test]
    fn public_addresses_behind_nat_stand_for_every_local_address_of_their_family() {
        let plan = AddressPlan::new(
            &[ip("0.0.0.0"), ip("::")],
            &[ip("203.0.113.9"), ip("2001:db8::9")],
            &[ip("10.0.0.7")],
        );
        assert_eq!(plan.advertised, [ip("203.0.113.9"), ip("2001:db8::9")]);
        // The cloud's NAT delivers to the private address: it was sent to the public one.
        assert_eq!(plan.advertised_for(ip("10.0.0.7")), ip("203.0.113.9"));
        assert_eq!(plan.advertised_for(ip("fd00::7")), ip("2001:db8::9"));
        // A public address the host does hold keeps its own label.
        assert_eq!(plan.advertised_for(ip("203.0.113.9")), ip("203.0.113.9"));
    }

    #[test]
    fn a_public_address_of_a_family_not_bound_is_left_out() {
        let plan = AddressPlan::new(
            &[ip("0.0.0.0")],
            &[ip("2001:db8::9"), ip("203.0.113.9")],
            &[],
        );
        assert_eq!(plan.advertised, [ip("203.0.113.9")]);
        assert_eq!(plan.advertised_for(ip("::1")), ip("::1"));
    }

    #[test]
    fn many_interfaces_are_capped() {
        let interfaces: Vec<IpAddr> = (1..=20).map(|i| ip(&format!("10.0.{i}.1"))).collect();
        let plan = AddressPlan::new(&[ip("0.0.0.0")], &[], &interfaces);
        assert_eq!(plan.advertised.len(), MAX_ADVERTISED);
    }

    #[test]
    fn the_relay_binds_both_families_on_one_port_and_tcp_beside_it() {
        let udp = bind_udp(&[ip("0.0.0.0"), ip("::"), ip("127.0.0.1")], 0).expect("bind");
        let ports: Vec<u16> = udp.iter().map(|(_, b)| b.port()).collect();
        assert!(
            !ports.is_empty() && ports.iter().all(|p| *p == ports[0]),
            "{ports:?}"
        );
        assert!(udp.len() <= 2, "one socket per family");
        let tcp = bind_tcp(&udp, 0).expect("bind tcp");
        assert_eq!(tcp.len(), udp.len());
    }
}
