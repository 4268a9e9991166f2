//! The `natter` binary: read the configuration, start logging, serve until SIGINT or SIGTERM.

use anyhow::Context;
use natter_server::config::ConfigError;
use natter_server::{Config, serve};
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
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let shown = if address.ip().is_unspecified() {
            format!("http://localhost:{}/", address.port())
        } else {
            format!("http://{address}/")
        };
        // On stdout, so scripts (and the browser tests) can read the URL.
        println!("Natter is running. Open {shown} in a browser.");
        serve(listener, config, shutdown_signal())
            .await
            .context("serving")
    })
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
