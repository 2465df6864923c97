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
    let text = script
        .render(&["#SBATCH --partition=xfer".to_string()])
        .expect("renders");
    let output = Command::new("bash")
        .arg("-c")
        .arg(&text)
        .current_dir(dir)
        .output()
        .expect("bash runs");
    Ran {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
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
    .render(&[])
    .expect("renders");
    // bash itself reads the assignments back: the values must survive unchanged.
    let probe = format!(
        "{}\nprintf '%s\\n' \"$source\" \"${{part_urls[0]}}\"; exit 0",
        text.split("header() {").next().unwrap()
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
    .render(&[])
    .unwrap_err();
    assert!(
        matches!(refused, ServiceError::InvalidRequest(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("UTF-8"));
}
