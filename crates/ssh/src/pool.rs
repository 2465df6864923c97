//! The per-cluster connection pool.
//!
//! Connections are per user (sshd authenticates a connection as one user). Each carries up
//! to `max_sessions_per_connection` concurrent channels; past that a user gets another
//! connection. All users together hold at most `max_clients` connections (established or
//! being opened); at the bound an idle connection of another user is evicted, otherwise
//! the request waits up to the connection timeout for a free slot.
//!
//! A connection may also carry standing SFTP sessions ([`SshPool::sftp`], see
//! [`crate::sftp`]): each takes one of the connection's channel slots while it lives (at
//! most half of them, so commands keep room), but does not keep the connection from going
//! idle; requests using them are counted apart.
//!
//! Opening a connection is a spawned task whose result every waiting request of that user
//! shares, so N concurrent first requests cause one handshake, and a cancelled request
//! does not abort a handshake others wait for.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ironcrest_remote::{Allowlist, Caller, CommandLine, Output, RemoteCommand};

/// The guard's allowlist, parsed once, for the debug check of every line sent.
static ALLOWLIST: std::sync::OnceLock<Allowlist> = std::sync::OnceLock::new();
use russh::Channel;
use russh::client::{self, Msg};
use russh_sftp::client::RawSftpSession;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::connection::{self, SshHandle};
use crate::credentials::CredentialProvider;
use crate::exec::{self, Input, Limits, Streamed};
use crate::sftp::{Session, Sftp, SftpError};
use crate::{PoolSettings, RunError, SshError};

/// How long a pool being shut down waits for its last commands and SFTP requests.
/// A command stopped by TERM gets at most 7 s (exec's TERM and close graces) to end.
const CLOSING_WAIT: Duration = Duration::from_secs(10);

/// Result of a shared connection attempt: `None` while it runs.
type Attempt = Option<Result<(), SshError>>;

/// A pool of SSH connections to one cluster. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<Inner>,
}

/// A snapshot of the pool, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Established connections.
    pub connections: usize,
    /// Connections being opened.
    pub connecting: usize,
    /// Channels in use (including ones being closed).
    pub channels: usize,
    /// Connections successfully opened since the pool was created.
    pub opened_total: u64,
    /// Standing SFTP sessions, all users together (each also counted in `channels`).
    pub sftp_sessions: usize,
    /// Session channels opened for commands (`exec`) since the pool was created.
    pub exec_channels_total: u64,
    /// SFTP sessions opened since the pool was created.
    pub sftp_opened_total: u64,
    /// Channels the established connections could still open (their capacity less the
    /// channels in use); 0 with every connection full.
    pub free_channel_slots: usize,
}

struct Inner {
    settings: PoolSettings,
    credentials: Arc<dyn CredentialProvider>,
    config: Arc<client::Config>,
    state: Mutex<State>,
    /// Signalled whenever a channel or connection slot may have become free.
    changed: Notify,
    next_id: AtomicU64,
    opened_total: AtomicU64,
    exec_channels_total: AtomicU64,
    sftp_opened_total: AtomicU64,
    /// Per user, serialises opening their SFTP sessions, so concurrent first requests of a
    /// user open one (and take one channel slot, not one each). Per user, so that one
    /// user's slow login delays nobody else's. Held only while a session is opened;
    /// [`SshPool::maintain`] forgets the ones nobody holds.
    sftp_opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct State {
    users: HashMap<String, UserConnections>,
    open: usize,
    connecting: usize,
}

#[derive(Default)]
struct UserConnections {
    connections: Vec<Arc<Connection>>,
    attempt: Option<watch::Receiver<Attempt>>,
}

struct Connection {
    id: u64,
    user: String,
    handle: SshHandle,
    opened: Instant,
    /// Channels this connection may carry; lowered if sshd refuses channels earlier.
    capacity: AtomicUsize,
    channels: AtomicUsize,
    last_used: Mutex<Instant>,
    /// The standing SFTP sessions not known dead; each holds one of the channel slots.
    sftp: Mutex<Vec<Arc<Session>>>,
    /// Requests currently using an SFTP session of this connection.
    sftp_requests: AtomicUsize,
}

impl Connection {
    /// Channels in use, the SFTP sessions' included.
    fn channels_in_use(&self) -> usize {
        self.channels.load(Ordering::SeqCst) + self.sftp_sessions().len()
    }

    fn has_room(&self) -> bool {
        self.channels_in_use() < self.capacity.load(Ordering::SeqCst)
    }

    /// Room for another SFTP session: a free channel, and SFTP sessions holding less than
    /// half of the channels, so commands always find room.
    fn has_room_for_sftp(&self) -> bool {
        let capacity = self.capacity.load(Ordering::SeqCst);
        self.has_room() && self.sftp_sessions().len() < (capacity / 2).max(1)
    }

    /// No command and no SFTP request running (an open SFTP session alone is idle).
    fn is_idle(&self) -> bool {
        self.channels.load(Ordering::SeqCst) == 0 && self.sftp_requests.load(Ordering::SeqCst) == 0
    }

    fn sftp_sessions(&self) -> MutexGuard<'_, Vec<Arc<Session>>> {
        self.sftp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the SFTP session `dead` (if it is still listed) and frees its slot.
    fn drop_sftp(&self, dead: &Arc<Session>) {
        let mut sessions = self.sftp_sessions();
        if let Some(at) = sessions.iter().position(|s| Arc::ptr_eq(s, dead)) {
            sessions.swap_remove(at);
            dead.close();
        }
    }

    fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

/// One channel's claim on a connection; released on drop.
struct Slot {
    inner: Arc<Inner>,
    connection: Arc<Connection>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connection.touch();
        self.connection.channels.fetch_sub(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }
}

/// An SFTP request's claim on a session and its connection; released on drop.
struct SftpUse {
    inner: Arc<Inner>,
    connection: Arc<Connection>,
    session: Arc<Session>,
}

impl SftpUse {
    fn new(inner: &Arc<Inner>, connection: Arc<Connection>, session: Arc<Session>) -> Self {
        connection.sftp_requests.fetch_add(1, Ordering::SeqCst);
        session.requests.fetch_add(1, Ordering::SeqCst);
        connection.touch();
        Self {
            inner: inner.clone(),
            connection,
            session,
        }
    }
}

impl Drop for SftpUse {
    fn drop(&mut self) {
        self.connection.touch();
        self.session.requests.fetch_sub(1, Ordering::SeqCst);
        self.connection.sftp_requests.fetch_sub(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }
}

/// What a request does next, decided under the state lock.
enum Step {
    Use(Slot),
    AwaitAttempt(watch::Receiver<Attempt>),
    AwaitRoom,
}

impl SshPool {
    pub fn new(settings: PoolSettings, credentials: Arc<dyn CredentialProvider>) -> Self {
        let config = connection::client_config(&settings);
        Self {
            inner: Arc::new(Inner {
                settings,
                credentials,
                config,
                state: Mutex::new(State::default()),
                changed: Notify::new(),
                next_id: AtomicU64::new(1),
                opened_total: AtomicU64::new(0),
                exec_channels_total: AtomicU64::new(0),
                sftp_opened_total: AtomicU64::new(0),
                sftp_opening: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    /// Runs `command` as `user`, feeding `stdin` if given. A connection found dead before
    /// the channel opened is replaced and the command tried once more.
    pub async fn execute(
        &self,
        user: &Caller,
        command: &CommandLine,
        stdin: Option<&[u8]>,
    ) -> Result<Output, SshError> {
        let input = match stdin {
            Some(data) => Input::Bytes(data),
            None => Input::None,
        };
        // Named by its program: a bare line has no type of its own to name it.
        let measured = self.measure(command.program());
        let output = self
            .execute_named(user, command, input, command.program())
            .await;
        measured.finish(exit_outcome(&output));
        output
    }

    /// Runs a [`RemoteCommand`] with stdin given as an [`Input`], e.g. a stream of chunks
    /// that is never held in memory as a whole; its output is the caller's to parse.
    pub async fn execute_with_input<C: RemoteCommand>(
        &self,
        user: &Caller,
        command: &C,
        input: Input<'_>,
    ) -> Result<Output, SshError> {
        let name = command_name::<C>();
        let measured = self.measure(name);
        let output = self
            .execute_named(user, &command.command_line(), input, name)
            .await;
        measured.finish(exit_outcome(&output));
        output
    }

    async fn execute_named(
        &self,
        user: &Caller,
        command: &CommandLine,
        input: Input<'_>,
        name: &'static str,
    ) -> Result<Output, SshError> {
        let line = self.line_for(user, command)?;
        async {
            let (channel, slot) = self.open_channel(user).await?;
            exec::run(channel, line.as_bytes(), input, self.limits(), slot).await
        }
        .instrument(self.command_span(user, name))
        .await
    }

    /// Runs a [`RemoteCommand`] with its stdout streamed: resolves once output begins
    /// ([`Streamed::Stdout`]) or the command ends without any ([`Streamed::Finished`]).
    /// The command is bounded by the command timeout and the output limit, and stopped if
    /// the stream is dropped. Its metrics count until output begins.
    pub async fn execute_streaming<C: RemoteCommand>(
        &self,
        user: &Caller,
        command: &C,
    ) -> Result<Streamed, SshError> {
        let name = command_name::<C>();
        let measured = self.measure(name);
        let span = self.command_span(user, name);
        let command_line = command.command_line();
        let started = async {
            let line = self.line_for(user, &command_line)?;
            let (channel, slot) = self.open_channel(user).instrument(span.clone()).await?;
            let (first, started) = tokio::sync::oneshot::channel();
            tokio::spawn(
                exec::stream(
                    channel,
                    line.as_bytes().to_vec(),
                    self.limits(),
                    slot,
                    first,
                )
                .instrument(span),
            );
            started
                .await
                .unwrap_or_else(|_| Err(SshError::Protocol("streaming task ended".into())))
        }
        .await;
        measured.finish(match &started {
            Ok(Streamed::Finished(output)) if output.exit_status != 0 => "failed",
            Ok(_) => "ok",
            Err(err) => err.kind(),
        });
        started
    }

    /// Times one command named `command` for `ironcrest_remote_command*`.
    fn measure(&self, command: &'static str) -> MeasuredCommand {
        MeasuredCommand {
            cluster: self.inner.settings.cluster.clone(),
            command,
            started: Instant::now(),
        }
    }

    /// The line as sent for `user`: with the request's ids, if it runs for a request. In
    /// debug builds, a line that the cluster-side guard would refuse panics here, so a test
    /// running a command missing from the allowlist fails with the line and the reason.
    fn line_for<'a>(
        &self,
        user: &Caller,
        command: &'a CommandLine,
    ) -> Result<Cow<'a, CommandLine>, SshError> {
        let line = match &user.request_ids {
            Some(ids) => Cow::Owned(
                command
                    .with_request_ids(ids)
                    .map_err(|err| SshError::Protocol(format!("request id: {err}")))?,
            ),
            None => Cow::Borrowed(command),
        };
        if cfg!(debug_assertions) && self.inner.credentials.forced_command().is_some() {
            let allowlist = ALLOWLIST.get_or_init(Allowlist::current);
            if let Err(refusal) = allowlist.check(line.as_bytes()) {
                panic!("ironcrest-guard would refuse {line:?}: {refusal}");
            }
        }
        Ok(line)
    }

    /// The span of one remote command, named by its kind: never by its arguments, which
    /// hold users' paths and values.
    fn command_span(&self, user: &Caller, command: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "ssh.command",
            ssh.command = command,
            ssh.user = %user.username,
            ssh.host = %self.inner.settings.host
        )
    }

    fn limits(&self) -> Limits {
        Limits {
            output: self.inner.settings.output_limit,
            time: self.inner.settings.command_timeout(),
        }
    }

    /// A session channel as `user`, with its slot. A connection found dead before the
    /// channel opened is replaced and the opening tried once more.
    async fn open_channel(&self, user: &Caller) -> Result<(Channel<Msg>, Slot), SshError> {
        let settings = &self.inner.settings;
        let mut retried = false;
        loop {
            let slot = self
                .inner
                .acquire(user)
                .instrument(acquire_span("exec"))
                .await?;
            let opening = slot.connection.handle.channel_open_session();
            let failure = match tokio::time::timeout(settings.connection_timeout(), opening).await {
                Ok(Ok(channel)) => {
                    self.inner
                        .exec_channels_total
                        .fetch_add(1, Ordering::SeqCst);
                    return Ok((channel, slot));
                }
                Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                    // sshd's MaxSessions is lower than we assumed: stop at what this
                    // connection carries now, and let the retry use another one.
                    let others = slot.connection.channels.load(Ordering::SeqCst) - 1;
                    slot.connection
                        .capacity
                        .store(others.max(1), Ordering::SeqCst);
                    tracing::warn!(
                        ssh.user = %user.username,
                        ssh.connection = slot.connection.id,
                        channels = others,
                        ?reason,
                        "sshd refused a channel; lowering this connection's channel limit"
                    );
                    self.inner.count_channel_open_failure("refused");
                    SshError::ChannelOpenFailed(format!("refused by sshd: {reason:?}"))
                }
                Ok(Err(err)) => {
                    self.inner.discard(&slot.connection, "channel open failed");
                    self.inner.count_channel_open_failure("unusable");
                    SshError::ChannelOpenFailed(format!("connection unusable: {err}"))
                }
                Err(_) => {
                    self.inner
                        .discard(&slot.connection, "channel open timed out");
                    self.inner.count_channel_open_failure("timeout");
                    SshError::ChannelOpenFailed("channel open timed out".into())
                }
            };
            drop(slot);
            if retried {
                return Err(failure);
            }
            tracing::debug!(ssh.user = %user.username, error = %failure.detail(), "retrying on another connection");
            retried = true;
        }
    }

    /// The least busy standing SFTP session of `user`'s connections; the first request
    /// opens one (on a connection with a free channel). While every session is busy, another
    /// is opened in the background, up to `max_sftp_sessions_per_user`, and the request goes
    /// on with the least busy one. A request that finds a session dead marks it so, and it
    /// is replaced when needed.
    pub async fn sftp(&self, user: &Caller) -> Result<Sftp, SftpError> {
        self.acquire_sftp(user)
            .instrument(acquire_span("sftp"))
            .await
    }

    async fn acquire_sftp(&self, user: &Caller) -> Result<Sftp, SftpError> {
        if let Some((sftp, all_busy)) = self.least_busy_sftp(user) {
            if all_busy {
                self.open_another_sftp(user);
            }
            return Ok(sftp);
        }
        let lock = self.sftp_opening_lock(&user.username);
        let opening = lock.lock().await;
        if let Some((sftp, _)) = self.least_busy_sftp(user) {
            return Ok(sftp);
        }
        let unusable = |err: SshError| SftpError::Session(err.detail());
        let slot = self.inner.acquire(user).await.map_err(unusable)?;
        let session = self.open_sftp(&slot.connection).await?;
        let sftp = self.adopt_sftp(user, slot, session);
        drop(opening);
        Ok(sftp)
    }

    fn sftp_opening_lock(&self, username: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .sftp_opening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(username.to_string())
            .or_default()
            .clone()
    }

    /// Opens one more SFTP session for `user` in the background, unless one is being opened,
    /// the user has their bound of sessions, or none of their connections has room (no
    /// connection is opened, nor another user's evicted, for this).
    fn open_another_sftp(&self, user: &Caller) {
        let Ok(opening) = self.sftp_opening_lock(&user.username).try_lock_owned() else {
            return;
        };
        let pool = self.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let Some(slot) = pool.inner.slot_for_another_sftp(&user) else {
                return;
            };
            match pool.open_sftp(&slot.connection).await {
                Ok(session) => drop(pool.adopt_sftp(&user, slot, session)),
                Err(err) => {
                    tracing::debug!(ssh.user = %user.username, error = %err, "another SFTP session could not be opened");
                }
            }
            drop(opening);
        }
        // In the request's trace: the session is opened for it.
        .in_current_span());
    }

    /// Lists `session`, opened on `slot`'s channel, as a standing session of its connection
    /// and hands it to the request that opened it.
    fn adopt_sftp(&self, user: &Caller, slot: Slot, session: Arc<Session>) -> Sftp {
        let connection = slot.connection.clone();
        // The slot's channel becomes the session's: listed before the slot is freed.
        connection.sftp_sessions().push(session.clone());
        self.inner.sftp_opened_total.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(ssh.user = %user.username, ssh.connection = connection.id, "SFTP session opened");
        drop(slot);
        self.sftp_on(connection, session)
    }

    /// The least busy live session on `user`'s connections, and whether every session is
    /// busy while the user may have more.
    fn least_busy_sftp(&self, user: &Caller) -> Option<(Sftp, bool)> {
        let (connection, session, sessions) = {
            let state = self.inner.lock();
            let live = state
                .users
                .get(&user.username)?
                .connections
                .iter()
                .filter(|c| !c.handle.is_closed());
            let mut sessions = 0;
            let mut least_busy: Option<(Arc<Connection>, Arc<Session>)> = None;
            for connection in live {
                for session in connection.sftp_sessions().iter() {
                    sessions += 1;
                    if least_busy
                        .as_ref()
                        .is_none_or(|(_, s)| session.busy() < s.busy())
                    {
                        least_busy = Some((connection.clone(), session.clone()));
                    }
                }
            }
            let (connection, session) = least_busy?;
            (connection, session, sessions)
        };
        let all_busy =
            session.busy() > 0 && sessions < self.inner.settings.max_sftp_sessions_per_user;
        Some((self.sftp_on(connection, session), all_busy))
    }

    fn sftp_on(&self, connection: Arc<Connection>, session: Arc<Session>) -> Sftp {
        let dead = {
            let connection = connection.clone();
            let session = session.clone();
            move || connection.drop_sftp(&session)
        };
        Sftp {
            session: session.clone(),
            _use: Arc::new(SftpUse::new(&self.inner, connection, session)),
            on_dead: Arc::new(dead),
            cluster: Arc::from(self.inner.settings.cluster.as_str()),
        }
    }

    /// Opens the `sftp` subsystem on a new channel of `connection` and initialises it.
    async fn open_sftp(&self, connection: &Connection) -> Result<Arc<Session>, SftpError> {
        let settings = &self.inner.settings;
        let unusable = |err: &dyn std::fmt::Display| SftpError::Session(err.to_string());
        let opening = async {
            let channel = connection
                .handle
                .channel_open_session()
                .await
                .map_err(|e| unusable(&e))?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| unusable(&e))?;
            let raw = RawSftpSession::new(channel.into_stream());
            let session = Session::init(raw, settings.command_timeout().as_secs().max(1))
                .await
                .map_err(|e| unusable(&e))?;
            Ok(Arc::new(session))
        };
        tokio::time::timeout(settings.connection_timeout(), opening)
            .await
            .map_err(|_| SftpError::Session("opening the SFTP session timed out".into()))?
    }

    /// Runs a [`RemoteCommand`] and parses its output.
    pub async fn run<C: RemoteCommand + Sync>(
        &self,
        user: &Caller,
        command: &C,
    ) -> Result<C::Parsed, RunError<C::Error>> {
        let name = command_name::<C>();
        let measured = self.measure(name);
        let input = command.stdin().map_or(Input::None, Input::Bytes);
        let parsed = self
            .execute_named(user, &command.command_line(), input, name)
            .await
            .map_err(RunError::Ssh)
            .and_then(|output| command.parse(output).map_err(RunError::Command));
        measured.finish(match &parsed {
            Ok(_) => "ok",
            Err(RunError::Command(_)) => "failed",
            Err(RunError::Ssh(err)) => err.kind(),
        });
        parsed
    }

    /// Closes idle and dead connections every few seconds until `shutdown` completes,
    /// then closes every connection, once the commands and SFTP requests still running
    /// have ended (for at most [`CLOSING_WAIT`]). Spawn it once per pool.
    pub async fn maintain(self, shutdown: impl Future<Output = ()>) {
        let period = (self.inner.settings.idle_timeout() / 2)
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(period) => {
                    self.evict_idle();
                    self.inner
                        .sftp_opening
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|_, lock| Arc::strong_count(lock) > 1);
                }
            }
        }
        self.wait_until_idle(CLOSING_WAIT).await;
        self.close_all().await;
    }

    /// Waits until no connection runs a command or an SFTP request, for at most `limit`:
    /// what requests cut off at shutdown left to do (stopping a command, removing an
    /// upload's temporary file) holds its channel until done.
    async fn wait_until_idle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let busy = self
                .inner
                .lock()
                .users
                .values()
                .flat_map(|u| &u.connections)
                .filter(|c| !c.is_idle())
                .count();
            if busy == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(
                    cluster = %self.inner.settings.cluster,
                    connections = busy,
                    "closing SSH connections that are still busy"
                );
                return;
            }
        }
    }

    /// Closes connections unused for `idle_timeout` and ones that died; returns how many.
    pub fn evict_idle(&self) -> usize {
        let idle_timeout = self.inner.settings.idle_timeout();
        let removed = {
            let mut state = self.inner.lock();
            state.remove_where(|c| {
                if c.handle.is_closed() {
                    Some("dead")
                } else if c.is_idle() && c.idle_for() >= idle_timeout {
                    Some("idle")
                } else {
                    None
                }
            })
        };
        let count = removed.len();
        self.inner.close_removed(removed);
        count
    }

    /// Closes every connection now (commands running on them fail).
    pub async fn close_all(&self) {
        let removed = self.inner.lock().remove_where(|_| Some("shutdown"));
        for (connection, reason) in removed {
            log_closed(&self.inner.settings, &connection, reason);
            connection::close(&connection.handle).await;
        }
        self.inner.changed.notify_waiters();
    }

    /// Established connections, all users together.
    pub fn connection_count(&self) -> usize {
        self.inner.lock().open
    }

    /// Established connections of one user.
    pub fn user_connection_count(&self, username: &str) -> usize {
        self.inner
            .lock()
            .users
            .get(username)
            .map_or(0, |u| u.connections.len())
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.inner.lock();
        PoolStats {
            connections: state.open,
            connecting: state.connecting,
            channels: state
                .users
                .values()
                .flat_map(|u| &u.connections)
                .map(|c| c.channels_in_use())
                .sum(),
            opened_total: self.inner.opened_total.load(Ordering::SeqCst),
            sftp_sessions: state
                .users
                .values()
                .flat_map(|u| &u.connections)
                .map(|c| c.sftp_sessions().len())
                .sum(),
            exec_channels_total: self.inner.exec_channels_total.load(Ordering::SeqCst),
            sftp_opened_total: self.inner.sftp_opened_total.load(Ordering::SeqCst),
            free_channel_slots: state
                .users
                .values()
                .flat_map(|u| &u.connections)
                .map(|c| {
                    c.capacity
                        .load(Ordering::SeqCst)
                        .saturating_sub(c.channels_in_use())
                })
                .sum(),
        }
    }
}

impl State {
    /// Removes (and returns, with the reason) every connection `reason` picks.
    fn remove_where(
        &mut self,
        mut reason: impl FnMut(&Connection) -> Option<&'static str>,
    ) -> Vec<(Arc<Connection>, &'static str)> {
        let mut removed = Vec::new();
        for user in self.users.values_mut() {
            user.connections.retain(|c| match reason(c) {
                Some(why) => {
                    removed.push((c.clone(), why));
                    false
                }
                None => true,
            });
        }
        self.open -= removed.len();
        self.users
            .retain(|_, u| !u.connections.is_empty() || u.attempt.is_some());
        removed
    }

    /// Frees a connection slot by evicting the least recently used idle connection.
    fn evict_lru_idle(&mut self) -> Option<Arc<Connection>> {
        let victim = self
            .users
            .values()
            .flat_map(|u| &u.connections)
            .filter(|c| c.is_idle())
            .max_by_key(|c| c.idle_for())?
            .clone();
        self.remove_where(|c| (c.id == victim.id).then_some("evicted for another user"));
        Some(victim)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A channel slot for another SFTP session of `user`, on one of their open connections
    /// with room for it, if they are below their bound of sessions.
    fn slot_for_another_sftp(self: &Arc<Self>, user: &Caller) -> Option<Slot> {
        let state = self.lock();
        let connections = &state.users.get(&user.username)?.connections;
        let sessions: usize = connections.iter().map(|c| c.sftp_sessions().len()).sum();
        if sessions >= self.settings.max_sftp_sessions_per_user {
            return None;
        }
        let connection = connections
            .iter()
            .find(|c| !c.handle.is_closed() && c.has_room_for_sftp())?;
        connection.channels.fetch_add(1, Ordering::SeqCst);
        Some(Slot {
            inner: self.clone(),
            connection: connection.clone(),
        })
    }

    /// A channel slot on a connection of `user`, opening a connection if needed; how long
    /// that took is `ironcrest_ssh_slot_wait_seconds`.
    async fn acquire(self: &Arc<Self>, user: &Caller) -> Result<Slot, SshError> {
        let started = Instant::now();
        let slot = self.wait_for_slot(user).await;
        metrics::histogram!(
            "ironcrest_ssh_slot_wait_seconds",
            "cluster" => self.settings.cluster.clone(),
        )
        .record(started.elapsed());
        slot
    }

    async fn wait_for_slot(self: &Arc<Self>, user: &Caller) -> Result<Slot, SshError> {
        let deadline = tokio::time::Instant::now() + self.settings.connection_timeout();
        loop {
            // Registered before the lock is released, so a slot freed in between still
            // wakes us.
            let room = self.changed.notified();
            tokio::pin!(room);
            room.as_mut().enable();

            let (step, evicted) = self.next_step(user);
            self.close_removed(evicted);
            match step {
                Step::Use(slot) => return Ok(slot),
                Step::AwaitAttempt(mut attempt) => {
                    let outcome = attempt.wait_for(Option::is_some).await.map(|v| v.clone());
                    match outcome {
                        Ok(Some(Err(err))) => return Err(err),
                        Ok(_) => {}
                        Err(_) => {
                            return Err(SshError::ConnectionFailed(
                                "connection attempt abandoned".into(),
                            ));
                        }
                    }
                }
                Step::AwaitRoom => {
                    if tokio::time::timeout_at(deadline, room).await.is_err() {
                        return Err(SshError::PoolFull);
                    }
                }
            }
        }
    }

    fn next_step(self: &Arc<Self>, user: &Caller) -> (Step, Vec<(Arc<Connection>, &'static str)>) {
        let mut state = self.lock();
        let mut removed = Vec::new();
        // Drop this user's dead connections (sshd restarted, network gone, keepalive
        // unanswered) before picking one.
        if let Some(entry) = state.users.get_mut(&user.username) {
            entry.connections.retain(|c| {
                let dead = c.handle.is_closed();
                if dead {
                    removed.push((c.clone(), "dead"));
                }
                !dead
            });
        }
        state.open -= removed.len();

        let entry = state.users.entry(user.username.clone()).or_default();
        // The oldest connection with room first: packs channels onto few connections so
        // the rest go idle and get evicted.
        if let Some(connection) = entry.connections.iter().find(|c| c.has_room()) {
            connection.channels.fetch_add(1, Ordering::SeqCst);
            connection.touch();
            let slot = Slot {
                inner: self.clone(),
                connection: connection.clone(),
            };
            return (Step::Use(slot), removed);
        }
        if let Some(attempt) = &entry.attempt {
            return (Step::AwaitAttempt(attempt.clone()), removed);
        }
        if state.open + state.connecting >= self.settings.max_clients {
            match state.evict_lru_idle() {
                Some(victim) => removed.push((victim, "evicted for another user")),
                None => return (Step::AwaitRoom, removed),
            }
        }
        let (sender, receiver) = watch::channel(None);
        state.connecting += 1;
        state
            .users
            .entry(user.username.clone())
            .or_default()
            .attempt = Some(receiver.clone());
        // In the span of the request that opens it (others wait for it too).
        let span = tracing::debug_span!(
            "ssh.connect",
            ssh.user = %user.username,
            ssh.host = %self.settings.host
        );
        tokio::spawn(self.clone().connect(user.clone(), sender).instrument(span));
        (Step::AwaitAttempt(receiver), removed)
    }

    /// The shared connection attempt for one user.
    async fn connect(self: Arc<Self>, user: Caller, done: watch::Sender<Attempt>) {
        let started = Instant::now();
        let result = async {
            let credentials = self.credentials.credentials(&user).await?;
            connection::open(
                &self.settings,
                self.config.clone(),
                &user.username,
                credentials,
            )
            .await
        }
        .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        metrics::counter!(
            "ironcrest_ssh_connection_opens_total",
            "cluster" => self.settings.cluster.clone(),
            "outcome" => result.as_ref().map_or_else(SshError::kind, |_| "ok"),
        )
        .increment(1);
        let outcome = {
            let mut state = self.lock();
            state.connecting -= 1;
            let entry = state.users.entry(user.username.clone()).or_default();
            entry.attempt = None;
            match result {
                Ok(handle) => {
                    let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                    entry.connections.push(Arc::new(Connection {
                        id,
                        user: user.username.clone(),
                        handle,
                        opened: Instant::now(),
                        capacity: AtomicUsize::new(self.settings.max_sessions_per_connection),
                        channels: AtomicUsize::new(0),
                        last_used: Mutex::new(Instant::now()),
                        sftp: Mutex::new(Vec::new()),
                        sftp_requests: AtomicUsize::new(0),
                    }));
                    state.open += 1;
                    self.opened_total.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(
                        ssh.user = %user.username,
                        ssh.host = %self.settings.host,
                        ssh.port = self.settings.port,
                        ssh.connection = id,
                        duration_ms,
                        "SSH connection opened"
                    );
                    Ok(())
                }
                Err(err) => {
                    if entry.connections.is_empty() {
                        state.users.remove(&user.username);
                    }
                    tracing::warn!(
                        ssh.user = %user.username,
                        ssh.host = %self.settings.host,
                        ssh.port = self.settings.port,
                        duration_ms,
                        error = %err.detail(),
                        "SSH connection failed"
                    );
                    Err(err)
                }
            }
        };
        self.changed.notify_waiters();
        // Nobody waiting any more is fine.
        let _ = done.send(Some(outcome));
    }

    fn count_channel_open_failure(&self, reason: &'static str) {
        metrics::counter!(
            "ironcrest_ssh_channel_open_failures_total",
            "cluster" => self.settings.cluster.clone(),
            "reason" => reason,
        )
        .increment(1);
    }

    /// Takes a connection out of the pool because it failed; running commands keep it
    /// alive until they finish, the last one to finish drops it.
    fn discard(&self, connection: &Arc<Connection>, reason: &'static str) {
        let removed = self
            .lock()
            .remove_where(|c| (c.id == connection.id).then_some(reason));
        self.close_removed(removed);
    }

    /// Logs and closes removed connections in the background (idle ones only: a busy one
    /// closes when its last command ends and drops it).
    fn close_removed(&self, removed: Vec<(Arc<Connection>, &'static str)>) {
        if removed.is_empty() {
            return;
        }
        for (connection, reason) in removed {
            log_closed(&self.settings, &connection, reason);
            if connection.is_idle()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                runtime.spawn(async move { connection::close(&connection.handle).await });
            }
        }
        self.changed.notify_waiters();
    }
}

/// The span of waiting for a channel slot (`exec`) or an SFTP session (`sftp`), a
/// connection opened for it included.
fn acquire_span(channel: &'static str) -> tracing::Span {
    tracing::debug_span!("ssh.pool.acquire", ssh.channel = channel)
}

/// A command type's own name (`Ls`, `Sbatch`), without its path or generic parameters.
fn command_name<C>() -> &'static str {
    let name = std::any::type_name::<C>();
    let name = name.split('<').next().unwrap_or(name);
    name.rsplit("::").next().unwrap_or(name)
}

fn log_closed(settings: &PoolSettings, connection: &Connection, reason: &str) {
    tracing::info!(
        ssh.user = %connection.user,
        ssh.host = %settings.host,
        ssh.port = settings.port,
        ssh.connection = connection.id,
        duration_ms = connection.opened.elapsed().as_millis() as u64,
        reason,
        "SSH connection closed"
    );
}

/// One remote command being timed; [`MeasuredCommand::finish`] records it.
struct MeasuredCommand {
    cluster: String,
    command: &'static str,
    started: Instant,
}

impl MeasuredCommand {
    /// Counts the command in `ironcrest_remote_commands_total` and its duration in
    /// `ironcrest_remote_command_duration_seconds`, by cluster, command type and `outcome`
    /// (`ok`, `failed`: the tool refused or printed what its parser cannot read, or the
    /// [`SshError::kind`] that stopped it).
    fn finish(self, outcome: &'static str) {
        let labels = [
            ("cluster", self.cluster),
            ("command", self.command.to_string()),
            ("outcome", outcome.to_string()),
        ];
        metrics::counter!("ironcrest_remote_commands_total", &labels).increment(1);
        metrics::histogram!("ironcrest_remote_command_duration_seconds", &labels)
            .record(self.started.elapsed());
    }
}

/// A raw command's outcome: `ok` for exit status 0, else `failed` or the [`SshError::kind`].
fn exit_outcome(output: &Result<Output, SshError>) -> &'static str {
    match output {
        Ok(output) if output.exit_status == 0 => "ok",
        Ok(_) => "failed",
        Err(err) => err.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_type_is_labelled_by_its_last_path_segment() {
        assert_eq!(command_name::<CommandLine>(), "CommandLine");
        assert_eq!(command_name::<Vec<CommandLine>>(), "Vec");
        assert_eq!(command_name::<u32>(), "u32");
    }
}
