//! One command on one session channel: `exec`, stdin then EOF, bounded collection of
//! stdout/stderr, exit status; stopping the remote process on timeout, overflow or
//! cancellation. Stdin may be a stream of chunks ([`Input::Stream`]), and stdout may be
//! streamed to the caller ([`stream`]) rather than collected, so a file crosses the server
//! without being held in memory.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ironcrest_remote::Output;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::{mpsc, oneshot};

use crate::SshError;

/// How long a command may take to exit after TERM before it gets KILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long sshd may take to close a killed command's channel before its slot is
/// released anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a command reads on stdin.
pub enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    /// Chunks, then EOF when the sender is dropped. An `Err` item means the input was
    /// abandoned: the command is stopped instead of seeing EOF, so it cannot mistake a
    /// truncated input for a complete one.
    Stream(mpsc::Receiver<Result<Bytes, InputAborted>>),
}

/// Sent on an [`Input::Stream`] to abandon the command.
#[derive(Debug, Clone, Copy)]
pub struct InputAborted;

/// A command whose stdout is streamed ([`crate::SshPool::execute_streaming`]).
pub enum Streamed {
    /// The command ended without writing to stdout (e.g. it failed): its stderr and status.
    Finished(Output),
    /// Stdout, chunk by chunk, as it arrives. An `Err` item (timeout, output limit, a
    /// non-zero exit after output began, a lost connection) ends it early.
    Stdout(mpsc::Receiver<Result<Bytes, SshError>>),
}

/// Limits for one command.
pub(crate) struct Limits {
    pub output: u64,
    pub time: Duration,
}

/// Runs `command` on `channel`. `slot` (the pool's accounting of this channel) is held
/// until sshd has closed the channel, so the pool never opens more channels than sshd
/// still counts.
pub(crate) async fn run<S: Send + 'static>(
    channel: Channel<Msg>,
    command: &[u8],
    stdin: Input<'_>,
    limits: Limits,
    slot: S,
) -> Result<Output, SshError> {
    let (read, write) = channel.split();
    let mut guard = ChannelGuard {
        read: Some(read),
        write: Some(write),
        slot: Some(slot),
        closed: false,
    };
    let started = Instant::now();
    let result = match tokio::time::timeout(
        limits.time,
        exchange(&mut guard, command, stdin, limits.output),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(SshError::CommandTimeout),
    };
    tracing::debug!(
        duration_ms = started.elapsed().as_millis() as u64,
        exit_status = result.as_ref().ok().map(|o| o.exit_status),
        error = result.as_ref().err().map(SshError::detail),
        "ssh command finished"
    );
    // Dropping the guard stops the remote process if the channel is still open.
    drop(guard);
    result
}

async fn exchange<S: Send + 'static>(
    guard: &mut ChannelGuard<S>,
    command: &[u8],
    stdin: Input<'_>,
    limit: u64,
) -> Result<Output, SshError> {
    let (Some(read), Some(write)) = (guard.read.as_mut(), guard.write.as_ref()) else {
        return Err(SshError::Protocol("channel already consumed".into()));
    };
    let lost = |err: russh::Error| SshError::ConnectionLost(err.to_string());
    write.exec(true, command.to_vec()).await.map_err(lost)?;

    // stdin is written while output is read: a command like `cat` echoes as it reads,
    // and both directions are flow-controlled by SSH windows.
    let writer = async {
        match stdin {
            Input::None => {}
            Input::Bytes(data) => write
                .data_bytes(data.to_vec())
                .await
                .map_err(Written::Failed)?,
            Input::Stream(mut chunks) => {
                while let Some(chunk) = chunks.recv().await {
                    let chunk = chunk.map_err(|InputAborted| Written::Aborted)?;
                    write.data_bytes(chunk).await.map_err(Written::Failed)?;
                }
            }
        }
        write.eof().await.map_err(Written::Failed)
    };
    tokio::pin!(writer);
    let mut writing = true;
    let mut output = Output::default();
    let mut exit_status = None;
    loop {
        tokio::select! {
            written = &mut writer, if writing => {
                writing = false;
                match written {
                    Ok(()) => {}
                    // Dropping the guard stops the command before it sees EOF.
                    Err(Written::Aborted) => return Err(SshError::Protocol("input abandoned".into())),
                    // The command may exit without reading its input: not an error by itself.
                    Err(Written::Failed(err)) => tracing::debug!(error = %err, "stdin not fully delivered"),
                }
            }
            message = read.wait() => match message {
                Some(ChannelMsg::Data { data }) => append(&mut output.stdout, &data, limit)?,
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    append(&mut output.stderr, &data, limit)?;
                }
                other => {
                    if let Some(exit_status) = control(other, &mut exit_status, &mut guard.closed)? {
                        return Ok(Output { exit_status, ..output });
                    }
                }
            }
        }
    }
}

/// Why writing stdin stopped early.
enum Written {
    Aborted,
    Failed(russh::Error),
}

/// Runs `command` on `channel` with stdout streamed: `first` learns whether output began
/// ([`Streamed::Stdout`]) or the command ended without any ([`Streamed::Finished`]).
/// Meant to be spawned; the remote process is stopped if the stream's reader goes away.
pub(crate) async fn stream<S: Send + 'static>(
    channel: Channel<Msg>,
    command: Vec<u8>,
    limits: Limits,
    slot: S,
    first: oneshot::Sender<Result<Streamed, SshError>>,
) {
    let (read, write) = channel.split();
    let mut guard = ChannelGuard {
        read: Some(read),
        write: Some(write),
        slot: Some(slot),
        closed: false,
    };
    let mut state = StreamState {
        first: Some(first),
        stdout: None,
        sent: 0,
    };
    let result = match tokio::time::timeout(
        limits.time,
        pump(&mut guard, &command, limits.output, &mut state),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(SshError::CommandTimeout),
    };
    match (result, state.first.take(), state.stdout.take()) {
        (result, Some(first), _) => {
            let _ = first.send(result.map(Streamed::Finished));
        }
        (Ok(output), None, Some(stdout)) if output.exit_status != 0 => {
            let _ = stdout
                .send(Err(SshError::Protocol(format!(
                    "command exited with status {} after {} bytes of output: {}",
                    output.exit_status,
                    state.sent,
                    output.stderr_text().trim()
                ))))
                .await;
        }
        (Err(err), None, Some(stdout)) => {
            let _ = stdout.send(Err(err)).await;
        }
        _ => {}
    }
    drop(guard);
}

struct StreamState {
    first: Option<oneshot::Sender<Result<Streamed, SshError>>>,
    stdout: Option<mpsc::Sender<Result<Bytes, SshError>>>,
    sent: u64,
}

/// Forwards stdout to the caller and collects stderr and the exit status (in `Output`,
/// whose stdout stays empty).
async fn pump<S: Send + 'static>(
    guard: &mut ChannelGuard<S>,
    command: &[u8],
    limit: u64,
    state: &mut StreamState,
) -> Result<Output, SshError> {
    let (Some(read), Some(write)) = (guard.read.as_mut(), guard.write.as_ref()) else {
        return Err(SshError::Protocol("channel already consumed".into()));
    };
    let lost = |err: russh::Error| SshError::ConnectionLost(err.to_string());
    write.exec(true, command.to_vec()).await.map_err(lost)?;
    write.eof().await.map_err(lost)?;
    let mut output = Output::default();
    let mut exit_status = None;
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => {
                state.sent += data.len() as u64;
                if state.sent > limit {
                    return Err(SshError::OutputTooLarge { limit });
                }
                let stdout = match &state.stdout {
                    Some(stdout) => stdout,
                    None => {
                        // Bounded, so memory stays flat whatever the file size. Caveat: russh
                        // extends the window on receipt, so a reader slower than the cluster
                        // backs up into russh's per-channel queue and, once that is full,
                        // pauses the connection's other channels until the reader catches
                        // up or the command timeout stops this one.
                        let (tx, rx) = mpsc::channel(4);
                        if let Some(first) = state.first.take() {
                            let _ = first.send(Ok(Streamed::Stdout(rx)));
                        }
                        state.stdout.insert(tx)
                    }
                };
                if stdout.send(Ok(data)).await.is_err() {
                    // The reader went away: dropping the guard stops the command.
                    return Err(SshError::Protocol("stdout reader gone".into()));
                }
            }
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                append(&mut output.stderr, &data, limit)?;
            }
            other => {
                if let Some(exit_status) = control(other, &mut exit_status, &mut guard.closed)? {
                    return Ok(Output {
                        exit_status,
                        ..output
                    });
                }
            }
        }
    }
}

/// The channel messages other than output, shared by both ways of running a command:
/// records the exit status, and once the channel closes returns it (`Some`), or an error
/// if the command ended without one.
fn control(
    message: Option<ChannelMsg>,
    exit_status: &mut Option<u32>,
    closed: &mut bool,
) -> Result<Option<u32>, SshError> {
    match message {
        Some(ChannelMsg::ExitStatus {
            exit_status: status,
        }) => *exit_status = Some(status),
        Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
            *exit_status = Some(128 + signal_number(&signal_name));
        }
        Some(ChannelMsg::Failure) => {
            return Err(SshError::ChannelOpenFailed(
                "sshd refused the exec request".into(),
            ));
        }
        Some(ChannelMsg::Close) => {
            *closed = true;
            return exit_status
                .map(Some)
                .ok_or_else(|| SshError::Protocol("channel closed without an exit status".into()));
        }
        None => {
            *closed = true;
            return Err(SshError::ConnectionLost(
                "connection closed while the command was running".into(),
            ));
        }
        Some(_) => {}
    }
    Ok(None)
}

fn append(buffer: &mut Vec<u8>, data: &[u8], limit: u64) -> Result<(), SshError> {
    if (buffer.len() + data.len()) as u64 > limit {
        return Err(SshError::OutputTooLarge { limit });
    }
    buffer.extend_from_slice(data);
    Ok(())
}

/// The shell convention (`128 + n`) for a command killed by a signal.
fn signal_number(signal: &Sig) -> u32 {
    match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

/// Whether sshd closed the channel within `grace` (it does once the process has exited
/// and its output is drained).
async fn wait_for_close(read: &mut ChannelReadHalf, grace: Duration) -> bool {
    let closed = async {
        while let Some(message) = read.wait().await {
            if matches!(message, ChannelMsg::Close) {
                break;
            }
        }
    };
    tokio::time::timeout(grace, closed).await.is_ok()
}

/// Owns a channel while a command runs. If it is dropped before sshd closed the channel
/// (timeout, output limit, or the caller's future was cancelled), it stops the process
/// (TERM, then KILL) and waits for sshd's close in the background, holding the slot.
struct ChannelGuard<S: Send + 'static> {
    read: Option<ChannelReadHalf>,
    write: Option<ChannelWriteHalf<Msg>>,
    slot: Option<S>,
    closed: bool,
}

impl<S> Drop for ChannelGuard<S>
where
    S: Send + 'static,
{
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (Some(mut read), Some(write), slot) =
            (self.read.take(), self.write.take(), self.slot.take())
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            // sshd delivers a `signal` request with killpg() to the session's process
            // group, so TERM reaches the whole command, not just its shell. Messages are
            // read (and dropped) throughout: russh queues channel messages in a bounded
            // buffer, and an unread one would stall every channel of the connection.
            // No EOF is sent: a stopped command must never read its input as complete
            // (an abandoned upload would otherwise be renamed into place).
            let _ = write.signal(Sig::TERM).await;
            if !wait_for_close(&mut read, TERM_GRACE).await {
                // sshd keeps the session (and its MaxSessions slot) until the process
                // exits, so one that ignores TERM gets KILL.
                let _ = write.signal(Sig::KILL).await;
                let _ = write.close().await;
                wait_for_close(&mut read, CLOSE_GRACE).await;
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_limit_is_refused() {
        let mut buffer = Vec::new();
        append(&mut buffer, b"12345", 10).unwrap();
        append(&mut buffer, b"67890", 10).unwrap();
        assert!(matches!(
            append(&mut buffer, b"x", 10),
            Err(SshError::OutputTooLarge { limit: 10 })
        ));
        assert_eq!(buffer, b"1234567890");
    }
}
