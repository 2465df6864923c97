//! The fuzz targets' bodies: one function per [`Target`], called by the cargo-fuzz targets in
//! `fuzz/` (libFuzzer) and by this crate's tests, which replay every input kept under
//! `fuzz/regressions/<target>/` and the seeds made from the captured fixtures, so a crash once
//! found stays fixed under a plain `cargo test`.
//!
//! The parser targets read an input as a remote command's [`Output`] ([`output`]): the exit
//! status, the standard output and the standard error. Each gives it to every example of
//! every command type it covers (`RemoteCommand::examples`, the same lines Ironcrest sends),
//! so a parser is fuzzed on every shape of its command line. A parser may refuse any output;
//! it must never panic. The validators' target checks more: what a validator accepts must
//! build command lines the cluster-side guard's allowlist accepts (no injected word).

use std::path::PathBuf;
use std::sync::OnceLock;

use ironcrest_config::ClusterConfig;
use ironcrest_remote::{Allowlist, CommandLine, Output, RemoteCommand};
use ironcrest_scheduler::{JobDescription, JobEnv, JobId, pbs, slurm};
use ironcrest_services::filesystem::commands::{self as fs, AccountName, FileMode, LsOptions};
use ironcrest_services::filesystem::path::{check_new_name, validate};
use ironcrest_services::status::Id;

/// Between the standard output and the standard error in an input.
pub const SEPARATOR: &[u8] = b"\n\0--stderr--\0\n";

/// One fuzz target: its name is its binary's in `fuzz/` and its folder under
/// `fuzz/regressions/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `ls -l` listings and `ls -d` of a changed entry (mkdir, symlink, chmod, chown).
    Ls,
    /// `stat` of one path and the batched `stat --printf`.
    Stat,
    /// The job rows of `sacct` and `squeue`, and their comments.
    SacctSqueue,
    /// `scontrol`: partitions, reservations, ping, a job's streams and batch script.
    Scontrol,
    /// Every other Slurm command (sinfo, sacctmgr, sbatch, scancel, srun), and `id`.
    SlurmOther,
    /// Every other tool on files: head, tail, dd, sha256sum, file, rm, cat, the upload and
    /// archive scripts, date.
    FilesystemOther,
    /// PBS: qstat (jobs, queues, server), pbsnodes, pbs_rstat, qsub, qdel.
    Pbs,
    /// Path validation, new names, file modes, account names, job ids and job descriptions.
    Validators,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::Ls,
        Target::Stat,
        Target::SacctSqueue,
        Target::Scontrol,
        Target::SlurmOther,
        Target::FilesystemOther,
        Target::Pbs,
        Target::Validators,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Ls => "ls",
            Target::Stat => "stat",
            Target::SacctSqueue => "sacct_squeue",
            Target::Scontrol => "scontrol",
            Target::SlurmOther => "slurm_other",
            Target::FilesystemOther => "filesystem_other",
            Target::Pbs => "pbs",
            Target::Validators => "validators",
        }
    }

    /// Runs the target on one input; panics on what it finds.
    pub fn run(self, data: &[u8]) {
        let output = output(data);
        let parsers: &[fn(&Output)] = match self {
            Target::Ls => &[parse::<fs::Ls>, parse::<fs::ChangedEntry>, parse_ls],
            Target::Stat => &[parse::<fs::Stat>, parse::<fs::StatBatch>],
            Target::SacctSqueue => &[
                parse::<slurm::Sacct>,
                parse::<slurm::Squeue>,
                parse::<slurm::JobComments>,
            ],
            Target::Scontrol => &[
                parse::<slurm::Partitions>,
                parse::<slurm::Reservations>,
                parse::<slurm::Ping>,
                parse::<slurm::JobStreams>,
                parse::<slurm::BatchScript>,
            ],
            Target::SlurmOther => &[
                parse::<slurm::Nodes>,
                parse::<slurm::UserAccounts>,
                parse::<slurm::Sbatch>,
                parse::<slurm::Scancel>,
                parse::<slurm::Attach>,
                parse::<Id>,
            ],
            Target::FilesystemOther => &[
                parse::<fs::Head>,
                parse::<fs::Tail>,
                parse::<fs::View>,
                parse::<fs::Sha256Sum>,
                parse::<fs::FileType>,
                parse::<fs::Rm>,
                parse::<fs::Cat>,
                parse::<fs::Upload>,
                parse::<fs::Compress>,
                parse::<fs::Extract>,
                parse::<fs::UtcOffsets>,
            ],
            Target::Pbs => &[
                parse::<pbs::Jobs>,
                parse::<pbs::Nodes>,
                parse::<pbs::Queues>,
                parse::<pbs::Server>,
                parse::<pbs::Reservations>,
                parse::<pbs::Qsub>,
                parse::<pbs::Qdel>,
            ],
            Target::Validators => return validators(data),
        };
        for parser in parsers {
            parser(&output);
        }
    }

    /// The kept inputs that once made this target fail, replayed by the tests.
    pub fn regressions_dir(self) -> PathBuf {
        repo().join("fuzz/regressions").join(self.name())
    }

    /// The target's seed inputs: the captured outputs of its commands (`tests/fixtures` of
    /// the services and scheduler crates), or for the validators values of every kind.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        let (dir, prefixes): (&str, &[&str]) = match self {
            Target::Ls => (FILESYSTEM, &["ls", "mkdir.", "symlink", "chmod", "chown"]),
            Target::Stat => (FILESYSTEM, &["stat"]),
            Target::FilesystemOther => (
                FILESYSTEM,
                &["head", "tail", "view", "checksum", "file", "rm", "mkdir-"],
            ),
            Target::SacctSqueue => (SLURM, &["sacct_", "squeue_"]),
            Target::Scontrol => (SLURM, &["scontrol_"]),
            Target::SlurmOther => (
                SLURM,
                &["sinfo_", "sacctmgr_", "sbatch_", "scancel_", "srun_", "id"],
            ),
            Target::Pbs => return pbs_seeds(),
            Target::Validators => {
                return VALIDATOR_SEEDS
                    .iter()
                    .map(|seed| seed.as_bytes().to_vec())
                    .collect();
            }
        };
        let mut seeds = Vec::new();
        for (name, path) in fixtures(dir) {
            if prefixes.iter().any(|prefix| name.starts_with(prefix)) {
                let fixture: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("a fixture"))
                        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                let text = |field: &str| fixture[field].as_str().unwrap_or("").as_bytes().to_vec();
                seeds.push(input(&Output {
                    stdout: text("stdout"),
                    stderr: text("stderr"),
                    exit_status: fixture["exit_status"].as_u64().unwrap_or(0) as u32,
                }));
            }
        }
        assert!(!seeds.is_empty(), "no fixtures for {}", self.name());
        seeds
    }
}

const FILESYSTEM: &str = "crates/services/tests/fixtures/filesystem";
const SLURM: &str = "crates/scheduler/tests/fixtures/slurm-22.05";
const PBS: &str = "crates/scheduler/tests/fixtures/pbs";

/// Paths, names, modes, accounts and job ids, good and bad.
const VALIDATOR_SEEDS: &[&str] = &[
    "/home/fireuser/file.txt",
    "/home/fireuser/../firesrv/./x//y/",
    "/scratch/project/run-1/out",
    "/scratch/projects",
    "/home/a b/\"$(touch x)\"/-rf",
    "relative/path",
    "755",
    "u+x,go-w",
    "a=rwX,o-t",
    "fireuser",
    "-rf",
    "...",
    "42",
    "0123",
    "4294967294",
    "job \"name\"",
    "line\nbreak",
];

/// The recorded PBS outputs: JSON and `pbs_rstat` on standard output; the others are a
/// refusal on standard error with the exit status the fixtures' README gives.
fn pbs_seeds() -> Vec<Vec<u8>> {
    fixtures(PBS)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".json") || name.ends_with(".txt"))
        .map(|(name, path)| {
            let text = std::fs::read(&path).expect("a fixture");
            let refused = match name.as_str() {
                "qsub_rejected.txt" => Some(169),
                "qsub_limit.txt" => Some(38),
                "qstat_unknown.txt" => Some(153),
                "qdel_finished.txt" => Some(35),
                _ => None,
            };
            input(&match refused {
                Some(exit_status) => Output {
                    stderr: text,
                    exit_status,
                    ..Output::default()
                },
                None => Output {
                    stdout: text,
                    ..Output::default()
                },
            })
        })
        .collect()
}

/// The files of a fixture folder (of the repository), by name, sorted.
fn fixtures(dir: &str) -> Vec<(String, PathBuf)> {
    let dir = repo().join(dir);
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, path)
        })
        .collect();
    files.sort();
    files
}

/// The input's exit status (its first byte), standard output (up to [`SEPARATOR`]) and
/// standard error (after it); an empty input is an empty success.
pub fn output(data: &[u8]) -> Output {
    let Some((&status, rest)) = data.split_first() else {
        return Output::default();
    };
    let (stdout, stderr) = match find(rest, SEPARATOR) {
        Some(at) => (&rest[..at], &rest[at + SEPARATOR.len()..]),
        None => (rest, &[][..]),
    };
    Output {
        stdout: stdout.to_vec(),
        stderr: stderr.to_vec(),
        exit_status: u32::from(status),
    }
}

/// The input [`output`] reads back as `output` (an exit status over 255 is kept modulo 256,
/// as a shell reports it).
pub fn input(output: &Output) -> Vec<u8> {
    let mut data = vec![(output.exit_status % 256) as u8];
    data.extend_from_slice(&output.stdout);
    if !output.stderr.is_empty() {
        data.extend_from_slice(SEPARATOR);
        data.extend_from_slice(&output.stderr);
    }
    data
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Parses `output` with every example of `C`; the result does not matter, only that
/// parsing returns.
fn parse<C: RemoteCommand>(output: &Output) {
    for command in C::examples() {
        let _ = command.parse(output.clone());
    }
}

/// The listing parser itself, flat and recursive.
fn parse_ls(output: &Output) {
    let _ = fs::parse_ls(&output.stdout, false);
    let _ = fs::parse_ls(&output.stdout, true);
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guard's allowlist, parsed once.
fn allowlist() -> &'static Allowlist {
    static ALLOWLIST: OnceLock<Allowlist> = OnceLock::new();
    ALLOWLIST.get_or_init(Allowlist::current)
}

/// Panics unless the guard would run `line`.
fn assert_allowed(what: &str, line: &CommandLine) {
    if let Err(refusal) = allowlist().check(line.as_bytes()) {
        panic!(
            "{what}: the guard refuses {:?}: {refusal}",
            String::from_utf8_lossy(line.as_bytes())
        );
    }
}

/// A cluster with two file systems, one nested in a deeper path.
fn cluster() -> &'static ClusterConfig {
    static CLUSTER: OnceLock<ClusterConfig> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        serde_yaml_ng::from_str(
            "name: fuzz
ssh: {host: 127.0.0.1, port: 22}
scheduler: {type: slurm, version: '22.05.8'}
service_account: {client_id: c, secret: s}
probing: {interval: 60}
file_systems:
  - {path: /home, data_type: users}
  - {path: /scratch/project, data_type: scratch}
",
        )
        .expect("the fuzz cluster's configuration")
    })
}

/// The validators, and what they promise for what they accept.
fn validators(data: &[u8]) {
    const TIMEOUT: u64 = 5;
    if let Ok(path) = validate(cluster(), data) {
        let bytes = path.as_bytes();
        assert_normalised(bytes);
        let fs = path.file_system().as_bytes();
        assert!(
            bytes.starts_with(fs) && matches!(bytes.get(fs.len()), None | Some(b'/')),
            "{bytes:?} is not under {fs:?}"
        );
        let ls = fs::Ls::new(TIMEOUT, bytes, LsOptions::default()).expect("a valid path quotes");
        assert_allowed("ls", &ls.command_line());
        let stat = fs::Stat::new(TIMEOUT, bytes, true).expect("a valid path quotes");
        assert_allowed("stat", &stat.command_line());
        if let Ok(joined) = path.join(data) {
            assert_normalised(joined.as_bytes());
        }
    }
    let _ = check_new_name("path", data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = b"/home/fireuser/file";
    if let Ok(mode) = FileMode::parse(text) {
        assert_eq!(mode.as_str(), text);
        let line = fs::chmod(TIMEOUT, path, &mode).expect("a valid mode quotes");
        assert_allowed("chmod", &line.command_line());
    }
    if let Ok(owner) = AccountName::parse("owner", text) {
        let group = AccountName::parse("group", "").expect("empty is a name");
        for (owner, group) in [(&owner, &group), (&group, &owner), (&owner, &owner)] {
            let line = fs::chown(TIMEOUT, path, owner, group).expect("valid names quote");
            assert_allowed("chown", &line.command_line());
        }
    }
    if let Ok(job_id) = JobId::parse(text) {
        let id = job_id.as_str();
        assert!(id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0'));
        assert_allowed("sacct", &slurm::Sacct::job(id).unwrap().command_line());
        assert_allowed("squeue", &slurm::Squeue::job(id).unwrap().command_line());
        assert_allowed("scancel", &slurm::Scancel::new(id).unwrap().command_line());
        let streams = slurm::JobStreams::new(&job_id).unwrap();
        assert_allowed("scontrol", &streams.command_line());
        assert_allowed("scontrol", &slurm::BatchScript::new(&job_id).command_line());
    }
    // The text in every free-form field of a job, and as an environment variable.
    let job = JobDescription {
        working_directory: "/home/fireuser".into(),
        script: Some("#!/bin/bash\ntrue\n".into()),
        name: Some(text.into()),
        account: Some(text.into()),
        partition: Some(text.into()),
        reservation: Some(text.into()),
        standard_output: Some(text.into()),
        constraints: Some(text.into()),
        env: Some(JobEnv::Map([(text.to_string(), text.to_string())].into())),
        ..JobDescription::default()
    };
    if job.check().is_ok()
        && job.environment().is_ok()
        && let Ok(sbatch) = slurm::Sbatch::new(&job, None)
    {
        assert_allowed("sbatch", &sbatch.command_line());
    }
}

/// Absolute, no empty, `.` or `..` component, no trailing `/` but for the root, no NUL, no
/// component longer than 255 bytes.
fn assert_normalised(path: &[u8]) {
    assert!(path.starts_with(b"/"), "{path:?} is not absolute");
    assert!(!path.contains(&0), "{path:?} holds a NUL");
    if path == b"/" {
        return;
    }
    for name in path[1..].split(|b| *b == b'/') {
        assert!(
            !name.is_empty() && name != b"." && name != b".." && name.len() <= 255,
            "{path:?} is not normalised"
        );
    }
}

#[cfg(test)]
mod tests;
