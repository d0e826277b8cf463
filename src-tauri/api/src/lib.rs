//! The provisioning HTTP API: `POST /instances` and friends, the way connector platforms
//! provision a Twilio connection (`twiliov2`). Each handler parses the request, makes one
//! core call and maps the answer; the rules live in patchbay-core.

mod accept;
mod auth;
mod body;
mod error;
pub mod events;
mod guard;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use patchbay_core::destination::Reach;
use patchbay_core::{Config, Patchbay};

pub use error::ApiError;

/// Requests larger than this are refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Needed to listen on anything but loopback, and then only with TLS.
    pub allow_remote: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "{0} is not a loopback address: the API would be reachable from the network. Pass --allow-remote with --tls-cert and --tls-key to allow it"
    )]
    RemoteRefused(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(std::io::Error),
    #[error("the core was opened for the person at this desk; open it with patchbay_api::served(config)")]
    NotServed,
    #[error(transparent)]
    Core(#[from] patchbay_core::Error),
}

/// The configuration of a core that [`serve`] runs: its callers are not the person at
/// this desk, so the core holds what they may make Patchbay reach to
/// `[serve] allow_destinations`.
pub fn served(mut config: Config) -> Config {
    config.reach = Reach::Served;
    config
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight. The core must
/// be opened with [`served`]'s configuration: one opened for a desk would let callers
/// widen where assets go and reach what only the desk may.
pub async fn serve(
    core: Arc<Patchbay>,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if core.config().reach != Reach::Served {
        return Err(ServeError::NotServed);
    }
    let remote = !options.listen.ip().is_loopback();
    if remote && !(options.allow_remote && options.tls.is_some()) {
        return Err(ServeError::RemoteRefused(options.listen));
    }
    let limits = core.config().serve;
    let listener =
        std::net::TcpListener::bind(options.listen).map_err(|err| ServeError::Listen(options.listen, err))?;
    listener.set_nonblocking(true).map_err(|err| ServeError::Listen(options.listen, err))?;
    let address = listener.local_addr().map_err(|err| ServeError::Listen(options.listen, err))?;
    let guard = guard::Guard {
        listen: address,
        body_read_timeout: limits.body_read_timeout,
        request_timeout: limits.request_timeout,
    };
    let app = routes::router(core.clone(), guard).await?;
    let worker = tokio::spawn(events::EventWorker::new(core).run());
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        patchbay_core::process::interrupted().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    ready(address);
    let service = app.into_make_service();
    let served = match options.tls {
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await.map_err(ServeError::Tls)?;
            let server = axum_server::from_tcp_rustls(listener, tls).map_err(|err| ServeError::Listen(address, err))?;
            let acceptor = accept::Capped::new(server.get_ref().clone(), limits.max_connections);
            limited(server.acceptor(acceptor), limits).handle(handle).serve(service).await
        }
        None => {
            let server = axum_server::from_tcp(listener).map_err(|err| ServeError::Listen(address, err))?;
            let acceptor = accept::Capped::new(*server.get_ref(), limits.max_connections);
            limited(server.acceptor(acceptor), limits).handle(handle).serve(service).await
        }
    };
    worker.abort();
    served.map_err(|err| ServeError::Listen(address, err))
}

/// Slow clients are cut off: headers, then the first request, within their timeouts.
fn limited<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
    limits: patchbay_core::config::ServeLimits,
) -> axum_server::Server<A, Acc> {
    server.http_builder().http1().header_read_timeout(limits.header_read_timeout);
    server.first_request_timeout(limits.header_read_timeout + limits.body_read_timeout)
}
