//! The HTTP listener, with what nginx gave FirecREST v1 in front of it: a bound on the time
//! to send a request's headers (which also ends idle keep-alive connections), a cap on
//! open connections per client address (trusted proxies exempt) and in all, and an accept
//! loop that keeps serving when the process runs out of file descriptors.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use ironcrest_config::ConnectionLimits;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// What a refused connection reads before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 101\r\n\r\n{\"errorType\":\"error\",\"message\":\"Too many open connections.\",\"causedBy\":null,\"data\":null,\"user\":null}";

/// The connection limits in force, with 0s resolved.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub trusted_proxies: Vec<IpNet>,
}

impl Limits {
    /// `max_connections: 0` becomes 3/4 of the open-file limit: the rest is for SSH
    /// connections, SFTP sessions, outgoing HTTP and the log.
    pub fn from_config(config: &ConnectionLimits) -> Self {
        let max_connections = match config.max_connections {
            0 => open_file_limit().map_or(1024, |limit| limit / 4 * 3),
            max => max,
        };
        Self {
            header_timeout: Duration::from_secs(config.header_timeout),
            max_connections,
            max_connections_per_address: config.max_connections_per_address,
            trusted_proxies: config.trusted_networks(),
        }
    }
}

fn open_file_limit() -> Option<usize> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .and_then(|limit| usize::try_from(limit).ok())
}

/// Open connections, in all and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Holds one admitted connection's place until it closes.
struct Admitted {
    counts: Arc<Mutex<Counts>>,
    address: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("counts lock");
        counts.total -= 1;
        if let Some(count) = counts.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

struct Gate {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

impl Gate {
    /// A place for a connection from `address`, or `None` past a limit.
    fn admit(&self, address: IpAddr) -> Option<Admitted> {
        let trusted = self
            .limits
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&address));
        let mut counts = self.counts.lock().expect("counts lock");
        let from_address = counts.by_address.get(&address).copied().unwrap_or(0);
        let per_address = self.limits.max_connections_per_address;
        if counts.total >= self.limits.max_connections
            || (!trusted && per_address > 0 && from_address >= per_address)
        {
            return None;
        }
        counts.total += 1;
        *counts.by_address.entry(address).or_default() += 1;
        Some(Admitted {
            counts: self.counts.clone(),
            address,
        })
    }
}

/// Serves `app` on `listener` until `shutdown`; connections still open then get `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout));
    let gate = Gate {
        limits,
        counts: Arc::default(),
    };
    let graceful = GracefulShutdown::new();
    let mut reserve = reserve_descriptor();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_out_of_descriptors(&error) => {
                shed_newest(&listener, &mut reserve).await;
                continue;
            }
            Err(error) => {
                // Errors of one connection (reset before accept, …): keep accepting.
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        let address = canonical(peer.ip());
        let Some(admitted) = gate.admit(address) else {
            tracing::warn!(client = %address, "connection refused: connection limit reached");
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(client = %address, %error, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_period_s = grace.as_secs(),
            "in-flight requests cut off after the grace period"
        );
    }
}

/// IPv4 clients of a dual-stack socket count as their IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Tells the client why, without waiting for it, and closes.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// A descriptor held back so that, out of descriptors, one can be freed to accept and close
/// the newest connection instead of leaving it (and the accept loop) stuck.
fn reserve_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

async fn shed_newest(listener: &TcpListener, reserve: &mut Option<std::fs::File>) {
    tracing::warn!("out of file descriptors: closing the newest connection");
    drop(reserve.take());
    if let Ok(Ok((stream, _))) =
        tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
    {
        refuse(stream);
    }
    *reserve = reserve_descriptor();
    // Give the open connections time to finish before accepting again.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
