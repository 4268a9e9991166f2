//! HTTPS in the binary, so that one binary is a whole deployment: a certificate from files
//! (re-read when they change), one made at first start for a LAN (`--tls-self-signed`), or one
//! obtained and renewed over ACME (TLS-ALPN-01 on the HTTPS port itself, through rustls-acme).
//!
//! [`Listener`] is what axum serves from, with or without TLS: handshakes run in tasks of their
//! own (at most [`MAX_HANDSHAKES`] at once, each within [`HANDSHAKE_TIMEOUT`]), so a client that
//! stalls its handshake holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::LazyConfigAcceptor;

/// TLS handshakes in progress at once; further connections are closed at once.
pub const MAX_HANDSHAKES: usize = 1024;
/// TLS handshakes under way at once from one client address, so that one address cannot take
/// every handshake slot.
pub const MAX_HANDSHAKES_PER_ADDRESS: u32 = 16;
/// How long a client may take over its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Where `--tls-self-signed` keeps its certificate and key, inside `--data-dir`.
const SELF_SIGNED_DIR: &str = "tls";
/// Where ACME keeps its account and certificates, inside `--data-dir`.
const ACME_DIR: &str = "acme";
/// Let's Encrypt's production directory: the default ACME CA.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or used.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The certificate and key do not belong together, or rustls refused them.
    #[error("the certificate and key cannot be used: {0}")]
    Certificate(String),
    /// The self-signed certificate could not be made or kept.
    #[error("making the self-signed certificate: {0}")]
    SelfSigned(String),
}

/// Where the certificate comes from (the options are checked by `Config::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, re-read when they change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A certificate made at first start and kept in the data directory, for these names and
    /// addresses.
    SelfSigned {
        /// Where it is kept.
        data_dir: PathBuf,
        /// Its subject alternative names (host names and IP addresses).
        names: Vec<String>,
    },
    /// ACME.
    Acme(AcmeSettings),
}

/// What ACME needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names to certify.
    pub domains: Vec<String>,
    /// Contact URLs (`mailto:…`) for the CA's account.
    pub contacts: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// A CA certificate to trust for the directory's own HTTPS instead of the public roots (a
    /// private or test CA such as pebble).
    pub directory_ca: Option<PathBuf>,
    /// Where the account and certificates are kept.
    pub data_dir: PathBuf,
}

/// HTTPS, ready to serve.
pub struct Tls {
    /// For ordinary connections.
    server: Arc<ServerConfig>,
    /// For the ACME CA's TLS-ALPN-01 validation connections, when ACME is on.
    challenge: Option<Arc<ServerConfig>>,
    /// The SHA-256 fingerprint of a self-signed certificate, for people to compare with what
    /// their browser shows.
    pub fingerprint: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("acme", &self.challenge.is_some())
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Certificate(error.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Sets HTTPS up: reads the files (and starts watching them), makes or reads the
    /// self-signed certificate, or starts the ACME task. Must run inside the tokio runtime.
    pub fn start(source: &TlsSource) -> Result<Self, TlsError> {
        match source {
            TlsSource::Files { cert, key } => {
                let loaded = load_certified_key(cert, key)?;
                let resolver = Arc::new(ReloadingCert {
                    current: RwLock::new(Arc::new(loaded)),
                });
                tokio::spawn(watch_files(
                    Arc::clone(&resolver),
                    cert.clone(),
                    key.clone(),
                ));
                Ok(Self {
                    server: Arc::new(server_config(resolver)?),
                    challenge: None,
                    fingerprint: None,
                })
            }
            TlsSource::SelfSigned { data_dir, names } => {
                let (cert, key) = self_signed_files(data_dir, names)?;
                let loaded = load_certified_key(&cert, &key)?;
                let fingerprint = loaded.cert.first().map(|der| fingerprint(der.as_ref()));
                let resolver = Arc::new(ReloadingCert {
                    current: RwLock::new(Arc::new(loaded)),
                });
                Ok(Self {
                    server: Arc::new(server_config(resolver)?),
                    challenge: None,
                    fingerprint,
                })
            }
            TlsSource::Acme(settings) => start_acme(settings),
        }
    }
}

/// The colon-separated SHA-256 of a certificate, as browsers show it.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// Reads a PEM certificate chain and private key and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|error| file_error(cert, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(cert, error))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no PEM certificate in it"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|error| file_error(key, error))?;
    let certified = CertifiedKey::from_der(chain, private, &provider())
        .map_err(|error| TlsError::Certificate(error.to_string()))?;
    Ok(certified)
}

/// The certificate rustls hands out: replaced in place when the files change, so connections
/// and rooms carry on.
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| Arc::clone(&current))
    }
}

/// A file's modification time and size: enough to notice that it was replaced.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Re-reads the certificate and key whenever either file changes. A pair that does not load
/// (half written, or a key that does not match yet) leaves the current certificate in place.
async fn watch_files(resolver: Arc<ReloadingCert>, cert: PathBuf, key: PathBuf) {
    let mut seen = (stamp(&cert), stamp(&key));
    let mut interval = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        interval.tick().await;
        if Arc::strong_count(&resolver) == 1 {
            return; // the server is gone
        }
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        seen = now;
        let (cert, key) = (cert.clone(), key.clone());
        match tokio::task::spawn_blocking(move || load_certified_key(&cert, &key)).await {
            Ok(Ok(loaded)) => {
                if let Ok(mut current) = resolver.current.write() {
                    *current = Arc::new(loaded);
                }
                tracing::info!("the TLS certificate was reloaded");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "the changed TLS certificate cannot be used yet; keeping the current one");
            }
            Err(_) => {}
        }
    }
}

/// The self-signed certificate's files, made on first start (the key readable by the owner
/// only) and reused after, so its fingerprint stays the same.
fn self_signed_files(data_dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join(SELF_SIGNED_DIR);
    let cert = dir.join("self-signed-cert.pem");
    let key = dir.join("self-signed-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    private_dir(&dir)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|error| TlsError::SelfSigned(error.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Natter (self-signed)");
    // Valid from last year to ten years on: a LAN server should not stop working, and a
    // fingerprint people have checked should not change under them.
    let year = 1970 + i32::try_from(crate::unix_now() / 31_556_952).unwrap_or(2026);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let signing =
        rcgen::KeyPair::generate().map_err(|error| TlsError::SelfSigned(error.to_string()))?;
    let made = params
        .self_signed(&signing)
        .map_err(|error| TlsError::SelfSigned(error.to_string()))?;
    write_private(&key, signing.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.pem()).map_err(|error| file_error(&cert, error))?;
    Ok((cert, key))
}

/// Creates a directory only its owner may enter (it holds private keys), or narrows an existing
/// one to that.
fn private_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|error| file_error(dir, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|error| file_error(dir, error))?;
    }
    Ok(())
}

/// Writes a file that only its owner may read (a private key).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|error| file_error(path, error))?;
    file.write_all(contents)
        .map_err(|error| file_error(path, error))
}

/// Starts obtaining (or loading the kept) certificate over ACME, and renewing it, in a task.
fn start_acme(settings: &AcmeSettings) -> Result<Tls, TlsError> {
    // rustls-acme writes the account key and the certificate's key with the default mode: the
    // directory keeps them from other users.
    let cache = settings.data_dir.join(ACME_DIR);
    private_dir(&cache)?;
    let mut config = rustls_acme::AcmeConfig::new(&settings.domains);
    if let Some(ca) = &settings.directory_ca {
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_file_iter(ca).map_err(|error| file_error(ca, error))? {
            let der = der.map_err(|error| file_error(ca, error))?;
            roots.add(der).map_err(|error| file_error(ca, error))?;
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Certificate(error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config = config.client_tls_config(Arc::new(client));
    }
    let mut state = config
        .contact(settings.contacts.iter())
        .directory(&settings.directory)
        .cache(rustls_acme::caches::DirCache::new(
            settings.data_dir.join(ACME_DIR),
        ))
        .state();
    let server = Arc::new(server_config(state.resolver())?);
    let challenge = state.challenge_rustls_config();
    tokio::spawn(async move {
        while let Some(event) = state.next().await {
            match event {
                Ok(event) => tracing::info!(?event, "ACME"),
                // rustls-acme retries by itself, waiting longer each time.
                Err(error) => tracing::warn!(%error, "ACME: no certificate yet"),
            }
        }
    });
    Ok(Tls {
        server,
        challenge: Some(challenge),
        fingerprint: None,
    })
}

/// A connection axum serves: plain TCP or TLS over it.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// The HTTP listener, with or without TLS.
pub struct Listener {
    inner: Inner,
    local: SocketAddr,
}

enum Inner {
    Plain(TcpListener),
    /// Connections whose handshake has completed, from the accepting task.
    Tls(mpsc::Receiver<(Box<dyn Connection>, SocketAddr)>),
}

/// Turns a client's address into the key its handshakes are counted under.
pub type AddressKey = Arc<dyn Fn(std::net::IpAddr) -> natter_room::AddressTag + Send + Sync>;

impl Listener {
    /// Serves `listener` as it is, or over TLS, with at most [`MAX_HANDSHAKES_PER_ADDRESS`]
    /// handshakes at once per client address (as `key` tells addresses apart).
    pub fn new(listener: TcpListener, tls: Option<Tls>, key: AddressKey) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let inner = match tls {
            None => Inner::Plain(listener),
            Some(tls) => {
                let (done, handshaken) = mpsc::channel(64);
                tokio::spawn(accept_tls(listener, Arc::new(tls), key, done));
                Inner::Tls(handshaken)
            }
        };
        Ok(Self { inner, local })
    }
}

impl axum::serve::Listener for Listener {
    type Io = Box<dyn Connection>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match &mut self.inner {
            Inner::Plain(listener) => loop {
                match TcpListener::accept(listener).await {
                    Ok((stream, address)) => {
                        nodelay(&stream);
                        return (Box::new(stream), address);
                    }
                    Err(error) => accept_failed(error).await,
                }
            },
            Inner::Tls(handshaken) => match handshaken.recv().await {
                Some(connection) => connection,
                // The accepting task only ends when this listener is dropped.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Signaling is small messages that must go out at once: without TCP_NODELAY, Nagle's
/// algorithm holds a frame back while an earlier one awaits its (delayed) acknowledgement.
fn nodelay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// Out of file descriptors and the like: wait a moment rather than spin (axum does the same).
async fn accept_failed(error: io::Error) {
    tracing::debug!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Accepts TCP connections and completes their handshakes in tasks of their own, until the
/// listener is dropped.
async fn accept_tls(
    listener: TcpListener,
    tls: Arc<Tls>,
    key: AddressKey,
    done: mpsc::Sender<(Box<dyn Connection>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let per_address = crate::rate::ConnectionCounter::new(MAX_HANDSHAKES_PER_ADDRESS);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = done.closed() => return,
        };
        let (stream, address) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        let Some(place) = per_address.try_acquire(&key(address.ip())) else {
            continue; // dropped: too many handshakes under way from this address
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            continue; // dropped: too many handshakes under way
        };
        nodelay(&stream);
        let (tls, done) = (Arc::clone(&tls), done.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&tls, stream)).await;
            drop((permit, place));
            if let Ok(Ok(Some(connection))) = handshake {
                let _ = done.send((connection, address)).await;
            }
        });
    }
}

/// One handshake. An ACME validation connection is answered with the challenge certificate and
/// closed (`None`).
async fn handshake(tls: &Tls, stream: TcpStream) -> io::Result<Option<Box<dyn Connection>>> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    if let Some(challenge) = &tls.challenge
        && rustls_acme::is_tls_alpn_challenge(&start.client_hello())
    {
        let mut validation = start.into_stream(Arc::clone(challenge)).await?;
        validation.shutdown().await?;
        return Ok(None);
    }
    let connection = start.into_stream(Arc::clone(&tls.server)).await?;
    Ok(Some(Box::new(connection)))
}
