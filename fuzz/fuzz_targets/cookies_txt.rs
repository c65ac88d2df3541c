//! The Netscape cookies.txt parser on arbitrary text (an admin uploads the
//! file; a browser extension or a hostile page may have written it): it
//! must never panic, a refusal names a line of the input, and an accepted
//! file has at most one cookie per line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mediadl::fetch::parse_netscape_cookies;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match parse_netscape_cookies(&text) {
        Ok(parsed) => assert!(parsed.count <= lines, "{} cookies from {lines} lines", parsed.count),
        Err(err) => assert!(
            (1..=lines).contains(&err.line),
            "line {} of {lines}",
            err.line
        ),
    }
});
