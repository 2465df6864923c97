//! The job scripts run by a real bash in a scratch directory: what the scheduler would run,
//! minus the scheduler.

use std::path::Path;
use std::process::Command;

use super::*;

const HOSTILE: &str = "it's $(touch pwned) `x` \"q\" -n\nline *";

struct Ran {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run(script: &TransferScript<'_>, dir: &Path) -> Ran {
    run_with(script, dir, None)
}

/// Runs `script` in `dir`, with the stand-in `curl` of `fake_s3` first on its PATH if given.
fn run_with(script: &TransferScript<'_>, dir: &Path, fake_s3: Option<&Path>) -> Ran {
    let text = script
        .render(&["#SBATCH --partition=xfer".to_string()], None)
        .expect("renders");
    let mut command = Command::new("bash");
    command.arg("-c").arg(&text).current_dir(dir);
    if let Some(fake) = fake_s3 {
        let path = std::env::var("PATH").expect("PATH");
        command
            .env("FAKE_S3", fake)
            .env("PATH", format!("{}:{path}", fake.display()))
            // A login shell that is not sh: nothing in the scripts may depend on $SHELL.
            .env("SHELL", "/bin/false");
    }
    let output = command.output().expect("bash runs");
    Ran {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `<dir>/fake-s3`, holding `curl_script` as `curl` (and what it serves and records).
fn fake_s3(dir: &Path, curl_script: &str) -> std::path::PathBuf {
    let fake = dir.join("fake-s3");
    std::fs::create_dir(&fake).expect("fake dir");
    let curl = fake.join("curl");
    std::fs::write(&curl, curl_script).expect("fake curl");
    std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    fake
}

fn bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

#[test]
fn move_copy_and_delete_handle_hostile_names_and_report_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join(HOSTILE);
    std::fs::write(&source, b"payload").expect("write");
    let moved = dir.path().join(format!("{HOSTILE} moved"));

    let ran = run(
        &TransferScript::Move {
            source: &bytes(&source),
            target: &bytes(&moved),
        },
        dir.path(),
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("Move Files Job (id:unknown)"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("Files were successfully moved."));
    assert!(!source.exists() && moved.exists());

    let copied = dir.path().join("copy");
    let ran = run(
        &TransferScript::Copy {
            source: &bytes(&moved),
            target: &bytes(&copied),
            dereference: false,
        },
        dir.path(),
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("Files were successfully copied."));
    assert_eq!(std::fs::read(&copied).expect("copied"), b"payload");

    let ran = run(
        &TransferScript::Delete {
            path: &bytes(&moved),
        },
        dir.path(),
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("Files were successfully deleted."));
    assert!(!moved.exists());
    assert!(!dir.path().join("pwned").exists(), "a name was run as code");
}

#[test]
fn a_failed_copy_exits_non_zero_with_the_reason_and_no_success_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = run(
        &TransferScript::Copy {
            source: &bytes(&dir.path().join("missing")),
            target: &bytes(&dir.path().join("target")),
            dereference: true,
        },
        dir.path(),
    );
    assert_ne!(ran.status, 0);
    assert!(!ran.stdout.contains("successfully"), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("No such file or directory"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("Unable to copy files, exit code:1"),
        "{}",
        ran.stderr
    );
}

#[test]
fn compress_then_extract_round_trips_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join(HOSTILE);
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::write(tree.join("a.txt"), b"alpha").expect("write");
    let archive = dir.path().join("out.tar.xz");
    let ran = run(
        &TransferScript::Compress {
            parent: &bytes(dir.path()),
            base: HOSTILE.as_bytes(),
            target: &bytes(&archive),
            pattern: None,
            compression: Compression::Xz,
            dereference: false,
        },
        dir.path(),
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("Files were successfully compressed."));

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let ran = run(
        &TransferScript::Extract {
            source: &bytes(&archive),
            target: &bytes(&unpacked),
            compression: Compression::Xz,
        },
        dir.path(),
    );
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("Files were successfully extracted."));
    assert_eq!(
        std::fs::read(unpacked.join(HOSTILE).join("a.txt")).expect("extracted"),
        b"alpha"
    );
}

#[test]
fn staged_scripts_carry_urls_as_single_words() {
    let urls = vec!["http://s3/b/k?partNumber=1&uploadId=a'b".to_string()];
    let text = TransferScript::StageOut {
        source: b"/home/u/it's",
        size: 3,
        part_size: 5,
        parallel: 2,
        scratch: b"/home/u/tmp",
        part_urls: &urls,
        complete_url: "http://s3/b/k?uploadId=a'b",
    }
    .render(&[], None)
    .expect("renders");
    // bash itself reads the assignments back: the values must survive unchanged.
    let probe = format!(
        "{}\nprintf '%s\\n' \"$source\" \"${{part_urls[0]}}\"; exit 0",
        text.split("fail() {").next().unwrap()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(probe)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with("/home/u/it's\nhttp://s3/b/k?partNumber=1&uploadId=a'b\n"),
        "{stdout}"
    );
}

#[test]
fn directives_take_the_account_or_refuse_the_request() {
    let templates = vec![
        "#SBATCH --partition=xfer".to_string(),
        "#SBATCH --account={account}".to_string(),
    ];
    assert_eq!(
        directives(&templates, Some("proj-1.a_b")).expect("valid"),
        ["#SBATCH --partition=xfer", "#SBATCH --account=proj-1.a_b"]
    );
    let missing = directives(&templates, None).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "Account parameter is required on this system."
    );
    for hostile in ["a\nrm -rf ~", "a b", "$(x)", ""] {
        assert!(
            directives(&templates, Some(hostile)).is_err(),
            "{hostile:?}"
        );
    }
    // Without the placeholder the account is not needed, nor read.
    assert_eq!(
        directives(&templates[..1], Some("a\nb")).expect("unused"),
        ["#SBATCH --partition=xfer"]
    );
}

#[test]
fn the_work_directory_is_the_users_directory_on_the_default_file_system() {
    let yaml = r#"
name: c
ssh: {host: h, port: 22}
scheduler: {type: slurm, version: "22.05"}
service_account: {client_id: a, secret: b}
probing: {}
file_systems:
  - {path: /scratch, data_type: scratch}
  - {path: /home/, data_type: users, default_work_dir: true}
"#;
    let mut config: ClusterConfig = serde_yaml_ng::from_str(yaml).expect("cluster");
    assert_eq!(work_dir(&config, "fireuser").unwrap(), "/home/fireuser");
    config.file_systems[1].default_work_dir = false;
    assert!(matches!(
        work_dir(&config, "fireuser"),
        Err(ServiceError::Misconfigured(_))
    ));
}

#[test]
fn a_path_that_is_not_utf8_is_refused_not_mangled() {
    let refused = TransferScript::Delete {
        path: b"/home/u/caf\xe9",
    }
    .render(&[], None)
    .unwrap_err();
    assert!(
        matches!(refused, ServiceError::InvalidRequest(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("UTF-8"));
}

/// A stand-in for `curl` on the job's PATH, so the stage-in checks run against bodies and
/// ETags a real S3 would not produce on demand: `--head` prints `$FAKE_S3/headers`, a DELETE
/// leaves `$FAKE_S3/deleted`, anything else prints `$FAKE_S3/body`.
const FAKE_CURL: &str = r#"#!/bin/bash
for arg; do
  case $arg in
    --head) cat "$FAKE_S3/headers"; exit 0 ;;
    DELETE) touch "$FAKE_S3/deleted"; exit 0 ;;
  esac
done
cat "$FAKE_S3/body"
exit "$(cat "$FAKE_S3/status")"
"#;

fn hex_md5(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// S3's ETag of a multipart object: the MD5 of its parts' binary MD5s, then `-<parts>`.
fn multipart_etag(body: &[u8], part_size: usize) -> String {
    use md5::Digest;
    let mut digests = Vec::new();
    for part in body.chunks(part_size) {
        digests.extend_from_slice(&md5::Md5::digest(part));
    }
    format!("{}-{}", hex_md5(&digests), body.chunks(part_size).count())
}

/// Runs a stage-in of `body` announced with `etag`; returns the run and the target's bytes.
fn stage_in(body: &[u8], etag: &str) -> (Ran, Option<Vec<u8>>) {
    stage_in_served(body, etag, body, 0, Some(body.len() as u64))
}

/// A stage-in of an object of `body`'s size and `etag` whose GET serves `served`, then
/// exits with `status` (as curl does when a download is cut short); `announced` is the
/// size the client gave, if any.
fn stage_in_served(
    body: &[u8],
    etag: &str,
    served: &[u8],
    status: i32,
    announced: Option<u64>,
) -> (Ran, Option<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = fake_s3(dir.path(), FAKE_CURL);
    std::fs::write(fake.join("body"), served).expect("body");
    std::fs::write(fake.join("status"), status.to_string()).expect("status");
    std::fs::write(
        fake.join("headers"),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{etag}\"\r\n\r\n",
            body.len()
        ),
    )
    .expect("headers");
    let target = dir.path().join(HOSTILE);
    let partial = dir.path().join(".f7t-upload-test.part");
    let ran = run_with(
        &TransferScript::StageIn {
            target: &bytes(&target),
            partial: &bytes(&partial),
            size: announced,
            part_size: 5,
            parallel: 2,
            wait_limit: 10,
            head_url: "http://s3/head",
            get_url: "http://s3/get",
            delete_url: "http://s3/delete",
        },
        dir.path(),
        Some(&fake),
    );
    assert!(!partial.exists(), "the temporary file is always removed");
    (ran, std::fs::read(&target).ok())
}

#[test]
fn stage_in_checks_the_content_against_a_multipart_or_whole_md5_etag() {
    let body = b"twelve bytes and a tail";
    for etag in [multipart_etag(body, 5), hex_md5(body)] {
        let (ran, target) = stage_in(body, &etag);
        assert_eq!(ran.status, 0, "{etag}: {}", ran.stderr);
        assert!(
            ran.stdout
                .contains("File was successfully downloaded (size: 0.000MB)"),
            "{}",
            ran.stdout
        );
        assert_eq!(target.as_deref(), Some(&body[..]));
    }
}

#[test]
fn an_upload_announced_without_a_size_takes_the_objects_and_is_still_checked() {
    let body = b"twelve bytes and a tail";
    let (ran, target) = stage_in_served(body, &hex_md5(body), body, 0, None);
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(target.as_deref(), Some(&body[..]));
    let (ran, target) = stage_in_served(body, &hex_md5(b"another body of bytes"), body, 0, None);
    assert_eq!(ran.status, 9, "{}", ran.stdout);
    assert_eq!(target, None);
}

#[test]
fn stage_in_refuses_content_that_differs_from_the_etag_and_leaves_no_target() {
    let body = b"twelve bytes and a tail";
    let other = b"twelve bytes and a TAIL";
    for etag in [multipart_etag(other, 5), hex_md5(other)] {
        let (ran, target) = stage_in(body, &etag);
        assert_eq!(ran.status, 9, "{etag}: {}", ran.stdout);
        assert!(
            ran.stderr
                .contains("Unable to upload the file: its checksum"),
            "{}",
            ran.stderr
        );
        assert_eq!(target, None);
    }
    // Same bytes cut at other part boundaries than the ones handed out.
    let (ran, target) = stage_in(body, &multipart_etag(body, 6));
    assert_eq!(ran.status, 9, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("uploaded in 4 parts, not the 5 parts of 5 bytes"),
        "{}",
        ran.stderr
    );
    assert_eq!(target, None);
}

#[test]
fn stage_in_of_a_download_cut_short_fails_and_leaves_no_target() {
    let body = b"twenty-three bytes long";
    for etag in [multipart_etag(body, 5), hex_md5(body)] {
        let (ran, target) = stage_in_served(body, &etag, &body[..12], 18, Some(body.len() as u64));
        assert_eq!(ran.status, 6, "{etag}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(
                "Unable to upload the file: the staged object could not be downloaded, exit code:18"
            ),
            "{}",
            ran.stderr
        );
        assert_eq!(target, None);
    }
}

#[test]
fn stage_in_of_an_object_without_an_md5_etag_relies_on_the_size() {
    let body = b"encrypted objects have opaque etags";
    let (ran, target) = stage_in(body, "kms-opaque-etag");
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert_eq!(target.as_deref(), Some(&body[..]));
}

/// A stand-in for `curl` that takes a staged download's requests, several per call as curl
/// does with `--next`: a part URL (`http://s3/part/N`) stores its body as `$FAKE_S3/part.N`
/// and answers with ETag `etag-N`, unless a `$FAKE_S3/fail.N.*` file is left (one is used up
/// per failure); `$FAKE_S3/abort.N` makes it exit there once, leaving part N and the rest
/// unread; the completion stores the posted XML as `$FAKE_S3/complete.xml`.
const FAKE_CURL_PARTS: &str = r#"#!/bin/bash
status=0
perform() {
  case $url in
    http://s3/part/*)
      number=${url##*/}
      if [ -e "$FAKE_S3/abort.$number" ]; then rm -f "$FAKE_S3/abort.$number"; exit 2; fi
      failure=$(ls "$FAKE_S3"/fail."$number".* 2>/dev/null | head -n 1)
      if [ -n "$failure" ]; then rm -f "$failure"; cat -- "$body" > /dev/null; status=22; return; fi
      cat -- "$body" > "$FAKE_S3/part.$number"
      printf 'HTTP/1.1 200 OK\r\nETag: "etag-%s"\r\n\r\n' "$number" > "$headers" ;;
    http://s3/complete)
      cp "$posted" "$FAKE_S3/complete.xml"
      echo '<CompleteMultipartUploadResult/>' ;;
  esac
}
while [ $# -gt 0 ]; do
  case $1 in
    --dump-header) headers=$2; shift ;;
    --upload-file) body=$2; shift ;;
    --data-binary) posted=${2#@}; shift ;;
    --url) url=$2; shift ;;
    --next) perform ;;
    http://*) url=$1 ;;
  esac
  shift
done
perform
exit "$status"
"#;

/// Runs a staged download of `content` in parts of 5 bytes, with part N failing as many
/// times as `failures[N - 1]` says.
fn stage_out(content: &[u8], failures: &[usize]) -> (Ran, tempfile::TempDir) {
    stage_out_aborting(content, failures, None)
}

/// A stage-out whose curl stops for good when it reaches part `abort`, the first time.
fn stage_out_aborting(
    content: &[u8],
    failures: &[usize],
    abort: Option<usize>,
) -> (Ran, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = fake_s3(dir.path(), FAKE_CURL_PARTS);
    if let Some(number) = abort {
        std::fs::write(fake.join(format!("abort.{number}")), b"").expect("abort");
    }
    for (index, &count) in failures.iter().enumerate() {
        for attempt in 0..count {
            std::fs::write(fake.join(format!("fail.{}.{attempt}", index + 1)), b"").expect("x");
        }
    }
    let source = dir.path().join(HOSTILE);
    std::fs::write(&source, content).expect("source");
    let urls: Vec<String> = (1..=content.len().div_ceil(5))
        .map(|n| format!("http://s3/part/{n}"))
        .collect();
    let ran = run_with(
        &TransferScript::StageOut {
            source: &bytes(&source),
            size: content.len() as u64,
            part_size: 5,
            parallel: 2,
            scratch: &bytes(&dir.path().join("tmp")),
            part_urls: &urls,
            complete_url: "http://s3/complete",
        },
        dir.path(),
        Some(&fake),
    );
    (ran, dir)
}

/// Asserts a stage-out of `content` in 5-byte parts completed with every part, in order,
/// and left nothing in the scratch directory.
fn assert_staged_out(ran: &Ran, dir: &Path, content: &[u8]) {
    assert_eq!(ran.status, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains("[INFO] Multipart file upload successfully completed")
    );
    let fake = dir.join("fake-s3");
    let parts = content.len().div_ceil(5);
    let mut uploaded = Vec::new();
    for number in 1..=parts {
        uploaded.extend(std::fs::read(fake.join(format!("part.{number}"))).expect("part"));
    }
    assert_eq!(uploaded, content);
    let complete = std::fs::read_to_string(fake.join("complete.xml")).expect("completed");
    let expected: String = (1..=parts)
        .map(|n| format!("<Part><PartNumber>{n}</PartNumber><ETag>\"etag-{n}\"</ETag></Part>"))
        .collect();
    assert!(complete.contains(&expected), "{complete}");
    let left: Vec<_> = std::fs::read_dir(dir.join("tmp")).expect("tmp").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn stage_out_uploads_every_part_retrying_a_failed_one_and_completes_in_order() {
    let content = b"0123456789abcdefghijk";
    let (ran, dir) = stage_out(content, &[0, 1, 0, 0, 0]);
    assert_staged_out(&ran, dir.path(), content);
}

#[test]
fn stage_out_of_more_parts_than_one_curl_takes_uploads_them_all() {
    // 80 parts on two connections: 40 each, in curls of at most 32.
    let content: Vec<u8> = (0..400u32).map(|i| (i % 251) as u8).collect();
    let (ran, dir) = stage_out(&content, &[]);
    assert_staged_out(&ran, dir.path(), &content);
}

#[test]
fn stage_out_retries_the_parts_a_curl_that_stopped_early_never_read() {
    // Two connections: parts 1, 3, 5 and parts 2, 4; the first stops at part 3.
    let content = b"0123456789abcdefghijk";
    let (ran, dir) = stage_out_aborting(content, &[], Some(3));
    assert_staged_out(&ran, dir.path(), content);
}

#[test]
fn stage_out_fails_with_v2s_code_when_a_part_fails_twice() {
    let (ran, dir) = stage_out(b"0123456789abc", &[0, 2, 0]);
    assert_eq!(ran.status, 70, "{}", ran.stdout);
    assert!(
        ran.stderr
            .contains("Unable to download the file: part 2 of 3 could not be uploaded"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stdout.contains("successfully"));
    assert!(!dir.path().join("fake-s3/complete.xml").exists());
}

/// Every control character (and a few other hostile names) through every transfer
/// operation: the script holds no raw control byte, and the name arrives byte-exact.
#[test]
fn every_control_character_survives_every_transfer_operation() {
    let mut names: Vec<Vec<u8>> = (1u8..32)
        .chain([127])
        .map(|c| [b"n".as_slice(), &[c], b"x"].concat())
        .collect();
    names.extend([
        b"\r\n".to_vec(),
        b"-rf".to_vec(),
        b"it's \"q\" \\ $(touch pwned)".to_vec(),
        "🚀 ünï".as_bytes().to_vec(),
    ]);
    for name in &names {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |suffix: &[u8]| {
            let mut p = bytes(dir.path());
            p.push(b'/');
            p.extend_from_slice(name);
            p.extend_from_slice(suffix);
            p
        };
        let os = |p: &[u8]| {
            std::path::PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(p),
            )
        };
        std::fs::write(os(&path(b"")), b"payload").expect("write");
        std::fs::create_dir(os(&path(b".d"))).expect("mkdir");
        let (source, copied, moved, archive, extracted) = (
            path(b""),
            path(b".copy"),
            path(b".moved"),
            path(b".tar.gz"),
            path(b".d"),
        );
        let scripts = [
            TransferScript::Copy {
                source: &source,
                target: &copied,
                dereference: false,
            },
            TransferScript::Compress {
                parent: &bytes(dir.path()),
                base: name,
                target: &archive,
                pattern: None,
                compression: Compression::Gzip,
                dereference: false,
            },
            TransferScript::Extract {
                source: &archive,
                target: &extracted,
                compression: Compression::Gzip,
            },
            TransferScript::Move {
                source: &copied,
                target: &moved,
            },
            TransferScript::Delete { path: &moved },
        ];
        for script in &scripts {
            let text = script.render(&[], None).expect("renders");
            let control = text.bytes().any(|b| b.is_ascii_control() && b != b'\n');
            assert!(!control, "raw control byte in the script for {name:?}");
            let ran = run(script, dir.path());
            assert_eq!(ran.status, 0, "{name:?}: {}", ran.stderr);
        }
        let mut inside = path(b".d/");
        inside.extend_from_slice(name);
        assert_eq!(std::fs::read(os(&inside)).expect("extracted"), b"payload");
        assert!(!os(&moved).exists() && !os(&copied).exists());
        assert!(!dir.path().join("pwned").exists());
    }
}

/// A new transfer job removes the user's transfer logs older than the configured age, and
/// nothing else.
#[test]
fn a_new_job_removes_expired_logs_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs dir");
    let touch = |name: &str, age: &str| {
        let path = logs.join(name);
        std::fs::write(&path, b"log").expect("write");
        let status = Command::new("touch")
            .arg("-d")
            .arg(age)
            .arg(&path)
            .status()
            .expect("touch");
        assert!(status.success());
        path
    };
    let old = touch(".f7t_file_handling_job_old.log", "10 days ago");
    let old_error = touch(".f7t_file_handling_job_error_old.log", "10 days ago");
    let recent = touch(".f7t_file_handling_job_new.log", "1 day ago");
    let foreign = touch("notes.log", "30 days ago");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"x").expect("victim");
    let script = TransferScript::Delete {
        path: &bytes(&victim),
    };
    let expired = ExpiredLogs {
        directory: &bytes(&logs),
        days: 7,
    };
    let text = script.render(&[], Some(&expired)).expect("renders");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&text)
        .current_dir(dir.path())
        .output()
        .expect("bash");
    assert!(output.status.success(), "{output:?}");
    assert!(!old.exists() && !old_error.exists(), "expired logs removed");
    assert!(recent.exists() && foreign.exists(), "others kept");
    assert!(!victim.exists(), "the job's own work ran");
}

fn job(name: &str, state: &str) -> Job {
    Job {
        name: name.into(),
        status: ironcrest_scheduler::JobStatus {
            state: state.into(),
            ..Default::default()
        },
        ..Job::default()
    }
}

#[test]
fn caps_count_only_unfinished_transfer_jobs() {
    let jobs = [
        job("MoveFiles", "RUNNING"),
        job("IngressFileTransfer", "PENDING"),
        job("IngressFileTransfer", "COMPLETED"),
        job("my-simulation", "RUNNING"),
    ];
    let caps = |transfer_jobs, staged_uploads| WorkLimits {
        transfer_jobs,
        staged_uploads,
    };
    // Two unfinished transfer jobs (the simulation and the finished upload do not count).
    assert!(work_refusal(&caps(Some(3), None), &jobs, "CopyFiles").is_none());
    let refused = work_refusal(&caps(Some(2), None), &jobs, "CopyFiles").unwrap();
    assert!(refused.contains("2 unfinished transfer jobs"), "{refused}");
    // One staged upload waiting: the cap on those applies to staged uploads only.
    let staged = caps(None, Some(1));
    assert!(work_refusal(&staged, &jobs, "IngressFileTransfer").is_some());
    assert!(work_refusal(&staged, &jobs, "MoveFiles").is_none());
    assert!(work_refusal(&caps(None, Some(2)), &jobs, "IngressFileTransfer").is_none());
    assert!(work_refusal(&WorkLimits::default(), &jobs, "MoveFiles").is_none());
}
