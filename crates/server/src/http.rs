//! The main listener's connection loop, in place of `axum::serve`, for the limits it cannot set:
//! a deadline for reading each request's headers (which also ends idle keep-alive connections),
//! open TCP connections per client address, and connections still speaking HTTP (not yet
//! WebSockets) in total. Without them, a thousand half-sent requests from one address held every
//! file descriptor and locked everyone else out (slowloris).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use natter_room::AddressTag;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower_service::Service;

use crate::guard::Guard;
use crate::rate::ConnectionCounter;
use crate::tls;

/// How the connection loop limits its clients.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers, from the moment the server waits for them
    /// (after connecting, and between requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Open TCP connections per client address; `None` behind a trusted reverse proxy, where
    /// every connection comes from the proxy's address (the proxy limits its clients).
    pub per_address: Option<u32>,
    /// Connections in the HTTP stage (not yet upgraded to a WebSocket) in total; further
    /// connections are closed at once.
    pub http_stage: usize,
}

/// A connection's place among those in the HTTP stage, put in each of its requests' extensions;
/// the WebSocket handler gives it up once the connection has become a WebSocket (whose own
/// limits take over).
#[derive(Debug, Clone)]
pub struct HttpStage(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl HttpStage {
    /// The connection is no longer in the HTTP stage.
    pub fn leave(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// Serves `app` on `listener` until `stopping` turns true, then lets the open HTTP connections
/// finish their requests (upgraded WebSockets carry on; their sessions close them).
pub async fn serve(
    mut listener: tls::Listener,
    app: Router,
    guard: Arc<Guard>,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let stage = Arc::new(Semaphore::new(limits.http_stage));
    let per_address = limits.per_address.map(ConnectionCounter::<AddressTag>::new);
    // Every connection task holds a sender; when the last is gone, every connection is.
    let (open, mut all_closed) = mpsc::channel::<Infallible>(1);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            stopped = stopping.wait_for(|stopping| *stopping) => {
                drop(stopped);
                break;
            }
        };
        let place = match &per_address {
            Some(counter) => match counter.try_acquire(&guard.tag(peer.ip())) {
                Some(place) => Some(place),
                // Closed without a word: an answer would cost more than the connection did.
                None => continue,
            },
            None => None,
        };
        let Ok(permit) = Arc::clone(&stage).try_acquire_owned() else {
            continue;
        };
        let http_stage = HttpStage(Arc::new(Mutex::new(Some(permit))));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(http_stage.clone());
            // A router is always ready; each request gets its own clone, as axum::serve does.
            app.clone().call(request)
        });
        let mut connection_stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(connection);
            let stop = async move {
                let _ = connection_stopping.wait_for(|stopping| *stopping).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(place);
            drop(open);
        });
    }
    drop(listener);
    drop(open);
    let _ = all_closed.recv().await;
}
