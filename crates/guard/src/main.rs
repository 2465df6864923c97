//! `ironcrest-guard`: the forced command of the certificates Ironcrest's built-in CA signs
//! (`force-command=<this binary> …`). sshd runs it in place of whatever the client asked
//! for, which it finds in `SSH_ORIGINAL_COMMAND`. It runs that command only if it has the
//! shape of a line Ironcrest itself builds (the allowlist generated from Ironcrest's
//! `RemoteCommand` types, built into this binary), or the SFTP subsystem; it logs every
//! decision (user, request ids, client, verdict, command) and refuses everything else,
//! interactive logins included. So a stolen certificate can do no more than Ironcrest would.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use ironcrest_remote::{Allowlist, LineIds};

/// Runs only the command lines Ironcrest sends; logs each decision.
#[derive(Debug, Parser)]
#[command(name = "ironcrest-guard", version)]
struct Options {
    /// Append one JSON line per decision to this file, instead of syslog (authpriv).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// The SFTP server to run for the `sftp` subsystem; sshd's `Subsystem sftp` command.
    #[arg(long, default_value = "/usr/lib/openssh/sftp-server")]
    sftp_server: PathBuf,
    /// Print the built-in allowlist and exit (to check that an installed guard is current).
    #[arg(long)]
    print_allowlist: bool,
}

/// No single argument of a command can be longer on Linux (`MAX_ARG_STRLEN`), so no line
/// Ironcrest sends is.
const MAX_LINE: usize = 128 * 1024;

/// The exit status of a refusal: what a shell answers for a command it cannot run, so
/// Ironcrest reports a refused command as a cluster problem.
const REFUSED: u8 = 126;

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// One of Ironcrest's command lines: run by `/bin/sh -c`, byte for byte.
    Run(LineIds),
    /// The SFTP subsystem.
    Sftp,
}

/// What to do with `original`, the command the client asked for (`None`: a login shell).
fn decide(
    original: Option<&[u8]>,
    sftp_server: &Path,
    allowlist: &Allowlist,
) -> Result<Decision, String> {
    let Some(line) = original else {
        return Err("an interactive login (no command)".into());
    };
    // sshd hands a subsystem request to the forced command with the subsystem's command
    // from sshd_config as the original command.
    if line == sftp_server.as_os_str().as_bytes() || line == b"internal-sftp" {
        return Ok(Decision::Sftp);
    }
    if line.len() > MAX_LINE {
        return Err(format!("a command longer than {MAX_LINE} bytes"));
    }
    allowlist
        .check(line)
        .map(Decision::Run)
        .map_err(|refusal| refusal.to_string())
}

/// One decision, as logged: never the command's input, only its line.
fn record(
    user: &str,
    client: Option<&str>,
    original: Option<&[u8]>,
    decision: &Result<Decision, String>,
) -> serde_json::Value {
    let (verdict, reason, ids) = match decision {
        Ok(Decision::Run(ids)) => ("accepted", None, ids.clone()),
        Ok(Decision::Sftp) => ("accepted", None, LineIds::default()),
        Err(reason) => ("refused", Some(reason.as_str()), LineIds::default()),
    };
    serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "user": user,
        "client": client,
        "request_id": ids.request_id,
        "correlation_id": ids.correlation_id,
        "verdict": verdict,
        "reason": reason,
        "command": original.map(String::from_utf8_lossy),
    })
}

/// Appends `entry` to the log file, or sends it to syslog (authpriv; warning for a refusal).
fn log(options: &Options, entry: &serde_json::Value, refused: bool) -> std::io::Result<()> {
    let mut line = entry.to_string();
    match &options.log_file {
        Some(path) => {
            line.push('\n');
            // One write of the whole line to a file opened for appending: lines of
            // concurrent guards do not interleave.
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)?
                .write_all(line.as_bytes())
        }
        None => {
            const AUTHPRIV: u8 = 10;
            let severity = if refused { 4 } else { 6 };
            let message = format!(
                "<{}>ironcrest-guard[{}]: {line}",
                AUTHPRIV * 8 + severity,
                std::process::id()
            );
            let socket = std::os::unix::net::UnixDatagram::unbound()?;
            socket.send_to(message.as_bytes(), "/dev/log").map(drop)
        }
    }
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()))
}

fn main() -> ExitCode {
    let options = Options::parse();
    let allowlist = Allowlist::current();
    if options.print_allowlist {
        print!("{}", Allowlist::current_text());
        return ExitCode::SUCCESS;
    }
    let original = std::env::var_os("SSH_ORIGINAL_COMMAND").map(OsStringExt::into_vec);
    let client = std::env::var("SSH_CLIENT").ok();
    let client_address = client.as_deref().and_then(|c| c.split(' ').next());
    let decision = decide(original.as_deref(), &options.sftp_server, &allowlist);
    let entry = record(&user(), client_address, original.as_deref(), &decision);
    // Fail closed: a command whose decision cannot be logged does not run.
    if let Err(err) = log(&options, &entry, decision.is_err()) {
        eprintln!("ironcrest-guard: refused: cannot log the command: {err}");
        return ExitCode::from(REFUSED);
    }
    let mut command = match decision {
        Ok(Decision::Run(_)) => {
            let line = original.unwrap_or_default();
            let mut shell = Command::new("/bin/sh");
            shell.arg("-c").arg(OsStr::from_bytes(&line));
            shell
        }
        Ok(Decision::Sftp) => Command::new(&options.sftp_server),
        Err(reason) => {
            eprintln!(
                "ironcrest-guard: refused: {reason}. This certificate runs only the commands \
                 Ironcrest sends."
            );
            return ExitCode::from(REFUSED);
        }
    };
    let err = command.env_remove("SSH_ORIGINAL_COMMAND").exec();
    eprintln!("ironcrest-guard: cannot run the command: {err}");
    ExitCode::from(REFUSED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcrest_remote::CommandLine;

    const SFTP: &str = "/usr/lib/openssh/sftp-server";

    fn decided(line: Option<&[u8]>) -> Result<Decision, String> {
        decide(line, Path::new(SFTP), &Allowlist::current())
    }

    #[test]
    fn ironcrest_lines_and_sftp_are_accepted() {
        let id = CommandLine::builder("id").build();
        assert_eq!(
            decided(Some(id.as_bytes())),
            Ok(Decision::Run(LineIds::default()))
        );
        assert_eq!(decided(Some(SFTP.as_bytes())), Ok(Decision::Sftp));
        assert_eq!(decided(Some(b"internal-sftp")), Ok(Decision::Sftp));
    }

    #[test]
    fn everything_else_is_refused() {
        let long = format!("LC_ALL=C id {}", "x".repeat(MAX_LINE));
        for line in [
            b"bash -c 'id'".as_slice(),
            b"id",
            b"LC_ALL=C id; sh",
            b"LC_ALL=C id\nsh",
            b"LC_ALL=C true && LC_ALL=C id",
            b"/usr/lib/openssh/sftp-server -d /",
            b"sftp",
            b"",
            long.as_bytes(),
        ] {
            assert!(
                decided(Some(line)).is_err(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(
            decided(None),
            Err("an interactive login (no command)".to_string())
        );
    }

    #[test]
    fn the_log_line_names_user_ids_client_and_verdict() {
        let line = CommandLine::builder("id")
            .build()
            .with_request_ids(&ironcrest_remote::RequestIds {
                request_id: "req-1".into(),
                correlation_id: Some("corr-1".into()),
            })
            .unwrap();
        let decision = decided(Some(line.as_bytes()));
        let entry = record(
            "fireuser",
            Some("127.0.0.1"),
            Some(line.as_bytes()),
            &decision,
        );
        assert_eq!(entry["user"], "fireuser");
        assert_eq!(entry["client"], "127.0.0.1");
        assert_eq!(entry["request_id"], "req-1");
        assert_eq!(entry["correlation_id"], "corr-1");
        assert_eq!(entry["verdict"], "accepted");
        assert_eq!(entry["command"], line.to_string());

        let refused = decided(Some(b"bash -c 'id'"));
        let entry = record("fireuser", None, Some(b"bash -c 'id'"), &refused);
        assert_eq!(entry["verdict"], "refused");
        assert_eq!(entry["command"], "bash -c 'id'");
        assert!(entry["reason"].as_str().unwrap().contains("LC_ALL=C"));
    }

    #[test]
    fn log_files_get_one_line_per_decision() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            log_file: Some(dir.path().join("guard.log")),
            sftp_server: SFTP.into(),
            print_allowlist: false,
        };
        for n in 0..3 {
            log(&options, &serde_json::json!({ "n": n }), false).unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("guard.log")).unwrap();
        assert_eq!(text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
    }
}
