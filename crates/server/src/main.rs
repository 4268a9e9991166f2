//! The `natter` binary: read the configuration, start logging, serve until SIGINT or SIGTERM.

use anyhow::Context;
use natter_server::config::ConfigError;
use natter_server::{Config, serve_with, start_tls};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config = match Config::load(std::env::args_os().collect(), |name| {
        std::env::var(name).ok()
    }) {
        Ok(config) => config,
        // clap prints its own messages (and --help, --version) with the right exit code.
        Err(ConfigError::Options(error)) => error.exit(),
        Err(error) => return Err(error.into()),
    };
    // Settings that must fit together are refused before anything is bound or announced.
    config.ice()?;
    config.luna()?;
    config.tls()?;
    config.metrics_token()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every connection is a file descriptor; the usual soft limit of 1,024 is what a crowd of
    // half-open connections exhausts first.
    let ((soft_before, hard), (soft, _)) = natter_server::limits::raise_open_files();
    tracing::info!(
        soft_before,
        soft,
        hard,
        "open files limit (soft raised to hard)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let tls = start_tls(&config).context("setting up HTTPS")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = match (config.acme_domains.first(), address.ip()) {
            (Some(domain), _) => domain.clone(),
            (None, ip) if ip.is_unspecified() => "localhost".to_owned(),
            (None, std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, ip) => ip.to_string(),
        };
        let port = match (scheme, address.port()) {
            ("https", 443) | ("http", 80) => String::new(),
            (_, port) => format!(":{port}"),
        };
        // On stdout, so scripts (and the browser tests) can read the URL.
        println!("Natter is running. Open {scheme}://{host}{port}/ in a browser.");
        if let Some(fingerprint) = tls.as_ref().and_then(|tls| tls.fingerprint.as_deref()) {
            println!(
                "Its self-signed certificate's SHA-256 fingerprint is {fingerprint}: \
                 check that your browser shows the same before you accept it."
            );
        }
        if address.ip().is_unspecified() && config.acme_domains.is_empty() {
            // "localhost" serves only this computer: say what others type (a LAN's people).
            for ip in reachable_addresses(address.ip().is_ipv6()) {
                let host = match ip {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                };
                println!("Other computers reach it at {scheme}://{host}{port}/");
            }
        }
        serve_with(listener, tls, config, shutdown_signal())
            .await
            .context("serving")
    })
}

/// This host's addresses that other hosts may reach (not loopback or link-local), IPv4 first;
/// IPv6 ones only when the listener takes IPv6.
fn reachable_addresses(ipv6: bool) -> Vec<std::net::IpAddr> {
    let mut addresses = natter_sfu::interface_addresses();
    addresses.retain(|ip| (ipv6 || ip.is_ipv4()) && !natter_sfu::reachable_only_here(*ip));
    addresses.sort_by_key(|ip| ip.is_ipv6());
    addresses.dedup();
    addresses
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
