#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironcrest_fuzzing::Target::Pbs.run(data));
