//! The per-cluster connection pool.
//!
//! Connections are per user (sshd authenticates a connection as one user). Each carries up
//! to `max_sessions_per_connection` concurrent channels; past that a user gets another
//! connection. All users together hold at most `max_clients` connections (established or
//! being opened); at the bound an idle connection of another user is evicted, otherwise
//! the request waits up to the connection timeout for a free slot.
//!
//! A connection may also carry one standing SFTP session ([`SshPool::sftp`], see
//! [`crate::sftp`]): it takes one of the connection's channel slots while it lives, but
//! does not keep the connection from going idle; requests using it are counted apart.
//!
//! Opening a connection is a spawned task whose result every waiting request of that user
//! shares, so N concurrent first requests cause one handshake, and a cancelled request
//! does not abort a handshake others wait for.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ironcrest_remote::{CommandLine, Output, RemoteCommand};
use russh::Channel;
use russh::client::{self, Msg};
use russh_sftp::client::RawSftpSession;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::connection::{self, SshHandle};
use crate::credentials::CredentialProvider;
use crate::exec::{self, Input, Limits, Streamed};
use crate::sftp::{Session, Sftp, SftpError};
use crate::{PoolSettings, RunError, SshError, SshUser};

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
    /// Standing SFTP sessions (each also counted in `channels`).
    pub sftp_sessions: usize,
    /// Session channels opened for commands (`exec`) since the pool was created.
    pub exec_channels_total: u64,
    /// SFTP sessions opened since the pool was created.
    pub sftp_opened_total: u64,
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
    /// Per user, serialises opening their SFTP session, so concurrent first requests of a
    /// user open one (and take one channel slot, not one each). Per user, so that one
    /// user's slow login delays nobody else's. Held only while a session is opened.
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
    /// The standing SFTP session, if open and not known dead.
    sftp: Mutex<Option<Arc<Session>>>,
    /// Whether the SFTP session holds one of the channel slots.
    sftp_channel: AtomicBool,
    /// Requests currently using the SFTP session.
    sftp_requests: AtomicUsize,
}

impl Connection {
    /// Channels in use, the SFTP session's included.
    fn channels_in_use(&self) -> usize {
        self.channels.load(Ordering::SeqCst) + usize::from(self.sftp_channel.load(Ordering::SeqCst))
    }

    fn has_room(&self) -> bool {
        self.channels_in_use() < self.capacity.load(Ordering::SeqCst)
    }

    /// No command and no SFTP request running (an open SFTP session alone is idle).
    fn is_idle(&self) -> bool {
        self.channels.load(Ordering::SeqCst) == 0 && self.sftp_requests.load(Ordering::SeqCst) == 0
    }

    fn live_sftp(&self) -> Option<Arc<Session>> {
        self.sftp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the SFTP session `dead` (if it is still the current one) and frees its slot.
    fn drop_sftp(&self, dead: &Arc<Session>) {
        let mut current = self.sftp.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|s| Arc::ptr_eq(s, dead)) {
            *current = None;
            self.sftp_channel.store(false, Ordering::SeqCst);
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

/// An SFTP request's claim on a connection; released on drop.
struct SftpUse {
    inner: Arc<Inner>,
    connection: Arc<Connection>,
}

impl SftpUse {
    fn new(inner: &Arc<Inner>, connection: Arc<Connection>) -> Self {
        connection.sftp_requests.fetch_add(1, Ordering::SeqCst);
        connection.touch();
        Self {
            inner: inner.clone(),
            connection,
        }
    }
}

impl Drop for SftpUse {
    fn drop(&mut self) {
        self.connection.touch();
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
        user: &SshUser,
        command: &CommandLine,
        stdin: Option<&[u8]>,
    ) -> Result<Output, SshError> {
        let input = match stdin {
            Some(data) => Input::Bytes(data),
            None => Input::None,
        };
        self.execute_with_input(user, command, input).await
    }

    /// Like [`SshPool::execute`], with stdin given as an [`Input`], e.g. a stream of chunks
    /// that is never held in memory as a whole.
    pub async fn execute_with_input(
        &self,
        user: &SshUser,
        command: &CommandLine,
        input: Input<'_>,
    ) -> Result<Output, SshError> {
        let span = self.span(user);
        async {
            let (channel, slot) = self.open_channel(user).await?;
            exec::run(channel, command.as_bytes(), input, self.limits(), slot).await
        }
        .instrument(span)
        .await
    }

    /// Runs `command` with its stdout streamed: resolves once output begins
    /// ([`Streamed::Stdout`]) or the command ends without any ([`Streamed::Finished`]).
    /// The command is bounded by the command timeout and the output limit, and stopped if
    /// the stream is dropped.
    pub async fn execute_streaming(
        &self,
        user: &SshUser,
        command: &CommandLine,
    ) -> Result<Streamed, SshError> {
        let span = self.span(user);
        let (channel, slot) = self.open_channel(user).instrument(span.clone()).await?;
        let (first, started) = tokio::sync::oneshot::channel();
        tokio::spawn(
            exec::stream(
                channel,
                command.as_bytes().to_vec(),
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

    fn span(&self, user: &SshUser) -> tracing::Span {
        tracing::debug_span!(
            "ssh.execute",
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
    async fn open_channel(&self, user: &SshUser) -> Result<(Channel<Msg>, Slot), SshError> {
        let settings = &self.inner.settings;
        let mut retried = false;
        loop {
            let slot = self.inner.acquire(user).await?;
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
                    SshError::ChannelOpenFailed(format!("refused by sshd: {reason:?}"))
                }
                Ok(Err(err)) => {
                    self.inner.discard(&slot.connection, "channel open failed");
                    SshError::ChannelOpenFailed(format!("connection unusable: {err}"))
                }
                Err(_) => {
                    self.inner
                        .discard(&slot.connection, "channel open timed out");
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

    /// The standing SFTP session of one of `user`'s connections, opened (on a connection
    /// with a free channel) if none has one. Requests on it share it; one that finds it
    /// dead marks it so, and the next call opens a new one.
    pub async fn sftp(&self, user: &SshUser) -> Result<Sftp, SftpError> {
        if let Some(sftp) = self.live_sftp(user) {
            return Ok(sftp);
        }
        let lock = self.sftp_opening_lock(&user.username);
        let opened = self.open_user_sftp(user, &lock).await;
        // Forget the user's lock unless another request holds it too.
        let mut locks = self
            .inner
            .sftp_opening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&user.username);
        }
        opened
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

    async fn open_user_sftp(
        &self,
        user: &SshUser,
        lock: &tokio::sync::Mutex<()>,
    ) -> Result<Sftp, SftpError> {
        let opening = lock.lock().await;
        if let Some(sftp) = self.live_sftp(user) {
            return Ok(sftp);
        }
        let unusable = |err: SshError| SftpError::Session(err.detail());
        let slot = self.inner.acquire(user).await.map_err(unusable)?;
        let connection = slot.connection.clone();
        let session = self.open_sftp(&connection).await?;
        *connection
            .sftp
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(session);
        // The slot's channel becomes the session's: counted before the slot is freed.
        connection.sftp_channel.store(true, Ordering::SeqCst);
        self.inner.sftp_opened_total.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(ssh.user = %user.username, ssh.connection = connection.id, "SFTP session opened");
        drop(slot);
        drop(opening);
        self.sftp_on(connection)
            .ok_or_else(|| SftpError::Session("SFTP session closed while opening".into()))
    }

    /// A live session on one of `user`'s connections, if any.
    fn live_sftp(&self, user: &SshUser) -> Option<Sftp> {
        let connection = {
            let state = self.inner.lock();
            state
                .users
                .get(&user.username)?
                .connections
                .iter()
                .find(|c| !c.handle.is_closed() && c.live_sftp().is_some())?
                .clone()
        };
        self.sftp_on(connection)
    }

    fn sftp_on(&self, connection: Arc<Connection>) -> Option<Sftp> {
        let session = connection.live_sftp()?;
        let dead = {
            let connection = connection.clone();
            let session = session.clone();
            move || connection.drop_sftp(&session)
        };
        Some(Sftp {
            session,
            _use: Arc::new(SftpUse::new(&self.inner, connection)),
            on_dead: Arc::new(dead),
        })
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
        user: &SshUser,
        command: &C,
    ) -> Result<C::Parsed, RunError> {
        let output = self
            .execute(user, &command.command_line(), command.stdin())
            .await?;
        Ok(command.parse(output)?)
    }

    /// Closes idle and dead connections every few seconds until `shutdown` completes,
    /// then closes every connection. Spawn it once per pool.
    pub async fn maintain(self, shutdown: impl Future<Output = ()>) {
        let period = (self.inner.settings.idle_timeout() / 2)
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(period) => {
                    self.evict_idle();
                }
            }
        }
        self.close_all().await;
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
                .filter(|c| c.sftp_channel.load(Ordering::SeqCst))
                .count(),
            exec_channels_total: self.inner.exec_channels_total.load(Ordering::SeqCst),
            sftp_opened_total: self.inner.sftp_opened_total.load(Ordering::SeqCst),
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

    /// A channel slot on a connection of `user`, opening a connection if needed.
    async fn acquire(self: &Arc<Self>, user: &SshUser) -> Result<Slot, SshError> {
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

    fn next_step(self: &Arc<Self>, user: &SshUser) -> (Step, Vec<(Arc<Connection>, &'static str)>) {
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
        tokio::spawn(self.clone().connect(user.clone(), sender));
        (Step::AwaitAttempt(receiver), removed)
    }

    /// The shared connection attempt for one user.
    async fn connect(self: Arc<Self>, user: SshUser, done: watch::Sender<Attempt>) {
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
                        sftp: Mutex::new(None),
                        sftp_channel: AtomicBool::new(false),
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
