//! The batch scripts of transfer jobs (wire reference §2.4). Every value enters a script
//! as one shell-quoted word from the quoting module (v2 HTML-escapes values into bash),
//! each script prints FirecREST's success sentence only when its work is done, and any
//! failure exits non-zero with `Unable to …` on standard error.
//!
//! Staged files are written to a temporary name beside the target and renamed only after
//! their size (and S3's MD5 ETag, where the store gives one) has been checked, so a
//! cancelled or failed job never leaves a partial or clobbered target.

use ironcrest_remote::{CommandLine, RemoteCommand, quote_for_bash_script};

use crate::ServiceError;
use crate::filesystem::commands::{Compress, Compression, Extract};

/// The transfer logs in `directory` older than `days`, which a new transfer job removes
/// before its work, so that logs do not pile up where the user lists files.
pub struct ExpiredLogs<'a> {
    pub directory: &'a [u8],
    pub days: u32,
}

impl ExpiredLogs<'_> {
    fn line(&self) -> Result<String, ServiceError> {
        let find = CommandLine::builder("find")
            .operands([self.directory])?
            .word("-maxdepth")
            .word("1")
            .word("-type")
            .word("f")
            .option_arg("-name", ".f7t_file_handling_job_*.log")?
            .option_arg("-mtime", format!("+{}", self.days))?
            .word("-delete")
            .build();
        Ok(format!(
            "{} 2>/dev/null || true\n",
            text(find.as_bash_script_line())?
        ))
    }
}

/// What a transfer job does.
pub enum TransferScript<'a> {
    Move {
        source: &'a [u8],
        target: &'a [u8],
    },
    Copy {
        source: &'a [u8],
        target: &'a [u8],
        dereference: bool,
    },
    Delete {
        path: &'a [u8],
    },
    /// `rsync -a` (FirecREST v1's `xfer-internal/rsync`).
    Sync {
        source: &'a [u8],
        target: &'a [u8],
    },
    Compress {
        parent: &'a [u8],
        base: &'a [u8],
        target: &'a [u8],
        pattern: Option<&'a str>,
        compression: Compression,
        dereference: bool,
    },
    Extract {
        source: &'a [u8],
        target: &'a [u8],
        compression: Compression,
    },
    /// Client → cluster: wait for the object the client uploads, fetch it, check it, and
    /// rename it over `target`.
    StageIn {
        target: &'a [u8],
        /// The temporary file beside the target.
        partial: &'a [u8],
        /// The size the client announced; `None`: whatever the object's is.
        size: Option<u64>,
        part_size: u64,
        /// Parts digested at once.
        parallel: u32,
        /// Seconds to wait for the client's upload (the URLs' lifetime).
        wait_limit: u64,
        head_url: &'a str,
        get_url: &'a str,
        delete_url: &'a str,
    },
    /// Cluster → client: cut `source` into parts, upload them (`parallel` at a time) to the
    /// presigned part URLs, then complete the multipart upload.
    StageOut {
        source: &'a [u8],
        size: u64,
        part_size: u64,
        parallel: u32,
        /// Where the job keeps the parts' response headers and ETags.
        scratch: &'a [u8],
        part_urls: &'a [String],
        complete_url: &'a str,
    },
}

/// The first line every transfer job prints (v2's, with the job id from any scheduler).
fn banner(title: &str) -> String {
    format!("echo \"$(date -u) \\\"{title} (id:${{SLURM_JOB_ID:-${{PBS_JOBID:-unknown}}}})\\\"\"\n")
}

/// `line`, then the success sentence, or `Unable to <what>` and the command's status.
fn step(line: &CommandLine, success: &str, what: &str) -> Result<String, ServiceError> {
    let line = text(line.as_bash_script_line())?;
    Ok(format!(
        "if {line}; then\n  echo '{success}'\nelse\n  status=$?\n  echo \"Unable to {what}, exit code:$status\" >&2\n  exit \"$status\"\nfi\n"
    ))
}

fn word(value: impl AsRef<[u8]>) -> Result<String, ServiceError> {
    text(&quote_for_bash_script(value.as_ref())?)
}

/// A job script is text (slurmrestd takes it in JSON), so a path that is not UTF-8 is
/// refused rather than passed on with its bytes replaced.
fn text(bytes: &[u8]) -> Result<String, ServiceError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ServiceError::InvalidRequest(
            "Transfer jobs take UTF-8 paths only; this path has bytes that are not UTF-8.".into(),
        )
    })
}

impl TransferScript<'_> {
    /// The job's script: the shebang, the site's directives, the removal of expired logs
    /// (if any), then the work.
    pub fn render(
        &self,
        directives: &[String],
        expired_logs: Option<&ExpiredLogs<'_>>,
    ) -> Result<String, ServiceError> {
        let mut script = String::from("#!/bin/bash\n");
        for directive in directives {
            script.push_str(directive);
            script.push('\n');
        }
        if let Some(expired) = expired_logs {
            script.push_str(&expired.line()?);
        }
        script.push_str(&self.body()?);
        Ok(script)
    }

    fn body(&self) -> Result<String, ServiceError> {
        Ok(match *self {
            TransferScript::Move { source, target } => {
                let line = CommandLine::builder("mv")
                    .operands([source, target])?
                    .build();
                banner("Move Files Job")
                    + &step(&line, "Files were successfully moved.", "move files")?
            }
            TransferScript::Copy {
                source,
                target,
                dereference,
            } => {
                let line = CommandLine::builder("cp")
                    .word("--force")
                    .word(if dereference { "-RL" } else { "-Rd" })
                    .word("--preserve=all")
                    .operands([source, target])?
                    .build();
                banner("Copy Files Job")
                    + &step(&line, "Files were successfully copied.", "copy files")?
            }
            TransferScript::Sync { source, target } => {
                let line = CommandLine::builder("rsync")
                    .word("-a")
                    .operands([source, target])?
                    .build();
                banner("Sync Files Job")
                    + &step(
                        &line,
                        "Files were successfully synchronised.",
                        "synchronise files",
                    )?
            }
            TransferScript::Delete { path } => {
                let line = CommandLine::builder("rm")
                    .word("-R")
                    .operands([path])?
                    .build();
                banner("Delete Files Job")
                    + &step(&line, "Files were successfully deleted.", "delete files")?
            }
            TransferScript::Compress {
                parent,
                base,
                target,
                pattern,
                compression,
                dereference,
            } => {
                let line = Compress::new(
                    None,
                    parent,
                    base,
                    target,
                    pattern,
                    compression,
                    dereference,
                )?
                .command_line();
                banner("Compress Files Job")
                    + &step(
                        &line,
                        "Files were successfully compressed.",
                        "compress files",
                    )?
            }
            TransferScript::Extract {
                source,
                target,
                compression,
            } => {
                let line = Extract::new(None, source, target, compression)?.command_line();
                banner("Extract Files Job")
                    + &step(&line, "Files were successfully extracted.", "extract files")?
            }
            TransferScript::StageIn {
                target,
                partial,
                size,
                part_size,
                parallel,
                wait_limit,
                head_url,
                get_url,
                delete_url,
            } => format!(
                "{banner}target={target}\npartial={partial}\nsize={size}\npart_size={part_size}\nparallel={parallel}\nwait_limit={wait_limit}\nhead_url={head_url}\nget_url={get_url}\ndelete_url={delete_url}\n{FUNCTIONS}{STAGE_IN}",
                banner = banner("Upload File Job"),
                size = size.map(|size| size.to_string()).unwrap_or_default(),
                target = word(target)?,
                partial = word(partial)?,
                head_url = word(head_url)?,
                get_url = word(get_url)?,
                delete_url = word(delete_url)?,
            ),
            TransferScript::StageOut {
                source,
                size,
                part_size,
                parallel,
                scratch,
                part_urls,
                complete_url,
            } => {
                let urls = part_urls
                    .iter()
                    .map(word)
                    .collect::<Result<Vec<_>, _>>()?
                    .join(" \\\n  ");
                format!(
                    "{banner}source={source}\nsize={size}\npart_size={part_size}\nparallel={parallel}\nscratch={scratch}\ncomplete_url={complete_url}\npart_urls=(\n  {urls}\n)\n{FUNCTIONS}{STAGE_OUT}",
                    banner = banner("Download File Job"),
                    source = word(source)?,
                    scratch = word(scratch)?,
                    complete_url = word(complete_url)?,
                )
            }
        })
    }
}

/// Shared by both staged directions: failing with a message.
const FUNCTIONS: &str = include_str!("scripts/functions.sh");

/// Client → cluster. Waits (checking every half second for two minutes, then every 30 s,
/// within the URLs' lifetime) for the completed object, checks its size against what the
/// client announced, then downloads it beside the target and digests it for S3's ETag (the
/// MD5 of the file, or for a multipart object the MD5 of its parts' MD5s, `-N` parts), and
/// renames it once both match. A multipart object's parts are digested as soon as each is on
/// disk, `parallel` at a time, so the checksum costs little more time than the download.
const STAGE_IN: &str = include_str!("scripts/stage_in.sh");

/// Cluster → client. `parallel` curls each upload every `parallel`-th part over one kept-alive
/// connection; each part goes from the file straight into its upload through a named pipe,
/// with its length declared (S3 refuses chunked uploads). A part without an ETag is retried
/// once; then the parts' ETags complete the upload. Exit codes as v2's: 34 the source is
/// missing, 27 it changed size, 70 the completion failed.
const STAGE_OUT: &str = include_str!("scripts/stage_out.sh");
