//! The cluster-side guard's allowlist (`crates/remote/allowlist.txt`) is generated from
//! every `RemoteCommand` type's examples: it must be current, and no type may be missing
//! from `ironcrest_services::remote_commands`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ironcrest_remote::{Allowlist, CommandExamples, LineIds, RequestIds};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const REGENERATE: &str =
    "IRONCREST_WRITE_ALLOWLIST=1 cargo test -p ironcrest-services --test allowlist";

#[test]
fn the_allowlist_is_current() {
    let commands = ironcrest_services::remote_commands();
    let text = Allowlist::text(commands.iter().flat_map(CommandExamples::shapes));
    let path = workspace().join("crates/remote/allowlist.txt");
    if std::env::var_os("IRONCREST_WRITE_ALLOWLIST").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert!(
        text == Allowlist::current_text(),
        "the command shapes changed since {} was written: run `{REGENERATE}`, then rebuild \
         and reinstall ironcrest-guard on the clusters (`scripts/dev-env up` here)",
        path.display()
    );
}

/// The guard reads the allowlist back and accepts every example line as Ironcrest sends
/// it, with and without a request's ids; what Ironcrest does not send, it refuses.
#[test]
fn the_guard_accepts_every_command_as_sent() {
    let allowlist = Allowlist::current();
    let ids = RequestIds {
        request_id: "0123abc".into(),
        correlation_id: Some("it's $(id)".into()),
    };
    for command in ironcrest_services::remote_commands() {
        assert!(
            !command.lines.is_empty(),
            "{} has no examples",
            command.name
        );
        for line in &command.lines {
            assert_eq!(
                allowlist.check(line.as_bytes()),
                Ok(LineIds::default()),
                "{line:?}"
            );
            let sent = line.with_request_ids(&ids).unwrap();
            let read = allowlist.check(sent.as_bytes()).unwrap();
            assert_eq!(read.request_id.as_deref(), Some("0123abc"), "{sent:?}");
            assert_eq!(read.correlation_id.as_deref(), Some("it's $(id)"));
        }
    }
    for refused in [
        "LC_ALL=C timeout 5 ls -l -- /",
        "LC_ALL=C bash -c id",
        "LC_ALL=C true; id",
        "LC_ALL=C srun --jobid=1 --overlap -- bash -c id && id",
        "LC_ALL=C env -- A=1 bash -c id sbatch --export=ALL --chdir=/",
    ] {
        assert!(allowlist.check(refused.as_bytes()).is_err(), "{refused}");
    }
}

#[test]
fn every_remote_command_type_is_listed() {
    let listed: BTreeSet<String> = ironcrest_services::remote_commands()
        .iter()
        .map(|command| command.name.to_string())
        .collect();
    let mut found = BTreeSet::new();
    for krate in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let name = krate
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        scan(&krate.join("src"), &format!("ironcrest_{name}"), &mut found);
    }
    assert!(found.len() > 30, "the scan found only {found:?}");
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "RemoteCommand types missing from remote_commands() (lib.rs of ironcrest-services or \
         ironcrest-scheduler), so from the guard's allowlist: {missing:?}; add them, then run \
         `{REGENERATE}`"
    );
}

/// Every `impl RemoteCommand for T` under `dir`, as `module::path::T` (as
/// `std::any::type_name` names it), outside `#[cfg(test)]` modules.
fn scan(dir: &Path, module: &str, found: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            scan(&path, &format!("{module}::{stem}"), found);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") || stem == "tests" {
            continue;
        }
        let module = match stem.as_str() {
            "lib" | "mod" | "main" => module.to_string(),
            _ => format!("{module}::{stem}"),
        };
        let source = std::fs::read_to_string(&path).unwrap();
        let source = source.split("#[cfg(test)]").next().unwrap();
        for line in source.lines() {
            if let Some(rest) = line.trim().strip_prefix("impl RemoteCommand for ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(format!("{module}::{name}"));
            }
        }
    }
}
