//! Command-line and environment configuration of the `natter` binary.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use natter_proto::signaling::IceServer;

/// Natter: a self-hosted, account-free room for chat, files and calls.
///
/// Open the printed URL, create a room and share its link. Every option can also be set
/// through the environment variable named beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "natter", version, about, long_about = None)]
pub struct Config {
    /// Address and port to listen on for HTTP and WebSocket connections.
    #[arg(long, env = "NATTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// STUN or TURN URL handed to browsers for connecting peer to peer (repeatable, or
    /// comma-separated in the environment), e.g. `stun:stun.example.org:3478`. None by default:
    /// browsers on the same network connect without one.
    #[arg(
        long = "ice-server",
        env = "NATTER_ICE_SERVERS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub ice_servers: Vec<String>,

    /// Seconds a person whose connection dropped keeps their place in a room before the others
    /// are told they left.
    #[arg(long, env = "NATTER_RECONNECT_GRACE", default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reconnect_grace: u64,

    /// Most WebSocket connections served at once; further ones get HTTP 503.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
}

impl Config {
    /// The reconnect grace as a duration.
    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_secs(self.reconnect_grace)
    }

    /// The ICE servers in the shape `welcome` carries them.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        self.ice_servers
            .iter()
            .filter(|url| !url.trim().is_empty())
            .map(|url| IceServer {
                urls: vec![url.trim().to_owned()],
                username: None,
                credential: None,
            })
            .collect()
    }

    /// A configuration for tests: listen on an ephemeral loopback port, defaults otherwise.
    pub fn for_tests() -> Self {
        Self::parse_from(["natter", "--listen", "127.0.0.1:0"])
    }
}
