//! HTTPS in the binary: certificate files picked up again when they change (without dropping
//! anyone), handshakes that cannot hold up other people, the redirect from plain HTTP, and the
//! self-signed certificate a LAN server keeps.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use natter_server::Config;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    HttpResponse, Server, config_with, free_port, http_get, parse_response, tls_client,
    wait_for_listener,
};
use crate::{Running, natter, spawn_natter};

/// A certificate for localhost and 127.0.0.1 with its key, written as PEM files; returns the
/// certificate's DER.
fn write_certificate(dir: &Path) -> Vec<u8> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    // Key first: the server must cope with a moment when only one of the two is new.
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    made.cert.der().to_vec()
}

fn tls_config(dir: &Path, extra: &[&str]) -> Config {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut args = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    config_with(&args)
}

/// Connects over TLS trusting only `trusted`, and returns the stream and the certificate the
/// server presented.
async fn tls_connect(
    addr: SocketAddr,
    trusted: &[u8],
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trusted.to_vec())).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(Duration::from_secs(5), tls_client(roots).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("the handshake timed out"))??;
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.to_vec())
        .unwrap_or_default();
    Ok((stream, presented))
}

async fn https_get(addr: SocketAddr, trusted: &[u8], path: &str) -> HttpResponse {
    let (mut stream, _) = tls_connect(addr, trusted).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after the response; what was read counts.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    parse_response(&raw)
}

#[tokio::test]
async fn https_from_certificate_files_picks_up_a_renewed_certificate_without_dropping_anyone() {
    let dir = tempdir();
    let first = write_certificate(dir.path());
    let server = Server::start_with(tls_config(dir.path(), &["--redirect-listen", "off"])).await;
    let response = https_get(server.addr, &first, "/healthz").await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok"[..])
    );
    // Plain HTTP on the HTTPS port gets nowhere.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::spawn(async move { http_get(server.addr, "/healthz", &[]).await })
        )
        .await
        .map_or(true, |joined| joined.is_err()),
        "plain HTTP was answered on the HTTPS port"
    );

    // Someone connected before the renewal stays connected through it.
    let (mut kept, _) = tls_connect(server.addr, &first).await.unwrap();
    let renewed = write_certificate(dir.path());
    assert_ne!(first, renewed);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        // A client that trusts only the new certificate gets in once it is picked up.
        if let Ok((_, presented)) = tls_connect(server.addr, &renewed).await {
            assert_eq!(presented, renewed);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), kept.read_to_end(&mut raw)).await;
    assert_eq!(
        parse_response(&raw).status,
        200,
        "the older connection was dropped"
    );

    // A broken file (a deploy script half way through, a typo) changes nothing.
    std::fs::write(
        dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let response = https_get(server.addr, &renewed, "/healthz").await;
    assert_eq!(
        response.status, 200,
        "a broken certificate file took HTTPS down"
    );
}

#[tokio::test]
async fn a_client_that_stalls_its_handshake_holds_up_nobody() {
    let dir = tempdir();
    let cert = write_certificate(dir.path());
    let server = Server::start_with(tls_config(dir.path(), &["--redirect-listen", "off"])).await;
    // Connections from another address that say nothing, more than its share of handshakes,
    // and one that sends half a ClientHello.
    let per_address = natter_server::tls::MAX_HANDSHAKES_PER_ADDRESS as usize;
    let mut silent = Vec::new();
    for _ in 0..per_address + 10 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 66], 0)))
            .unwrap();
        silent.push(socket.connect(server.addr).await.unwrap());
    }
    // Those past its share are closed at once; its share waits out the handshake timeout.
    let mut closed = 0;
    for stream in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 10,
        "closed past the address's {per_address} handshakes"
    );
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    let response = https_get(server.addr, &cert, "/healthz").await;
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Garbage instead of a handshake is refused, and the server carries on.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut answer)).await;
    // At most a TLS alert record, then the connection is closed.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    assert_eq!(https_get(server.addr, &cert, "/healthz").await.status, 200);
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_on_the_same_host_and_path() {
    let dir = tempdir();
    write_certificate(dir.path());
    let redirect = free_port();
    let redirect_arg = format!("127.0.0.1:{redirect}");
    let server = Server::start_with(tls_config(
        dir.path(),
        &["--redirect-listen", redirect_arg.as_str()],
    ))
    .await;
    let at: SocketAddr = redirect_arg.parse().unwrap();
    wait_for_listener(at).await;
    let response = get_with_host(at, "/g/abc?x=1", "natter.test:8080").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some(format!("https://natter.test:{}/g/abc?x=1", server.addr.port()).as_str())
    );
    let response = get_with_host(at, "/", "[::1]:80").await;
    assert_eq!(
        response.header("location"),
        Some(format!("https://[::1]:{}/", server.addr.port()).as_str())
    );
    // A Host that would turn the redirect into something else is refused.
    for evil in ["evil.example/x", "a@b", "[nonsense]", "x\"y"] {
        let response = get_with_host(at, "/", evil).await;
        assert_eq!(
            response.status,
            400,
            "{evil}: {:?}",
            response.header("location")
        );
    }
}

#[tokio::test]
async fn the_self_signed_certificate_is_kept_and_its_fingerprint_printed() {
    let dir = tempdir();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut printed = Vec::new();
    for _ in 0..2 {
        let mut child = spawn_natter(&[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--tls-self-signed",
            "--redirect-listen",
            "off",
        ]);
        let lines = first_lines(&mut child, 2).await;
        assert!(lines[0].contains("Open https://127.0.0.1:"), "{lines:?}");
        let fingerprint = lines[1]
            .split_whitespace()
            .find(|word| word.len() == 96 && word.matches(':').count() == 32)
            .unwrap_or_else(|| panic!("no fingerprint in {lines:?}"))
            .trim_end_matches(':')
            .to_owned();
        printed.push(fingerprint);
    }
    assert_eq!(printed[0], printed[1], "a restart made a new certificate");
    let pem = std::fs::read(dir.path().join("tls/self-signed-cert.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|der: CertificateDer<'static>| der.to_vec())
        .unwrap();
    assert_eq!(printed[0], natter_server::tls::fingerprint(&der));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("tls/self-signed-key.pem")).unwrap();
        assert_eq!(
            key.permissions().mode() & 0o077,
            0,
            "the key is readable by others"
        );
    }
}

#[test]
fn https_settings_that_do_not_fit_stop_the_binary_before_it_announces_itself() {
    for (args, expected) in [
        (
            &["--tls-cert", "/nonexistent/cert.pem"][..],
            "--tls-cert and --tls-key go together",
        ),
        (
            &["--tls-self-signed", "--acme-domain", "chat.example.org"][..],
            "choose one way",
        ),
        (
            &["--acme-domain", "not a domain"][..],
            "is not a domain name",
        ),
        (
            &["--acme-contact", "me@example.org"][..],
            "need --acme-domain",
        ),
        (
            &["--redirect-listen", "0.0.0.0:80"][..],
            "HTTPS, which is off",
        ),
        (
            &[
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ][..],
            "/nonexistent/cert.pem",
        ),
    ] {
        let output = natter()
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stdout.contains("Natter is running"), "{args:?}: {stdout}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The first `count` lines the binary prints.
async fn first_lines(child: &mut Running, count: usize) -> Vec<String> {
    use std::io::BufRead;
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .take(count)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    tokio::time::timeout(Duration::from_secs(10), lines)
        .await
        .expect("the binary printed too little")
        .unwrap()
}

/// `GET path` with exactly this `Host` header.
async fn get_with_host(at: SocketAddr, path: &str, host: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(at).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    parse_response(&raw)
}

/// A temporary directory, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "natter-https-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

#[tokio::test]
async fn a_server_on_all_interfaces_says_what_other_computers_type() {
    let expected: Vec<String> = natter_sfu::interface_addresses()
        .into_iter()
        .filter(|ip| ip.is_ipv4() && !natter_sfu::reachable_only_here(*ip))
        .map(|ip| ip.to_string())
        .collect();
    let mut child = spawn_natter(&["--listen", "0.0.0.0:0"]);
    let lines = first_lines(&mut child, 1 + expected.len()).await;
    assert!(
        lines[0].starts_with("Natter is running. Open http://localhost:"),
        "{lines:?}"
    );
    let port = lines[0]
        .split("localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    for ip in &expected {
        let line = format!("Other computers reach it at http://{ip}:{port}/");
        assert!(lines.contains(&line), "{line:?} not in {lines:?}");
    }
}
