#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironcrest_fuzzing::Target::FilesystemOther.run(data));
