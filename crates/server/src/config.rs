//! Command-line and environment configuration of the `natter` binary.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use natter_proto::limits::{DEFAULT_GROUP_ROOM_CAPACITY, DEFAULT_MAX_FILE_BYTES};
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

    /// Largest file people may send each other, e.g. `200MiB`, `2GiB`, `500MB` or plain bytes.
    /// Files go browser to browser and never touch the server; browsers enforce this limit on
    /// both ends.
    #[arg(long, env = "NATTER_MAX_FILE_SIZE", default_value_t = DEFAULT_MAX_FILE_BYTES,
          value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Most people in one group room (media goes through this server, so each adds upload
    /// here).
    #[arg(long, env = "NATTER_GROUP_CAPACITY", default_value_t = DEFAULT_GROUP_ROOM_CAPACITY,
          value_parser = clap::value_parser!(u32).range(3..=256))]
    pub group_capacity: u32,

    /// UDP port of the media relay (SFU) that group rooms use; one port serves every
    /// participant. 0 picks a free port (only useful for tests).
    #[arg(long, env = "NATTER_RTC_PORT", default_value_t = 8081)]
    pub rtc_port: u16,

    /// TCP port for ICE-TCP, the media relay's fallback for networks that block UDP. By default
    /// the same number as the UDP port.
    #[arg(long, env = "NATTER_RTC_TCP_PORT")]
    pub rtc_tcp_port: Option<u16>,

    /// The IP address browsers reach this server's media relay at, when it differs from the
    /// address it listens on (behind NAT, or listening on 0.0.0.0). Defaults to the listen
    /// address, or 127.0.0.1 when listening on all interfaces.
    #[arg(long, env = "NATTER_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Estimate each group-room participant's bandwidth, pace what the media relay sends them
    /// and pause the videos their connection cannot carry. Turn off only to measure raw
    /// forwarding on one machine (scripts/bench-sfu does).
    #[arg(long, env = "NATTER_BANDWIDTH_ESTIMATION", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "true|false")]
    pub bandwidth_estimation: bool,
}

/// Largest accepted `--max-file-size`: 1 TiB is beyond any browser's storage quota anyway.
const MAX_FILE_SIZE_LIMIT: u64 = 1 << 40;

/// Parses a size with an optional unit: `KB`/`MB`/`GB` (powers of 1000), `KiB`/`MiB`/`GiB`
/// (powers of 1024), or plain bytes. Units are case-insensitive; spaces are allowed before them.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 200MiB, 2GiB or 500MB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err("the file size limit must be at least 1 byte".to_owned()),
        Some(bytes) if bytes <= MAX_FILE_SIZE_LIMIT => Ok(bytes),
        _ => Err("the file size limit can be at most 1TiB".to_owned()),
    }
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

    /// Where the media relay binds its UDP socket and ICE-TCP listener.
    pub fn rtc_addresses(&self) -> (SocketAddr, SocketAddr) {
        let ip = self.listen.ip();
        let tcp_port = self.rtc_tcp_port.unwrap_or(self.rtc_port);
        (
            SocketAddr::new(ip, self.rtc_port),
            SocketAddr::new(ip, tcp_port),
        )
    }

    /// A configuration for tests: listen on ephemeral loopback ports, defaults otherwise.
    pub fn for_tests() -> Self {
        Self::parse_from(["natter", "--listen", "127.0.0.1:0", "--rtc-port", "0"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("200MiB"), Ok(200 * 1024 * 1024));
        assert_eq!(parse_size("2 GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("500mb"), Ok(500_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("12345"), Ok(12_345));
        assert_eq!(parse_size("1TiB").ok(), None, "no TiB unit");
    }

    #[test]
    fn bad_sizes_are_explained() {
        for bad in [
            "",
            "MiB",
            "-5MiB",
            "1.5GiB",
            "0",
            "10 parsecs",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(parse_size("2048GiB"), Err(message) if message.contains("at most")));
    }

    #[test]
    fn the_default_is_the_protocol_default() {
        assert_eq!(Config::for_tests().max_file_size, DEFAULT_MAX_FILE_BYTES);
        let raised = Config::parse_from(["natter", "--max-file-size", "4GiB"]);
        assert_eq!(raised.max_file_size, 4 << 30);
    }
}
