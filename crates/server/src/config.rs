//! Configuration of the `natter` binary: flags, environment variables and a config file.
//!
//! Precedence, lowest first: built-in defaults, the config file (`--config`), environment
//! variables, flags. The file holds one `option = value` per line, options named as the flags
//! without their dashes; `natter.conf.example` lists every one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::ice::{self, IceConfig, TurnAuth, TurnSecret};
use crate::luna::{ApiKey, LunaConfig};
use crate::tls::{AcmeSettings, TlsSource};
use natter_proto::limits::{DEFAULT_GROUP_ROOM_CAPACITY, DEFAULT_MAX_FILE_BYTES};

/// Natter: a self-hosted, account-free room for chat, files and calls.
///
/// Open the printed URL, create a room and share its link. Every option can also be set
/// through the environment variable named beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "natter", version, about, long_about = None, args_override_self = true)]
pub struct Config {
    /// A config file of `option = value` lines (see natter.conf.example). Environment variables
    /// and flags override what it says.
    #[arg(long, env = "NATTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on for HTTP and WebSocket connections.
    #[arg(long, env = "NATTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// HTTPS with this PEM certificate chain (with --tls-key). The files are read again when
    /// they change (a renewed certificate), without dropping anyone.
    #[arg(long, env = "NATTER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key that goes with --tls-cert.
    #[arg(long, env = "NATTER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// HTTPS on a LAN: a certificate made at first start and kept in --data-dir, for this host's
    /// addresses. Its SHA-256 fingerprint is printed so people can check what their browser
    /// shows before they accept it.
    #[arg(long, env = "NATTER_TLS_SELF_SIGNED", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub tls_self_signed: bool,

    /// HTTPS with a certificate obtained and renewed over ACME (Let's Encrypt by default) for
    /// this domain (repeatable, or comma-separated in the environment). The CA checks it through
    /// the HTTPS port itself (TLS-ALPN-01), so that port must be reachable as 443 from outside.
    /// Account and certificates are kept in --data-dir.
    #[arg(
        long = "acme-domain",
        env = "NATTER_ACME_DOMAINS",
        value_delimiter = ',',
        value_name = "DOMAIN"
    )]
    pub acme_domains: Vec<String>,

    /// Contact address for the ACME account, e.g. `admin@example.org` (repeatable).
    #[arg(
        long = "acme-contact",
        env = "NATTER_ACME_CONTACTS",
        value_delimiter = ',',
        value_name = "EMAIL"
    )]
    pub acme_contacts: Vec<String>,

    /// The ACME CA's directory URL.
    #[arg(long, env = "NATTER_ACME_DIRECTORY", value_name = "URL",
          default_value = crate::tls::LETS_ENCRYPT_DIRECTORY)]
    pub acme_directory: String,

    /// A CA certificate (PEM) to trust for the ACME directory's own HTTPS instead of the public
    /// roots: for a private CA, or a test CA such as pebble.
    #[arg(long, env = "NATTER_ACME_DIRECTORY_CA", value_name = "FILE")]
    pub acme_directory_ca: Option<PathBuf>,

    /// With HTTPS on: where plain HTTP is answered with a redirect to HTTPS. By default port 80
    /// of the --listen address (skipped with a warning if it cannot be bound); `off` for none.
    #[arg(long, env = "NATTER_REDIRECT_LISTEN", value_name = "ADDR|off")]
    pub redirect_listen: Option<String>,

    /// Serve `/metrics` (Prometheus text format) on a listener of its own, e.g.
    /// `127.0.0.1:9100`: keep it off the public network.
    #[arg(long, env = "NATTER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Serve `/metrics` on the public listener too, to requests with `Authorization: Bearer
    /// <TOKEN>`. Prefer the environment or --metrics-token-file to a flag.
    #[arg(long, env = "NATTER_METRICS_TOKEN", hide_env_values = true, value_name = "TOKEN",
          value_parser = parse_metrics_token)]
    pub metrics_token: Option<MetricsToken>,

    /// A file holding the metrics token (surrounding white space is ignored).
    #[arg(long, env = "NATTER_METRICS_TOKEN_FILE", value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// STUN URL handed to browsers for connecting peer to peer (repeatable, or comma-separated
    /// in the environment), e.g. `stun:stun.example.org:3478`. None by default: browsers on the
    /// same network connect without one.
    #[arg(
        long = "ice-server",
        env = "NATTER_ICE_SERVERS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub ice_servers: Vec<String>,

    /// TURN URL for people whose networks keep them from connecting directly (repeatable, or
    /// comma-separated in the environment), e.g. `turn:turn.example.org:3478` and
    /// `turns:turn.example.org:5349?transport=tcp`. Needs --turn-secret (or static
    /// credentials).
    #[arg(
        long = "turn-url",
        env = "NATTER_TURN_URLS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub turn_urls: Vec<String>,

    /// The secret shared with the TURN server (coturn: `use-auth-secret` and
    /// `static-auth-secret`). Each join then gets its own credential that expires. Prefer the
    /// environment or --turn-secret-file to a flag. Never logged or sent to browsers.
    #[arg(long, env = "NATTER_TURN_SECRET", hide_env_values = true, value_name = "SECRET",
          value_parser = parse_turn_secret)]
    pub turn_secret: Option<TurnSecret>,

    /// A file holding the TURN secret (surrounding white space is ignored).
    #[arg(long, env = "NATTER_TURN_SECRET_FILE", value_name = "FILE")]
    pub turn_secret_file: Option<PathBuf>,

    /// Seconds a TURN credential stays valid. The TURN server checks it again whenever an
    /// allocation is refreshed, so it has to outlive the longest call.
    #[arg(long, env = "NATTER_TURN_CREDENTIAL_TTL", default_value_t = 86_400,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub turn_credential_ttl: u64,

    /// A fixed TURN user name, for TURN services without a shared secret (with
    /// --turn-password). Everyone in every room can read it: prefer --turn-secret.
    #[arg(long, env = "NATTER_TURN_USERNAME", value_name = "NAME")]
    pub turn_username: Option<String>,

    /// The fixed TURN password that goes with --turn-username.
    #[arg(long, env = "NATTER_TURN_PASSWORD", hide_env_values = true, value_name = "PASSWORD",
          value_parser = parse_turn_password)]
    pub turn_password: Option<TurnSecret>,

    /// Whether pair rooms whose direct and TURN paths both fail may fall back to relaying
    /// through this server's media relay (it then forwards their chat, files and calls, as in
    /// group rooms, and stores nothing). With `false` such people cannot connect.
    #[arg(long, env = "NATTER_PAIR_SERVER_RELAY", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "BOOL")]
    pub pair_server_relay: bool,

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

    /// Addresses the media relay binds (at most one IPv4 and one IPv6; repeatable, or
    /// comma-separated in the environment). By default all interfaces of both families, whatever
    /// --listen says: behind a reverse proxy the HTTP listener stays on 127.0.0.1 while browsers
    /// still reach the relay directly.
    #[arg(long = "rtc-listen", env = "NATTER_RTC_LISTEN", value_delimiter = ',',
          value_name = "IP", default_values_t = [IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)])]
    pub rtc_listen: Vec<IpAddr>,

    /// An address browsers reach this server's media relay at, when it is not one of the host's
    /// own (a cloud server's public address in front of its private one; repeatable for IPv4
    /// and IPv6, or comma-separated in the environment). By default the host's own interface
    /// addresses are advertised, listed in the start-up log.
    #[arg(
        long = "public-ip",
        env = "NATTER_PUBLIC_IP",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub public_ips: Vec<IpAddr>,

    /// Estimate each group-room participant's bandwidth, pace what the media relay sends them
    /// and pause the videos their connection cannot carry. Turn off only to measure raw
    /// forwarding on one machine (scripts/bench-sfu does).
    #[arg(long, env = "NATTER_BANDWIDTH_ESTIMATION", default_value_t = true,
          action = clap::ArgAction::Set, value_name = "true|false")]
    pub bandwidth_estimation: bool,

    /// Directory for the one thing Natter stores: the table of room names (created on first run).
    #[arg(
        long,
        env = "NATTER_DATA_DIR",
        default_value = "natter-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// The room-name database file. Default: names.sqlite3 in the data directory. `:memory:`
    /// keeps names only while the server runs.
    #[arg(long, env = "NATTER_NAMES_DB", value_name = "FILE")]
    pub names_db: Option<PathBuf>,

    /// Most room names kept at once (about 100 bytes each on disk); beyond it, new names are
    /// refused with `server-busy` until old ones expire.
    #[arg(long, env = "NATTER_MAX_ROOM_NAMES", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_room_names: u64,

    /// Proof of work asked of a browser before it may create or join a room: the average number
    /// of SHA-256 hashes a solution takes. 0 turns the check off.
    #[arg(long, env = "NATTER_POW_DIFFICULTY", default_value_t = DEFAULT_POW_DIFFICULTY,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub pow_difficulty: u64,

    /// Challenges per second (over 10 s) above which the difficulty doubles, then doubles again,
    /// up to 16 times. 0 keeps it fixed.
    #[arg(long, env = "NATTER_POW_LOAD_THRESHOLD", default_value_t = 20)]
    pub pow_load_threshold: u64,

    /// HTTP requests per minute from one address (a page load is about 30); more get 429.
    /// 0 turns the limit off.
    #[arg(long, env = "NATTER_HTTP_PER_MINUTE", default_value_t = 3000)]
    pub http_per_minute: u32,

    /// HTTP requests one address may make at once above its per-minute rate.
    #[arg(long, env = "NATTER_HTTP_BURST", default_value_t = 600)]
    pub http_burst: u32,

    /// WebSocket connections per minute from one address; more get 429. 0 turns the limit off.
    #[arg(long, env = "NATTER_WS_PER_MINUTE", default_value_t = 120)]
    pub ws_per_minute: u32,

    /// WebSocket connections one address may open at once above its per-minute rate.
    #[arg(long, env = "NATTER_WS_BURST", default_value_t = 30)]
    pub ws_burst: u32,

    /// New rooms per minute created from one address; more get a `rate-limited` error. 0 turns
    /// the limit off.
    #[arg(long, env = "NATTER_ROOMS_PER_MINUTE", default_value_t = 30)]
    pub rooms_per_minute: u32,

    /// New rooms one address may create at once above its per-minute rate.
    #[arg(long, env = "NATTER_ROOMS_BURST", default_value_t = 20)]
    pub rooms_burst: u32,

    /// New room names per hour from one address (each is kept on disk for 30 days); its IPv4 /24
    /// or IPv6 /48 may add five times as many. 0 turns the limit off.
    #[arg(long, env = "NATTER_NAMES_PER_HOUR", default_value_t = 20)]
    pub names_per_hour: u32,

    /// WebSocket connections one address may hold open at once.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_IP", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_ip: u32,

    /// Connections served at once before they become WebSockets (page loads, static files,
    /// requests still being sent); further ones are closed at once. Default: a quarter of the
    /// process's open-files limit (after raising it to the hard limit), at least 64.
    #[arg(long, env = "NATTER_MAX_HTTP_CONNECTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_http_connections: Option<usize>,

    /// Media sections (`m=` lines of `sfu-offer`s) one address may hold in the media relay across
    /// its connections; each is state the relay keeps. A connection that would pass it is closed
    /// (4006). One person in a full room of the default size holds about 100.
    #[arg(long, env = "NATTER_MEDIA_SECTIONS_PER_ADDRESS", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(16..=1_000_000))]
    pub media_sections_per_address: usize,

    /// Origins whose pages may open a WebSocket here (repeatable, or comma-separated in the
    /// environment), e.g. `https://chat.example.org`. By default only pages this server served
    /// itself; clients that send no Origin (not browsers) are always let in.
    #[arg(
        long = "allowed-origin",
        env = "NATTER_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// Behind a reverse proxy: the request header that carries the client's address, e.g.
    /// `X-Forwarded-For` (its last entry is used) or `X-Real-IP`. Only set this when every
    /// request comes through the proxy, which must overwrite the header; requests without it are
    /// refused. Unset, the address is the connection's.
    #[arg(long, env = "NATTER_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<String>,

    /// The assistant Luna: the base URL of an OpenAI-compatible API, e.g.
    /// `http://localhost:11434/v1` (Ollama) or `http://localhost:8080/v1` (llama.cpp's server).
    /// With --luna-model this turns the assistant on; rooms still opt in. Off by default.
    #[arg(long, env = "NATTER_LUNA_URL", value_name = "URL")]
    pub luna_url: Option<String>,

    /// The model Luna asks, e.g. `llama3.2`.
    #[arg(long, env = "NATTER_LUNA_MODEL", value_name = "NAME")]
    pub luna_model: Option<String>,

    /// The API key for the model's server, if it needs one. Prefer the environment or
    /// --luna-api-key-file to a flag, which other users of the machine can see. Never logged.
    #[arg(long, env = "NATTER_LUNA_API_KEY", hide_env_values = true, value_name = "KEY",
          value_parser = parse_api_key)]
    pub luna_api_key: Option<ApiKey>,

    /// A file holding the API key (surrounding white space is ignored).
    #[arg(long, env = "NATTER_LUNA_API_KEY_FILE", value_name = "FILE")]
    pub luna_api_key_file: Option<PathBuf>,

    /// The system prompt: the operator's instructions to the model. What people write is sent
    /// as user messages and can never replace it.
    #[arg(long, env = "NATTER_LUNA_SYSTEM_PROMPT", value_name = "TEXT",
          default_value = DEFAULT_LUNA_SYSTEM_PROMPT)]
    pub luna_system_prompt: String,

    /// Seconds to wait for the model's first words, and between pieces of its reply.
    #[arg(long, env = "NATTER_LUNA_TIMEOUT", default_value_t = 30, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub luna_timeout: u64,

    /// Seconds a whole reply may take.
    #[arg(long, env = "NATTER_LUNA_REPLY_TIMEOUT", default_value_t = 120, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub luna_reply_timeout: u64,

    /// Replies Luna gives per room per hour; more questions get a short refusal.
    #[arg(long, env = "NATTER_LUNA_REPLIES_PER_HOUR", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub luna_replies_per_hour: u32,

    /// Longest reply, in characters; the rest is cut.
    #[arg(long, env = "NATTER_LUNA_MAX_REPLY_CHARS", default_value_t = 4000,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub luna_max_reply_chars: u64,
}

/// Luna's instructions unless the operator gives others.
pub const DEFAULT_LUNA_SYSTEM_PROMPT: &str = "You are Luna, an assistant in a chat room. People \
     call you by writing @luna. Each message you see starts with its author's name. Answer the \
     last question briefly, in plain text without markup.";

/// A secret given either as a flag (already parsed) or in a file (read and parsed here), not both.
fn flag_or_file<T: Clone>(
    flag: &Option<T>,
    file: Option<&std::path::Path>,
    both: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match (flag, file) {
        (Some(_), Some(_)) => Err(both.to_owned()),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("reading {}: {error}", path.display()))?;
            parse(&text).map(Some)
        }
        (None, None) => Ok(None),
    }
}

fn parse_turn_secret(text: &str) -> Result<TurnSecret, String> {
    TurnSecret::new(text).ok_or_else(|| "the TURN secret is empty".to_owned())
}

fn parse_turn_password(text: &str) -> Result<TurnSecret, String> {
    TurnSecret::new(text).ok_or_else(|| "the TURN password is empty".to_owned())
}

/// The bearer token for `/metrics` on the public listener; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(hidden)")
    }
}

fn parse_metrics_token(text: &str) -> Result<MetricsToken, String> {
    let token = text.trim();
    if token.len() < 16 {
        Err("the metrics token must be at least 16 characters".to_owned())
    } else {
        Ok(MetricsToken(token.to_owned()))
    }
}

fn parse_api_key(text: &str) -> Result<ApiKey, String> {
    let key = text.trim();
    if key.is_empty() {
        Err("the API key is empty".to_owned())
    } else {
        Ok(ApiKey(key.to_owned()))
    }
}

/// Hashes a solution takes on average unless configured: calibrated so headless Chromium on a
/// small server solves it in about a tenth of a second on average (`e2e/tests/pow-bench.test.mjs`).
pub const DEFAULT_POW_DIFFICULTY: u64 = 100_000;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the config file is not `option = value` for a known option.
    #[error("{path}, line {line}: {problem}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The options themselves are wrong (clap's message, which also covers --help and --version).
    #[error(transparent)]
    Options(#[from] clap::Error),
    /// The STUN or TURN settings are wrong or do not fit together.
    #[error("{0}")]
    Ice(String),
    /// The assistant's settings do not fit together, or its key file cannot be read.
    #[error("{0}")]
    Luna(String),
    /// The HTTPS settings do not fit together.
    #[error("{0}")]
    Tls(String),
    /// The metrics token cannot be read or is too short.
    #[error("{0}")]
    Metrics(String),
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

    /// The STUN and TURN servers browsers get, with how TURN credentials are made.
    pub fn ice(&self) -> Result<IceConfig, ConfigError> {
        let urls = |list: &[String], turn: bool| -> Result<Vec<String>, ConfigError> {
            let urls: Vec<String> = list
                .iter()
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect();
            for url in &urls {
                ice::check_url(url, turn).map_err(ConfigError::Ice)?;
            }
            Ok(urls)
        };
        let stun = urls(&self.ice_servers, false)?;
        let turn = urls(&self.turn_urls, true)?;
        let secret = flag_or_file(
            &self.turn_secret,
            self.turn_secret_file.as_deref(),
            "give the TURN secret once: --turn-secret or --turn-secret-file",
            parse_turn_secret,
        )
        .map_err(ConfigError::Ice)?;
        let fixed = match (&self.turn_username, &self.turn_password) {
            (Some(username), Some(password)) => Some((username.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Ice(
                    "static TURN credentials need both --turn-username and --turn-password"
                        .to_owned(),
                ));
            }
        };
        let auth = match (secret, fixed) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Ice(
                    "use either --turn-secret or --turn-username/--turn-password, not both"
                        .to_owned(),
                ));
            }
            (Some(secret), None) => Some(TurnAuth::Secret {
                secret,
                ttl: Duration::from_secs(self.turn_credential_ttl),
            }),
            (None, Some((username, password))) => Some(TurnAuth::Static { username, password }),
            (None, None) => None,
        };
        match (turn.is_empty(), auth.is_some()) {
            (false, false) => Err(ConfigError::Ice(
                "--turn-url needs --turn-secret (or --turn-username and --turn-password)"
                    .to_owned(),
            )),
            (true, true) => Err(ConfigError::Ice(
                "TURN credentials are configured but no --turn-url".to_owned(),
            )),
            _ => IceConfig::new(stun, turn, auth)
                .map_err(|error| ConfigError::Ice(error.to_string())),
        }
    }

    /// The ICE-TCP port: `--rtc-tcp-port`, else the UDP port.
    pub fn rtc_tcp_port(&self) -> u16 {
        self.rtc_tcp_port.unwrap_or(self.rtc_port)
    }

    /// Where HTTPS gets its certificate, or `None` for plain HTTP. Refuses options that do not
    /// fit together.
    pub fn tls(&self) -> Result<Option<TlsSource>, ConfigError> {
        let files = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Tls(
                    "--tls-cert and --tls-key go together".to_owned(),
                ));
            }
        };
        let self_signed = self.tls_self_signed.then(|| TlsSource::SelfSigned {
            data_dir: self.data_dir.clone(),
            names: self.self_signed_names(),
        });
        let acme = if self.acme_domains.is_empty() {
            if !self.acme_contacts.is_empty() || self.acme_directory_ca.is_some() {
                return Err(ConfigError::Tls(
                    "--acme-contact and --acme-directory-ca need --acme-domain".to_owned(),
                ));
            }
            None
        } else {
            Some(TlsSource::Acme(self.acme_settings()?))
        };
        let mut sources = [files, self_signed, acme].into_iter().flatten();
        let source = sources.next();
        if sources.next().is_some() {
            return Err(ConfigError::Tls(
                "choose one way to get a certificate: --tls-cert/--tls-key, --tls-self-signed or --acme-domain"
                    .to_owned(),
            ));
        }
        if source.is_none() && self.redirect_listen.as_deref().is_some_and(|r| r != "off") {
            return Err(ConfigError::Tls(
                "--redirect-listen redirects to HTTPS, which is off".to_owned(),
            ));
        }
        Ok(source)
    }

    fn acme_settings(&self) -> Result<AcmeSettings, ConfigError> {
        for domain in &self.acme_domains {
            let valid = !domain.is_empty()
                && domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                return Err(ConfigError::Tls(format!(
                    "--acme-domain {domain:?} is not a domain name (write it in ASCII, e.g. chat.example.org)"
                )));
            }
        }
        if !self.acme_directory.starts_with("https://") {
            return Err(ConfigError::Tls(
                "--acme-directory must be an https:// URL".to_owned(),
            ));
        }
        let contacts = self
            .acme_contacts
            .iter()
            .map(|contact| {
                let address = contact.strip_prefix("mailto:").unwrap_or(contact);
                if address.contains('@') && !address.contains(char::is_whitespace) {
                    Ok(format!("mailto:{address}"))
                } else {
                    Err(ConfigError::Tls(format!(
                        "--acme-contact {contact:?} is not an email address"
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(AcmeSettings {
            domains: self.acme_domains.clone(),
            contacts,
            directory: self.acme_directory.clone(),
            directory_ca: self.acme_directory_ca.clone(),
            data_dir: self.data_dir.clone(),
        })
    }

    /// What a self-signed certificate names: localhost, the host's name and every address of
    /// the host (a LAN's people type its address), and the --listen address if it is specific.
    fn self_signed_names(&self) -> Vec<String> {
        let mut names = vec!["localhost".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let host = host.trim();
            if !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                names.push(host.to_owned());
            }
        }
        let mut ips = natter_sfu::interface_addresses();
        ips.push(self.listen.ip());
        for ip in ips {
            if ip.is_unspecified() || natter_sfu::is_link_local(ip) {
                continue;
            }
            let ip = ip.to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }
        names
    }

    /// The token that opens `/metrics` on the public listener, if any (from the flag or file).
    pub fn metrics_token(&self) -> Result<Option<MetricsToken>, ConfigError> {
        flag_or_file(
            &self.metrics_token,
            self.metrics_token_file.as_deref(),
            "give --metrics-token or --metrics-token-file, not both",
            parse_metrics_token,
        )
        .map_err(ConfigError::Metrics)
    }

    /// Where plain HTTP redirects to HTTPS, if anywhere: the address, and whether it was asked
    /// for (an address the operator chose must bind; the default may fail with a warning).
    pub fn redirect_address(&self) -> Result<Option<(SocketAddr, bool)>, ConfigError> {
        match self.redirect_listen.as_deref() {
            Some("off") => Ok(None),
            Some(address) => address
                .parse()
                .map(|address| Some((address, true)))
                .map_err(|_| {
                    ConfigError::Tls(format!(
                        "--redirect-listen {address:?} is not an address and port (or off)"
                    ))
                }),
            None => Ok(Some((SocketAddr::new(self.listen.ip(), 80), false))),
        }
    }

    /// A configuration for tests: listen on ephemeral loopback ports, room names in memory,
    /// cheap proofs of work (the whole exchange still happens), defaults otherwise.
    pub fn for_tests() -> Self {
        Self::parse_from([
            "natter",
            "--listen",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--names-db",
            ":memory:",
            "--pow-difficulty",
            "1000",
        ])
    }

    /// Most media sections one `sfu-offer` may carry: a receive slot for each source (microphone,
    /// camera, screen) of everyone else in the largest room, the three it publishes, the data
    /// channel, and a few to spare for slots a browser keeps while people come and go.
    pub fn media_sections_per_offer(&self) -> usize {
        let others = self.group_capacity.saturating_sub(1) as usize;
        3 * others + 3 + 1 + 8
    }

    /// The assistant's settings, or `None` when it is off.
    pub fn luna(&self) -> Result<Option<LunaConfig>, ConfigError> {
        let (url, model) = match (&self.luna_url, &self.luna_model) {
            (None, None) => return Ok(None),
            (Some(url), Some(model)) if !model.trim().is_empty() => (url, model.trim()),
            _ => {
                return Err(ConfigError::Luna(
                    "the assistant needs both --luna-url and --luna-model".to_owned(),
                ));
            }
        };
        let base_url = reqwest::Url::parse(url.trim()).map_err(|error| {
            ConfigError::Luna(format!("--luna-url {url:?} is not a URL: {error}"))
        })?;
        let api_key = flag_or_file(
            &self.luna_api_key,
            self.luna_api_key_file.as_deref(),
            "give the API key once: --luna-api-key or --luna-api-key-file",
            parse_api_key,
        )
        .map_err(ConfigError::Luna)?;
        Ok(Some(LunaConfig {
            base_url,
            model: model.to_owned(),
            api_key,
            system_prompt: self.luna_system_prompt.clone(),
            idle_timeout: Duration::from_secs(self.luna_timeout),
            total_timeout: Duration::from_secs(self.luna_reply_timeout),
            replies_per_hour: self.luna_replies_per_hour,
            max_reply_chars: usize::try_from(self.luna_max_reply_chars).unwrap_or(10_000),
        }))
    }

    /// The room-name database's path.
    pub fn names_db_path(&self) -> PathBuf {
        self.names_db
            .clone()
            .unwrap_or_else(|| self.data_dir.join("names.sqlite3"))
    }

    /// Reads the configuration from `args` (the first is the program name), the environment as
    /// `env` reports it, and the config file that either names.
    pub fn load(
        args: Vec<std::ffi::OsString>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let from_args = config_file_in(&args);
        let Some(path) = from_args.or_else(|| env("NATTER_CONFIG").map(PathBuf::from)) else {
            return Ok(Self::try_parse_from(args)?);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let from_file = file_options(&text, &path, &env)?;
        // The file's options go before the real ones: later occurrences win (args_override_self).
        let mut merged = Vec::with_capacity(args.len() + from_file.len());
        let mut args = args.into_iter();
        merged.extend(args.next());
        merged.extend(from_file.into_iter().map(std::ffi::OsString::from));
        merged.extend(args);
        Ok(Self::try_parse_from(merged)?)
    }
}

/// The value of `--config FILE` or `--config=FILE` among `args`.
fn config_file_in(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Turns a config file into `--option=value` arguments, leaving out options whose environment
/// variable is set (the environment wins over the file).
fn file_options(
    text: &str,
    path: &std::path::Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ConfigError> {
    let command = Config::command();
    let mut options = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let syntax = |problem: String| ConfigError::Syntax {
            path: path.to_owned(),
            line: index + 1,
            problem,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| syntax("expected `option = value`".to_owned()))?;
        let key = key.trim();
        let argument = command
            .get_arguments()
            .find(|argument| argument.get_long() == Some(key) && key != "config")
            .ok_or_else(|| syntax(format!("unknown option `{key}` (see natter --help)")))?;
        let overridden = argument
            .get_env()
            .and_then(|name| name.to_str())
            .is_some_and(|name| env(name).is_some());
        if overridden {
            continue;
        }
        for value in parse_value(value.trim()).map_err(syntax)? {
            options.push(format!("--{key}={value}"));
        }
    }
    Ok(options)
}

/// A value: bare text, a "double-quoted string", or a list `["a", "b"]` of quoted strings.
fn parse_value(value: &str) -> Result<Vec<String>, String> {
    let unquote = |item: &str| -> Result<String, String> {
        let item = item.trim();
        match item
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
        {
            Some(inner) if !inner.contains('"') => Ok(inner.to_owned()),
            Some(_) => Err("quotes inside a value are not supported".to_owned()),
            None if item.contains('"') => Err(format!("unbalanced quotes in {item}")),
            None => Ok(item.to_owned()),
        }
    };
    if let Some(list) = value.strip_prefix('[') {
        let list = list
            .strip_suffix(']')
            .ok_or_else(|| "a list ends with `]`".to_owned())?;
        return list
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(unquote)
            .collect();
    }
    if value.is_empty() {
        return Err("the value is missing".to_owned());
    }
    Ok(vec![unquote(value)?])
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

    fn load(
        args: &[&str],
        env: &[(&str, &str)],
        file: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        args.insert(0, "natter".into());
        let path = std::env::temp_dir().join(format!(
            "natter-config-test-{}-{}.conf",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        if let Some(file) = file {
            std::fs::write(&path, file).expect("write config");
            args.push(format!("--config={}", path.display()).into());
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let result = Config::load(args, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        });
        let _ = std::fs::remove_file(&path);
        result
    }

    #[test]
    fn the_file_sets_defaults_the_environment_and_flags_override() {
        let file = "# a comment\n\nlisten = \"127.0.0.1:9000\"\npow-difficulty = 7\n\
                    ice-server = [\"stun:a.example:3478\", \"stun:b.example:3478\"]\n\
                    group-capacity = 12\n";
        let config = load(&[], &[], Some(file)).expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.pow_difficulty, 7);
        assert_eq!(config.group_capacity, 12);
        assert_eq!(config.ice_servers.len(), 2);
        let config = load(
            &["--pow-difficulty", "9"],
            &[("NATTER_GROUP_CAPACITY", "5")],
            Some(file),
        )
        .expect("valid");
        assert_eq!(config.pow_difficulty, 9, "a flag beats the file");
        // The environment beats the file: the file's line is skipped and clap reads the variable
        // from the real environment, which is not set here, so the default shows.
        assert_eq!(config.group_capacity, DEFAULT_GROUP_ROOM_CAPACITY);
    }

    #[test]
    fn file_mistakes_name_the_line() {
        for (file, line, words) in [
            ("listen = 127.0.0.1:1\nnonsense\n", 2, "option = value"),
            ("\nteleport = yes\n", 2, "unknown option `teleport`"),
            ("config = other.conf\n", 1, "unknown option `config`"),
            ("listen = \"127.0.0.1:1\n", 1, "unbalanced"),
            ("ice-server = [\"a\"\n", 1, "ends with"),
            ("listen =\n", 1, "missing"),
        ] {
            match load(&[], &[], Some(file)) {
                Err(ConfigError::Syntax {
                    line: at, problem, ..
                }) => {
                    assert_eq!(at, line, "{file:?}");
                    assert!(problem.contains(words), "{file:?}: {problem}");
                }
                other => panic!("{file:?} gave {other:?}"),
            }
        }
        // A bad value is clap's to explain.
        assert!(matches!(
            load(&[], &[], Some("group-capacity = 1\n")),
            Err(ConfigError::Options(_))
        ));
        assert!(matches!(
            load(&["--config", "/nonexistent/natter.conf"], &[], None),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn the_sample_file_is_valid_and_lists_every_option() {
        let sample = include_str!("../../../natter.conf.example");
        // As shipped, every option is commented out: the defaults.
        let config = load(&[], &[], Some(sample)).expect("the sample parses");
        assert_eq!(config.pow_difficulty, DEFAULT_POW_DIFFICULTY);
        // Each `#option = value` line, uncommented, is a valid setting.
        let is_option = |line: &str| {
            line.strip_prefix('#')
                .and_then(|rest| rest.split_once(" = "))
                .is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
        };
        let uncommented: String = sample
            .lines()
            .map(|line| if is_option(line) { &line[1..] } else { line })
            .collect::<Vec<_>>()
            .join("\n");
        load(&[], &[], Some(&uncommented)).expect("every example value is valid");
        for argument in Config::command().get_arguments() {
            let Some(long) = argument.get_long() else {
                continue;
            };
            if matches!(long, "config" | "help" | "version") {
                continue;
            }
            assert!(
                sample
                    .lines()
                    .any(|line| is_option(line) && line[1..].starts_with(&format!("{long} = "))),
                "natter.conf.example does not list {long}"
            );
        }
    }

    #[test]
    fn turn_needs_exactly_one_kind_of_credential_and_urls_of_its_kind() {
        let parse = |args: &[&str]| {
            let mut all = vec!["natter"];
            all.extend_from_slice(args);
            Config::parse_from(all).ice()
        };
        let none = parse(&[]).expect("STUN-only is fine");
        assert!(!none.has_turn() && none.stun.is_empty());
        let turn = parse(&["--turn-url", "turn:t.example:3478", "--turn-secret", "s"]);
        assert!(turn.expect("valid").has_turn());
        let refusals: [(&[&str], &str); 6] = [
            (&["--turn-url", "turn:t.example"], "needs --turn-secret"),
            (&["--turn-secret", "s"], "no --turn-url"),
            (
                &["--turn-url", "turn:t.example", "--turn-username", "u"],
                "both",
            ),
            (
                &[
                    "--turn-url",
                    "turn:t.example",
                    "--turn-secret",
                    "s",
                    "--turn-username",
                    "u",
                    "--turn-password",
                    "p",
                ],
                "not both",
            ),
            (&["--ice-server", "turn:t.example"], "--turn-url"),
            (
                &["--turn-url", "stun:t.example", "--turn-secret", "s"],
                "--ice-server",
            ),
        ];
        for (args, expected) in refusals {
            match parse(args) {
                Err(ConfigError::Ice(message)) => {
                    assert!(message.contains(expected), "{args:?}: {message}");
                }
                other => panic!("{args:?} was accepted: {other:?}"),
            }
        }
        let path = std::env::temp_dir().join(format!("natter-turn-{}", std::process::id()));
        std::fs::write(&path, "  from-a-file\n").expect("write");
        let path_text = path.to_str().expect("path");
        let from_file = parse(&[
            "--turn-url",
            "turn:t.example",
            "--turn-secret-file",
            path_text,
        ])
        .expect("valid");
        let peer = natter_proto::PeerId::try_from("peer-ann-0000000001".to_owned()).expect("peer");
        let servers = from_file.for_peer(&peer, 0);
        let secret = TurnSecret::new("from-a-file").expect("secret");
        assert_eq!(
            servers[0].credential.as_deref(),
            Some(
                ice::turn_password(&secret, &format!("86400:{}", from_file.peer_tag(&peer)))
                    .as_str()
            )
        );
        std::fs::remove_file(&path).ok();
        let flagged = Config::parse_from([
            "natter",
            "--turn-secret",
            "on-the-command-line",
            "--turn-password",
            "fixed-password",
        ]);
        assert!(!format!("{flagged:?}").contains("fixed-password"));
        assert!(!format!("{flagged:?}").contains("on-the-command-line"));
    }

    #[test]
    fn luna_is_off_by_default_and_needs_both_url_and_model() {
        assert!(Config::for_tests().luna().expect("valid").is_none());
        let only_url = Config::parse_from(["natter", "--luna-url", "http://localhost:11434/v1"]);
        assert!(matches!(only_url.luna(), Err(ConfigError::Luna(m)) if m.contains("both")));
        let bad_url =
            Config::parse_from(["natter", "--luna-url", "not a url", "--luna-model", "m"]);
        assert!(matches!(bad_url.luna(), Err(ConfigError::Luna(_))));
        let on = Config::parse_from([
            "natter",
            "--luna-url",
            "http://localhost:11434/v1",
            "--luna-model",
            "llama3.2",
        ]);
        let luna = on.luna().expect("valid").expect("on");
        assert_eq!(luna.model, "llama3.2");
        assert_eq!(luna.replies_per_hour, 30);
        assert!(luna.api_key.is_none());
    }

    #[test]
    fn the_api_key_comes_from_a_file_and_never_shows_in_debug_output() {
        let path = std::env::temp_dir().join(format!("natter-key-{}", std::process::id()));
        std::fs::write(&path, "  sk-from-a-file\n").expect("write");
        let config = Config::parse_from([
            "natter",
            "--luna-url",
            "http://localhost:11434/v1",
            "--luna-model",
            "m",
            "--luna-api-key-file",
            path.to_str().expect("path"),
        ]);
        let luna = config.luna().expect("valid").expect("on");
        assert_eq!(
            luna.api_key.map(|key| key.0).as_deref(),
            Some("sk-from-a-file")
        );
        let flagged = Config::parse_from(["natter", "--luna-api-key", "sk-on-the-command-line"]);
        assert!(!format!("{flagged:?}").contains("sk-on-the-command-line"));
        let both = Config::parse_from([
            "natter",
            "--luna-url",
            "http://x/v1",
            "--luna-model",
            "m",
            "--luna-api-key",
            "k",
            "--luna-api-key-file",
            path.to_str().expect("path"),
        ]);
        assert!(matches!(both.luna(), Err(ConfigError::Luna(m)) if m.contains("once")));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_default_is_the_protocol_default() {
        assert_eq!(Config::for_tests().max_file_size, DEFAULT_MAX_FILE_BYTES);
        let raised = Config::parse_from(["natter", "--max-file-size", "4GiB"]);
        assert_eq!(raised.max_file_size, 4 << 30);
    }
}
