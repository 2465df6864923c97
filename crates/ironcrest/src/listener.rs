//! The HTTP listener, with what nginx gave FirecREST v1 in front of it: a bound on the time
//! to send a request's headers (which also ends idle keep-alive connections), a cap on
//! open connections per client address (trusted proxies exempt) and in all, and an accept
//! loop that keeps serving when the process runs out of file descriptors.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};
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
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The body of the answer a refused connection reads before it is closed.
const REFUSAL_BODY: &str = r#"{"errorType":"error","message":"Too many open connections.","causedBy":null,"data":null,"user":null}"#;

/// The whole answer to a refused connection.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
    .into_bytes()
});

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
/// Returns once every connection has ended: those still open after `grace` are aborted
/// here, while the runtime still runs, so what their requests clean up when dropped (an
/// upload's temporary file, a command's remote process) is started before the SSH pools
/// close.
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
    let mut connections = JoinSet::new();
    let mut reserve = reserve_descriptor();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            // Ended connections are reaped as they end, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
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
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(client = %address, %error, "connection ended with an error");
            }
            drop(admitted);
        });
    }
    // New connections are refused from here on.
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_period_s = grace.as_secs(),
            connections = connections.len(),
            "in-flight requests cut off after the grace period"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
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
    let _ = stream.try_write(&REFUSAL);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, per_address: usize, trusted: &[&str]) -> Gate {
        Gate {
            limits: Limits {
                header_timeout: Duration::from_secs(1),
                max_connections: max,
                max_connections_per_address: per_address,
                trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            },
            counts: Arc::default(),
        }
    }

    #[test]
    fn each_address_gets_its_share_and_places_come_back() {
        let gate = gate(6, 2, &["10.0.0.0/8"]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = gate.admit(a).expect("first");
        let _second = gate.admit(a).expect("second");
        assert!(gate.admit(a).is_none(), "a third from one address");
        assert!(gate.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert!(
            gate.admit(a).is_some(),
            "a closed connection frees its place"
        );
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let behind_proxy: Vec<_> = (0..5).map(|_| gate.admit(proxy)).collect();
        assert!(
            behind_proxy.iter().all(Option::is_some),
            "trusted proxies are exempt"
        );
        assert!(gate.admit(b).is_none(), "but the total holds");
    }

    #[test]
    fn ipv4_mapped_clients_count_as_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = String::from_utf8(REFUSAL.clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["message"], "Too many open connections.");
    }
}
