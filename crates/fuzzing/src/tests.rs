use super::*;

/// Every input kept under `fuzz/regressions/<target>/` (a crash the fuzzer once found, since
/// fixed) runs through its target again.
#[test]
fn every_kept_regression_input_passes_its_target() {
    let root = repo().join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&root).unwrap_or_else(|err| panic!("{}: {err}", root.display()))
    {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let target = Target::ALL
            .into_iter()
            .find(|target| target.name() == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target is named so", path.display()));
        assert_eq!(target.regressions_dir(), path);
        for input in std::fs::read_dir(&path).unwrap() {
            let input = input.unwrap().path();
            target.run(&std::fs::read(&input).unwrap());
            replayed += 1;
        }
    }
    println!("{replayed} regression inputs replayed");
}

#[test]
fn every_target_passes_its_seeds() {
    for target in Target::ALL {
        for seed in target.seeds() {
            target.run(&seed);
        }
    }
}

#[test]
fn an_input_reads_back_as_the_output_it_was_made_from() {
    let output = Output {
        stdout: b"a\0b\n".to_vec(),
        stderr: b"refused\n".to_vec(),
        exit_status: 2,
    };
    assert_eq!(super::output(&input(&output)), output);
    let silent = Output {
        stdout: b"only this".to_vec(),
        ..Output::default()
    };
    assert_eq!(super::output(&input(&silent)), silent);
    assert_eq!(super::output(b""), Output::default());
}

/// The seeds carry what the fixtures hold: the listing's link, with its target.
#[test]
fn a_listing_seed_is_the_captured_listing() {
    let link = Target::Ls
        .seeds()
        .iter()
        .filter_map(|seed| fs::parse_ls(&output(seed).stdout, false).ok())
        .flatten()
        .find(|file| file.name == "dash-link")
        .expect("the ls fixture's link");
    assert_eq!(link.link_target.as_deref(), Some("-leading dash"));
}

/// What the validators' target asserts holds for values the API takes, and its checks do
/// fail on a line the guard would refuse.
#[test]
fn the_validators_target_accepts_valid_values_and_its_guard_check_bites() {
    for value in VALIDATOR_SEEDS {
        validators(value.as_bytes());
    }
    let refused = CommandLine::builder("rm").word("-rf").word("/").build();
    let caught = std::panic::catch_unwind(|| assert_allowed("rm", &refused));
    assert!(
        caught.is_err(),
        "the guard's allowlist let `rm -rf /` through"
    );
    let unnormalised = std::panic::catch_unwind(|| assert_normalised(b"/home/../etc"));
    assert!(unnormalised.is_err());
}
