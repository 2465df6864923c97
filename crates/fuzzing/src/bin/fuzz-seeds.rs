//! Writes each fuzz target's seed inputs to `<dir>/<target>/seed-<n>`: the corpus cargo-fuzz
//! starts from (`fuzz/run` calls it). Usage: `fuzz-seeds <dir>`.

use ironcrest_fuzzing::Target;

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: fuzz-seeds <dir>");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    for target in Target::ALL {
        let folder = dir.join(target.name());
        std::fs::create_dir_all(&folder)
            .unwrap_or_else(|err| panic!("{}: {err}", folder.display()));
        for (n, seed) in target.seeds().iter().enumerate() {
            let path = folder.join(format!("seed-{n}"));
            std::fs::write(&path, seed).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        }
    }
}
