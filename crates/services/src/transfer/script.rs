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
        size: u64,
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
const FUNCTIONS: &str = r#"fail() { code=$1; shift; echo "Unable to $*" >&2; exit "$code"; }
"#;

/// Client → cluster. Waits (checking every half second for two minutes, then every 30 s,
/// within the URLs' lifetime) for the completed object, checks its size against what the
/// client announced, then downloads it beside the target and digests it for S3's ETag (the
/// MD5 of the file, or for a multipart object the MD5 of its parts' MD5s, `-N` parts), and
/// renames it once both match. A multipart object's parts are digested as soon as each is on
/// disk, `parallel` at a time, so the checksum costs little more time than the download.
const STAGE_IN: &str = r#"header() { tr -d '\r' | sed -n "s/^$1: *//Ip" | head -n 1; }
work=
# Also stops the digests still waiting for parts of a download that was cut short.
trap 'kill $(jobs -p) 2>/dev/null; rm -f -- "$partial"; [ -z "$work" ] || rm -rf -- "$work"' EXIT
trap 'exit 143' TERM INT HUP
[ -d "$target" ] && fail 3 "upload the file: the target is a directory"
started=$(date +%s)
deadline=$(( started + wait_limit ))
until headers=$(curl --silent --fail --head -- "$head_url"); do
  now=$(date +%s)
  [ "$now" -ge "$deadline" ] && fail 4 "upload the file: the staged upload was not completed in time"
  # Often while a client is likely uploading, then every 30 s.
  if [ $(( now - started )) -lt 120 ]; then sleep 0.5; else sleep 30; fi
done
length=$(printf '%s\n' "$headers" | header Content-Length)
[ "$length" = "$size" ] || fail 5 "upload the file: the staged object has $length bytes, $size were announced"
etag=$(printf '%s\n' "$headers" | header ETag | tr -d '"')
get() { curl --silent --show-error --fail --retry 5 -- "$get_url"; }
arrived() { [ "$(stat -c %s -- "$partial")" -ge "$1" ]; }
# Digests every `parallel`-th part from part $1 on, each once it is wholly on disk (looking
# often, then every half second on a slow download); stops when the download has ended
# without bringing the part.
digest_lane() {
  local number offset length tries
  for (( number = $1; number <= count; number += parallel )); do
    offset=$(( (number - 1) * part_size ))
    length=$(( size - offset < part_size ? size - offset : part_size ))
    tries=0
    until arrived $(( offset + length )); do
      if [ -e "$work/fetched" ]; then arrived $(( offset + length )) && break; return 0; fi
      if (( ++tries < 20 )); then sleep 0.05; else sleep 0.5; fi
    done
    dd if="$partial" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none |
      md5sum > "$work/sum.$number"
  done
}
: > "$partial" || fail 6 "upload the file: the temporary file cannot be created"
if [[ $etag =~ ^[0-9a-f]{32}-([0-9]+)$ ]]; then
  count=${BASH_REMATCH[1]}
  parts=$(( size > part_size ? (size + part_size - 1) / part_size : 1 ))
  [ "$count" = "$parts" ] ||
    fail 9 "upload the file: the staged object was uploaded in $count parts, not the $parts parts of $part_size bytes handed out"
  work=$(mktemp -d) || fail 6 "upload the file: no scratch directory for the checksums"
  for (( lane = 1; lane <= parallel; lane++ )); do digest_lane "$lane" & done
  get > "$partial"
  fetched=$?
  echo "$fetched" > "$work/fetched"
  wait
  [ "$fetched" = 0 ] || fail 6 "upload the file: the staged object could not be downloaded, exit code:$fetched"
  sums=
  for (( number = 1; number <= count; number++ )); do
    read -r sum _ 2>/dev/null < "$work/sum.$number" || fail 7 "upload the file: part $number of $count did not arrive"
    sums+=$sum
  done
  computed=$(printf "$(printf '%s' "$sums" | sed 's/../\\x&/g')" | md5sum)
  computed="${computed%% *}-$count"
elif [[ $etag =~ ^[0-9a-f]{32}$ ]]; then
  computed=$(set -o pipefail; get | tee -- "$partial" | md5sum) ||
    fail 6 "upload the file: the staged object could not be downloaded, exit code:$?"
  computed=${computed%% *}
else
  # Not an MD5 (e.g. an encrypted object): the size checks are all there is.
  get > "$partial" || fail 6 "upload the file: the staged object could not be downloaded, exit code:$?"
  computed=$etag
fi
actual=$(stat -c %s -- "$partial") || fail 7 "upload the file: the downloaded file is missing"
[ "$actual" = "$size" ] || fail 7 "upload the file: $actual of $size bytes arrived"
[ "$computed" = "$etag" ] || fail 9 "upload the file: its checksum $computed differs from the staged object's $etag"
mv -f -- "$partial" "$target" || fail 10 "upload the file: it could not be renamed to the target"
curl --silent --output /dev/null --request DELETE -- "$delete_url" || true
awk -v bytes="$actual" 'BEGIN { printf "File was successfully downloaded (size: %.3fMB)\n", bytes / 1000000 }'
"#;

/// Cluster → client. `parallel` curls each upload every `parallel`-th part over one kept-alive
/// connection; each part goes from the file straight into its upload through a named pipe,
/// with its length declared (S3 refuses chunked uploads). A part without an ETag is retried
/// once; then the parts' ETags complete the upload. Exit codes as v2's: 34 the source is
/// missing, 27 it changed size, 70 the completion failed.
const STAGE_OUT: &str = r#"[ -r "$source" ] || fail 34 "download the file: it does not exist or is not readable"
actual=$(stat -L -c %s -- "$source") || fail 34 "download the file: it does not exist"
[ "$actual" = "$size" ] || fail 27 "download the file: it has $actual bytes now, $size when the transfer was requested"
mkdir -p -- "$scratch" || fail 1 "download the file: cannot create the scratch directory"
work=$(mktemp -d -- "$scratch/f7t-download.XXXXXXXX") || fail 1 "download the file: cannot create a scratch directory"
trap 'rm -rf -- "$work"' EXIT
trap 'exit 143' TERM INT HUP
count=${#part_urls[@]}
# Uploads the parts given as arguments one after another, 32 per curl (`--next`), so that one
# connection serves them and no more than 32 pipe writers wait at a time.
upload_parts() {
  local args number offset length input
  while (( $# )); do
    args=()
    for number in "${@:1:32}"; do
      offset=$(( (number - 1) * part_size ))
      length=$(( size - offset < part_size ? size - offset : part_size ))
      if [ "$count" -eq 1 ]; then
        input=$source
      else
        input=$work/part.$number
        rm -f -- "$input"
        mkfifo -- "$input" || return
        # A file that shrank meanwhile sends fewer bytes than declared, and the part fails.
        dd if="$source" of="$input" bs=1M iflag=skip_bytes,count_bytes skip="$offset" count="$length" status=none &
      fi
      (( ${#args[@]} )) && args+=(--next)
      args+=(--silent --show-error --fail --dump-header "$work/headers.$number" --output /dev/null
        --header "Content-Length: $length" --header 'Transfer-Encoding:' --header 'Expect:'
        --upload-file "$input" --url "${part_urls[number - 1]}")
    done
    shift $(( $# < 32 ? $# : 32 ))
    curl "${args[@]}"
    # Parts curl never reached (it stopped early) still have a writer waiting for a reader.
    kill $(jobs -p) 2>/dev/null
    wait
  done
}
# Sets `etag` to the ETag in part $1's response headers, with builtins only (no process per part).
etag_of() {
  local line
  etag=
  [ -f "$work/headers.$1" ] || return 1
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ ${line,,} == etag:* ]]; then
      etag=${line#*:}
      etag=${etag#"${etag%%[! ]*}"}
      [ -n "$etag" ]
      return
    fi
  done < "$work/headers.$1"
  return 1
}
for round in 1 2; do
  missing=()
  for (( number = 1; number <= count; number++ )); do
    etag_of "$number" || missing+=("$number")
  done
  for (( lane = 0; lane < parallel && lane < ${#missing[@]}; lane++ )); do
    parts=()
    for (( i = lane; i < ${#missing[@]}; i += parallel )); do parts+=("${missing[i]}"); done
    upload_parts "${parts[@]}" &
  done
  wait
done
{
  printf '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
  for (( number = 1; number <= count; number++ )); do
    etag_of "$number" || fail 70 "download the file: part $number of $count could not be uploaded"
    printf '<Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part>' "$number" "$etag"
  done
  printf '</CompleteMultipartUpload>'
} > "$work/complete.xml" || exit
answer=$(curl --silent --show-error --fail --request POST --header 'Content-Type: application/xml' \
  --data-binary "@$work/complete.xml" -- "$complete_url") || fail 70 "download the file: completing the upload failed"
case "$answer" in
  *"<Error>"*) fail 70 "download the file: completing the upload failed: $answer" ;;
esac
echo "[INFO] Multipart file upload successfully completed"
"#;
