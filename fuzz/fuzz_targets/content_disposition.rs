//! The Content-Disposition file-name parser on arbitrary header values (any
//! server being downloaded from chooses them): it must never panic, and a
//! name it returns is never empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mediadl::fetch::transfer::disposition_filename;

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    if let Some(name) = disposition_filename(&value) {
        assert!(!name.is_empty(), "empty name from {value:?}");
    }
});
