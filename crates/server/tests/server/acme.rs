//! ACME against a real ACME server: Debian's pebble (Let's Encrypt's test CA), which checks
//! TLS-ALPN-01 by connecting to Natter's HTTPS port, and pebble-challtestsrv as the DNS that
//! points the test's domain at this host.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{free_port, tls_client};
use crate::{Running, natter};

const DOMAIN: &str = "natter.test";

/// pebble's own HTTPS needs a certificate from a CA (webpki refuses a CA certificate used as a
/// server's): a test CA and a certificate for localhost signed by it. Returns the CA's PEM.
fn write_pebble_certificates(dir: &Path) -> String {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "natter test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf_cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    ca.pem()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], env: &[(&str, &str)]) -> Killed {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    Killed(command.spawn().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}): Debian's pebble package (scripts/test installs it)")
    }))
}

/// pebble and its DNS, answering every name with 127.0.0.1; pebble validates on `https_port`.
fn start_pebble(dir: &Path, https_port: u16) -> (Vec<Killed>, u16, u16) {
    let (acme, management, dns) = (free_port(), free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": free_port(),
        "tlsPort": https_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let dns_at = format!("127.0.0.1:{dns}");
    let challtestsrv = spawn(
        "pebble-challtestsrv",
        &[
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &dns_at,
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &[],
    );
    let pebble = spawn(
        "pebble",
        &[
            "-config",
            config_path.to_str().unwrap(),
            "-dnsserver",
            &dns_at,
        ],
        // No random waits before validating: the test should take seconds, not minutes.
        &[("PEBBLE_VA_NOSLEEP", "1")],
    );
    (vec![pebble, challtestsrv], acme, management)
}

fn roots_from_pem(pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    roots
}

/// `GET path` over HTTPS with `name` as the server name, trusting only `roots`.
async fn get(
    at: SocketAddr,
    name: &str,
    roots: rustls::RootCertStore,
    path: &str,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(at).await?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = tokio::time::timeout(
        Duration::from_secs(5),
        tls_client(roots).connect(server_name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut raw)).await;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Waits until Natter serves /healthz over HTTPS under `DOMAIN` with a certificate that chains
/// to pebble's root.
async fn wait_for_certificate(at: SocketAddr, pebble_root: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match get(at, DOMAIN, roots_from_pem(pebble_root), "/healthz").await {
            Ok(response) if response.ends_with("ok") => return,
            outcome => assert!(
                Instant::now() < deadline,
                "no certificate from pebble within {within:?}: {outcome:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_certificate_comes_from_an_acme_ca_over_tls_alpn_and_is_kept_across_restarts() {
    let dir = std::env::temp_dir().join(format!("natter-acme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let test_ca = write_pebble_certificates(&dir);
    let https_port = free_port();
    let (pebble, acme, management) = start_pebble(&dir, https_port);
    let data = dir.join("data");
    let natter_args = |data: &Path| {
        let mut command = natter();
        command
            .args([
                "--listen",
                &format!("127.0.0.1:{https_port}"),
                "--redirect-listen",
                "off",
            ])
            .args(["--data-dir", data.to_str().unwrap()])
            .args([
                "--acme-domain",
                DOMAIN,
                "--acme-contact",
                "admin@natter.test",
            ])
            .args(["--acme-directory", &format!("https://127.0.0.1:{acme}/dir")])
            .args(["--acme-directory-ca", dir.join("ca.pem").to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    // pebble needs a moment to listen; natter retries on its own.
    let first = Running(natter_args(&data).spawn().unwrap());
    // pebble makes a new root at every start: ask it which.
    let management_at: SocketAddr = format!("127.0.0.1:{management}").parse().unwrap();
    let mut root = String::new();
    for _ in 0..50 {
        if let Ok(response) = get(
            management_at,
            "localhost",
            roots_from_pem(&test_ca),
            "/roots/0",
        )
        .await
            && let Some(start) = response.find("-----BEGIN CERTIFICATE-----")
        {
            root = response[start..].to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!root.is_empty(), "pebble never served its root");
    let at: SocketAddr = format!("127.0.0.1:{https_port}").parse().unwrap();
    wait_for_certificate(at, &root, Duration::from_secs(30)).await;

    // The keys are the operator's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("acme"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "others may read the ACME keys: {mode:o}");
    }

    // Restarted with the CA gone, the kept certificate is served at once.
    drop(first);
    drop(pebble);
    let _second = Running(natter_args(&data).spawn().unwrap());
    wait_for_certificate(at, &root, Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
