//! The media relay's real sockets: a browser-like client (a str0m participant over UDP) connects
//! to a relay bound to all interfaces, at an address that is not the one it was bound to, and
//! through a one-to-one NAT in front of it. Regression tests for group rooms that stayed
//! "Connecting…" whenever the server was not on the people's own host.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natter_loadgen::{Participant, Publish};
use natter_proto::{PeerId, RoomId, ServerMessage};
use natter_sfu::{ClientId, Command, DriverConfig};
use tokio::net::UdpSocket;

/// Joins a relay started with `config` from a client bound to `client_ip`. `nat` stands for a
/// one-to-one NAT: the client sends what it addresses to the advertised address to this local one
/// instead, and sees the replies as coming from the advertised address. Returns whether the
/// client's connection (ICE and DTLS) came up within a few seconds.
async fn connects(config: DriverConfig, client_ip: IpAddr, nat: Option<IpAddr>) -> bool {
    let sfu = natter_sfu::start(&config).unwrap();
    let advertised = sfu.advertised.udp.clone();
    assert!(!advertised.is_empty(), "the relay advertises an address");
    let udp = UdpSocket::bind(SocketAddr::new(client_ip, 0))
        .await
        .unwrap();
    let now = Instant::now();
    let mut client = Participant::new(
        now,
        now,
        udp.local_addr().unwrap(),
        Publish {
            audio: true,
            video: false,
        },
    );
    let (sdp, tracks) = client.take_offer().unwrap();
    let (answers, answered) = mpsc::channel();
    assert!(
        sfu.send(Command::Offer {
            client: ClientId(1),
            room: RoomId::try_from("RoomRoomRoomRoomRoom01".to_owned()).unwrap(),
            peer: PeerId::try_from("participant-00001".to_owned()).unwrap(),
            sdp,
            tracks,
            deliver: Box::new(move |message| answers.send(message).is_ok()),
        })
        .await
    );
    let answer = tokio::task::spawn_blocking(move || answered.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let ServerMessage::SfuAnswer { sdp } = answer else {
        panic!("not an answer: {answer:?}");
    };
    client.handle_answer(&sdp).unwrap();
    // The NAT's two directions: the advertised address outside, the local one inside.
    let outside = advertised[0];
    let inside = nat.map(|ip| SocketAddr::new(ip, outside.port()));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buffer = vec![0u8; 2048];
    let mut transmits = Vec::new();
    while Instant::now() < deadline {
        if client.rtc.is_connected() {
            return true;
        }
        let wake = client.poll(Instant::now(), &mut transmits).unwrap();
        for transmit in transmits.drain(..) {
            let destination = match inside {
                Some(inside) if transmit.destination == outside => inside,
                _ => transmit.destination,
            };
            let _ = udp.send_to(&transmit.contents, destination).await;
        }
        let wait = wake
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        match tokio::time::timeout(wait, udp.recv_from(&mut buffer)).await {
            Ok(Ok((length, source))) => {
                let source = if Some(source) == inside {
                    outside
                } else {
                    source
                };
                client
                    .handle_receive(Instant::now(), source, &buffer[..length])
                    .unwrap();
            }
            _ => client.handle_timeout(Instant::now()).unwrap(),
        }
    }
    false
}

fn config(listen: &[&str], public: &[&str]) -> DriverConfig {
    DriverConfig {
        listen: listen.iter().map(|ip| ip.parse().unwrap()).collect(),
        udp_port: 0,
        tcp_port: None,
        public_ips: public.iter().map(|ip| ip.parse().unwrap()).collect(),
        bandwidth_estimation: false,
    }
}

#[tokio::test]
async fn a_relay_bound_to_all_interfaces_answers_at_the_address_it_advertises() {
    // The bug: bound to 0.0.0.0, every datagram was labelled 0.0.0.0:port, which matched no
    // candidate, so str0m ignored every connectivity check.
    let sfu = natter_sfu::start(&config(&["0.0.0.0"], &[])).unwrap();
    let reachable = sfu.advertised.udp[0].ip();
    drop(sfu);
    assert!(connects(config(&["0.0.0.0"], &[]), reachable, None).await);
}

#[tokio::test]
async fn a_relay_behind_a_one_to_one_nat_answers_on_its_private_address() {
    // A cloud server: browsers send to the public address, the NAT delivers to a private one
    // (loopback here), and the relay must still take them as meant for its public candidate.
    let behind_nat = config(&["0.0.0.0"], &["203.0.113.9"]);
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(connects(behind_nat, loopback, Some(loopback)).await);
}

#[tokio::test]
async fn without_the_public_address_the_same_nat_gets_no_answer() {
    // The control for the test above: the same NAT in front of a relay that advertises its
    // interface address instead fails, so the test above passes because of the translation.
    let sfu = natter_sfu::start(&config(&["0.0.0.0"], &[])).unwrap();
    let advertised = sfu.advertised.udp[0].ip();
    drop(sfu);
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        !advertised.is_loopback(),
        "this host has no address but loopback, so the control cannot be run"
    );
    assert!(!connects(config(&["0.0.0.0"], &[]), loopback, Some(loopback)).await);
}
