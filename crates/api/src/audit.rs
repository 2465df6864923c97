//! The audit log: one JSON line per request saying who (user, client id, address), what
//! (system, route, the arguments that name what was touched) and how it ended (status,
//! bytes, duration). Separate from the diagnostic log; docs/audit.md describes each field.
//!
//! [`audit_requests`] wraps every route. It puts an [`AuditRecord`] in the request's
//! extensions, which the extractors fill as they learn things (the caller, the system, a
//! body's paths), and writes the line when the response body has been sent or dropped, so
//! a streamed download is logged with the bytes that really left. A thread of its own
//! writes the lines: a slow disk never holds a request.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Extensions;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use ironcrest_config::AuditConfig;
use serde::Serialize;

use crate::AppState;
use crate::middleware::RequestIds;

/// Lines waiting for the writer; past this a line is dropped and counted, not waited for.
const QUEUE: usize = 65_536;

/// Routes whose requests are not audited: probes that act for no one.
const UNAUDITED_ROUTES: &[&str] = &["/status/liveness", "/status/liveness/"];

/// The status of a request whose client went away before it was answered (nginx's 499).
const CLIENT_CLOSED: u16 = 499;

enum Message {
    Line(Vec<u8>),
    Reopen,
}

/// Where audit lines go: a file or standard output, written by one thread.
pub struct AuditLog {
    sender: SyncSender<Message>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// The log `config` asks for, or `None` when auditing is off. Fails if the file cannot
    /// be opened, so a wrong path stops the server at start rather than losing lines.
    pub fn open(config: &AuditConfig) -> io::Result<Option<Arc<Self>>> {
        if !config.enabled {
            return Ok(None);
        }
        let destination = match &config.path {
            Some(path) => Destination::File {
                file: open_append(path)?,
                path: path.clone(),
            },
            None => Destination::Stdout(io::stdout()),
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_lines(receiver, destination))?;
        Ok(Some(Arc::new(AuditLog {
            sender,
            dropped: AtomicU64::new(0),
        })))
    }

    /// Reopens the file (after logrotate moved it); lines queued before are written to the
    /// old one.
    pub fn reopen(&self) {
        // A full queue only delays the reopen to after the lines ahead of it.
        let _ = self.sender.send(Message::Reopen);
    }

    fn write(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        match self.sender.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped.is_multiple_of(1000) {
                    tracing::error!(dropped, "audit log queue full: lines are being dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the audit log writer has stopped");
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

enum Destination {
    Stdout(io::Stdout),
    File { path: PathBuf, file: File },
}

impl Destination {
    /// Writes whole lines in one call, so lines of another writer appending to the same
    /// file (a second server, during a restart) never land inside them.
    fn write(&mut self, lines: &[u8]) {
        let written = match self {
            Destination::Stdout(stdout) => stdout.lock().write_all(lines),
            Destination::File { file, .. } => file.write_all(lines),
        };
        if let Err(error) = written {
            tracing::error!(%error, "cannot write the audit log");
        }
    }

    fn reopen(&mut self) {
        let Destination::File { path, file } = self else {
            return;
        };
        match open_append(path) {
            Ok(reopened) => *file = reopened,
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot reopen the audit log; writing on to the old file");
            }
        }
    }
}

/// The writer thread: writes what is queued as one batch whenever the queue is empty, so a
/// line reaches the file within moments of its request ending.
fn write_lines(receiver: Receiver<Message>, mut destination: Destination) {
    let mut batch = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Line(line) => batch.extend_from_slice(&line),
                Message::Reopen => {
                    destination.write(&batch);
                    batch.clear();
                    destination.reopen();
                }
            }
            next = receiver.try_recv().ok();
        }
        destination.write(&batch);
        batch.clear();
    }
}

/// What the request's extractors learn about it, for its audit line.
#[derive(Clone, Default)]
pub(crate) struct AuditRecord(Arc<Mutex<Facts>>);

#[derive(Default)]
struct Facts {
    user: Option<String>,
    client_id: Option<String>,
    system: Option<String>,
    family: Option<&'static str>,
    args: BTreeMap<&'static str, String>,
}

impl AuditRecord {
    /// The request's record, when the request is audited.
    pub(crate) fn of(extensions: &Extensions) -> Option<AuditRecord> {
        extensions.get::<AuditRecord>().cloned()
    }

    fn facts(&self) -> std::sync::MutexGuard<'_, Facts> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn caller(&self, user: &str, client_id: Option<&str>) {
        let mut facts = self.facts();
        facts.user = Some(user.to_string());
        facts.client_id = client_id.map(str::to_string);
    }

    pub(crate) fn system(&self, system: &str, family: &'static str) {
        let mut facts = self.facts();
        facts.system = Some(system.to_string());
        facts.family = Some(family);
    }

    /// One argument naming what the request touches (a path, a job id, …).
    pub(crate) fn arg(&self, name: &'static str, value: impl AsRef<[u8]>) {
        let value = String::from_utf8_lossy(value.as_ref()).into_owned();
        self.facts().args.insert(name, value);
    }
}

/// A request body that names what it touches: its paths, job, or target. Every JSON body
/// a route reads implements it ([`crate::routes::ValidJson`] requires it), so a new body
/// cannot forget its audit arguments.
pub(crate) trait AuditArgs {
    fn audit_args(&self, record: &AuditRecord);
}

/// The middleware that writes one audit line per request (see the module's comment).
pub(crate) async fn audit_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(log) = state.audit.clone() else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    if route
        .as_deref()
        .is_some_and(|route| UNAUDITED_ROUTES.contains(&route))
    {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let record = AuditRecord::default();
    parts.extensions.insert(record.clone());
    let ids = parts.extensions.get::<RequestIds>().cloned();
    let received = Arc::new(AtomicU64::new(0));
    let mut entry = Entry {
        log,
        record,
        time: Utc::now(),
        started: Instant::now(),
        request_id: ids.as_ref().map(|ids| ids.request_id.clone()),
        correlation_id: ids.map(|ids| ids.correlation_id),
        client_ip: crate::call::client_address(&parts, &state).to_string(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        route,
        received: received.clone(),
        status: None,
        sent: 0,
        completed: false,
    };
    let body = Body::new(CountedBody {
        inner: body,
        counted: received,
    });
    // If the client goes away first, this future is dropped and `entry` with it: the line
    // is still written, with status 499.
    let response = next.run(Request::from_parts(parts, body)).await;
    entry.status = Some(response.status().as_u16());
    response.map(|body| Body::new(AuditedBody { inner: body, entry }))
}

/// One request's audit line, written when it is dropped.
struct Entry {
    log: Arc<AuditLog>,
    record: AuditRecord,
    time: DateTime<Utc>,
    started: Instant,
    request_id: Option<String>,
    correlation_id: Option<String>,
    client_ip: String,
    method: String,
    path: String,
    route: Option<String>,
    received: Arc<AtomicU64>,
    status: Option<u16>,
    sent: u64,
    completed: bool,
}

/// The line as written; docs/audit.md describes each field.
#[derive(Serialize)]
struct Line<'a> {
    r#type: &'static str,
    time: String,
    request_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    user: Option<&'a str>,
    client_id: Option<&'a str>,
    client_ip: &'a str,
    system: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    family: Option<&'static str>,
    args: &'a BTreeMap<&'static str, String>,
    status: u16,
    completed: bool,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let facts = self.record.facts();
        let line = Line {
            r#type: "audit",
            time: self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            request_id: self.request_id.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            user: facts.user.as_deref(),
            client_id: facts.client_id.as_deref(),
            client_ip: &self.client_ip,
            system: facts.system.as_deref(),
            method: &self.method,
            path: &self.path,
            route: self.route.as_deref(),
            family: facts.family,
            args: &facts.args,
            status: self.status.unwrap_or(CLIENT_CLOSED),
            completed: self.status.is_some() && self.completed,
            bytes_in: self.received.load(Ordering::Relaxed),
            bytes_out: self.sent,
            duration_ms: (self.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        };
        match serde_json::to_vec(&line) {
            Ok(bytes) => self.log.write(bytes),
            Err(error) => tracing::error!(%error, "cannot serialise an audit line"),
        }
    }
}

/// A request body that counts the bytes read from it.
struct CountedBody {
    inner: Body,
    counted: Arc<AtomicU64>,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counted.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts what is sent and writes the audit line when dropped:
/// after the last byte, or when the client goes away.
struct AuditedBody {
    inner: Body,
    entry: Entry,
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.entry.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.entry.completed = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        // hyper does not poll a body that says it is empty.
        if self.inner.is_end_stream() {
            self.entry.completed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn log_to(path: &Path) -> Arc<AuditLog> {
        AuditLog::open(&AuditConfig {
            enabled: true,
            path: Some(path.to_path_buf()),
        })
        .unwrap()
        .expect("enabled")
    }

    fn entry(log: &Arc<AuditLog>) -> Entry {
        Entry {
            log: log.clone(),
            record: AuditRecord::default(),
            time: Utc::now(),
            started: Instant::now(),
            request_id: Some("r1".into()),
            correlation_id: None,
            client_ip: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/x".into(),
            route: Some("/x".into()),
            received: Arc::default(),
            status: None,
            sent: 0,
            completed: false,
        }
    }

    async fn lines(path: &Path, count: usize) -> Vec<serde_json::Value> {
        for _ in 0..100 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<_> = text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();
            if lines.len() >= count {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("fewer than {count} lines in {}", path.display());
    }

    /// A download the client abandons is logged with what was sent, as not completed; a
    /// request abandoned before its answer is logged as 499.
    #[tokio::test]
    async fn abandoned_requests_are_still_logged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = log_to(&path);

        let chunks = futures::stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(b"12345")),
            Ok(Bytes::from_static(b"67890")),
        ]);
        let mut streamed = entry(&log);
        streamed.status = Some(200);
        let mut body = AuditedBody {
            inner: Body::from_stream(chunks),
            entry: streamed,
        };
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "12345");
        drop(body);

        drop(entry(&log));

        let mut finished = entry(&log);
        finished.status = Some(204);
        drop(AuditedBody {
            inner: Body::empty(),
            entry: finished,
        });

        let lines = lines(&path, 3).await;
        assert_eq!(
            (
                &lines[0]["status"],
                &lines[0]["completed"],
                &lines[0]["bytes_out"]
            ),
            (&200.into(), &false.into(), &5.into())
        );
        assert_eq!(
            (&lines[1]["status"], &lines[1]["completed"]),
            (&499.into(), &false.into())
        );
        assert_eq!(
            (&lines[2]["status"], &lines[2]["completed"]),
            (&204.into(), &true.into())
        );
        assert_eq!(lines[2]["args"], serde_json::json!({}));
    }

    #[test]
    fn off_means_no_log_and_a_bad_path_fails_at_start() {
        assert!(AuditLog::open(&AuditConfig::default()).unwrap().is_none());
        let missing = AuditConfig {
            enabled: true,
            path: Some("/nonexistent-dir/audit.log".into()),
        };
        assert!(AuditLog::open(&missing).is_err());
    }
}
