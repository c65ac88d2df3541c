//! A JSON writer for the busiest bodies (the download history list): the
//! same bytes `serde_json` writes for the same values, with less work per
//! value. Strings without characters to escape are copied whole (a
//! word-at-a-time scan instead of `serde_json`'s byte-by-byte one), timestamps
//! are formatted without `core::fmt`, and the buffer is sized once.
//! Anything unusual (a string to escape, a year outside 0–9999, a leap
//! second, a nested JSON value) is handed to `serde_json` itself, and the
//! tests compare the output with `serde_json`'s byte for byte.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

/// An output buffer of JSON text, written front to back by the caller.
#[derive(Debug)]
pub struct JsonWriter {
    buf: Vec<u8>,
}

/// Whether `byte` must be escaped inside a JSON string (as `serde_json`
/// does: control characters, `"` and `\`).
fn escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether `text` contains a byte [`escaped`] would escape. Eight bytes at
/// a time as one `u64` (the classic "has a byte less than n" and "has a
/// zero byte" bit tricks, exact for a yes/no answer), about a quarter of
/// the instructions of a byte-by-byte loop.
fn needs_escaping(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let (words, rest) = text.as_chunks::<8>();
    words.iter().any(|word| {
        let x = u64::from_ne_bytes(*word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        (control | quote | backslash) & HIGH != 0
    }) || rest.iter().any(|&byte| escaped(byte))
}

/// Two ASCII digits of `value` (below 100).
fn two_digits(value: u32) -> [u8; 2] {
    [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]
}

impl JsonWriter {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Appends JSON text as it is: punctuation and keys the caller spells
    /// out (`{"id":`).
    pub fn raw(&mut self, json: &str) {
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// Appends `text` as a JSON string.
    pub fn str(&mut self, text: &str) {
        if needs_escaping(text.as_bytes()) {
            self.value(text);
        } else {
            self.buf.reserve(text.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.push(b'"');
        }
    }

    /// Appends `text` as a JSON string, or `null`.
    pub fn opt_str(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.str(text),
            None => self.raw("null"),
        }
    }

    /// Appends an integer.
    pub fn int(&mut self, value: impl itoa::Integer) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Appends an integer, or `null`.
    pub fn opt_int(&mut self, value: Option<impl itoa::Integer>) {
        match value {
            Some(value) => self.int(value),
            None => self.raw("null"),
        }
    }

    /// Appends a timestamp as chrono's `Serialize` writes it: RFC 3339 in
    /// UTC with `Z`, and 0, 3, 6 or 9 fractional digits (`AutoSi`).
    pub fn datetime(&mut self, at: &DateTime<Utc>) {
        let year = at.year();
        let nanos = at.nanosecond();
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            // Signed or five-digit years and leap seconds: chrono's own way.
            self.value(at);
            return;
        }
        let year = year as u32;
        let mut text = [0u8; 32];
        text[0] = b'"';
        text[1..3].copy_from_slice(&two_digits(year / 100));
        text[3..5].copy_from_slice(&two_digits(year % 100));
        text[5] = b'-';
        text[6..8].copy_from_slice(&two_digits(at.month()));
        text[8] = b'-';
        text[9..11].copy_from_slice(&two_digits(at.day()));
        text[11] = b'T';
        text[12..14].copy_from_slice(&two_digits(at.hour()));
        text[14] = b':';
        text[15..17].copy_from_slice(&two_digits(at.minute()));
        text[17] = b':';
        text[18..20].copy_from_slice(&two_digits(at.second()));
        let (fraction, digits) = if nanos == 0 {
            (0, 0)
        } else if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        let mut len = 20;
        if digits > 0 {
            text[len] = b'.';
            let mut rest = fraction;
            for slot in text[len + 1..=len + digits].iter_mut().rev() {
                *slot = b'0' + (rest % 10) as u8;
                rest /= 10;
            }
            len += 1 + digits;
        }
        text[len] = b'Z';
        text[len + 1] = b'"';
        self.buf.extend_from_slice(&text[..len + 2]);
    }

    /// Appends any value as `serde_json` writes it.
    pub fn value<T: Serialize + ?Sized>(&mut self, value: &T) {
        // Writing into a Vec fails only for values that refuse to be JSON
        // (a map with non-string keys), which the callers never pass.
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            self.raw("null");
        }
    }

    /// The JSON text.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn written(write: impl FnOnce(&mut JsonWriter)) -> String {
        let mut writer = JsonWriter::with_capacity(0);
        write(&mut writer);
        String::from_utf8(writer.into_bytes()).expect("UTF-8")
    }

    #[test]
    fn strings_match_serde_json() {
        let long_plain = "https://cdn.example.com/media/1234567/original.jpg?size=large".repeat(3);
        for text in [
            "",
            "plain",
            "exactly sixteen!",
            "quote \" inside a block of more than sixteen bytes",
            "back\\slash",
            "tab\there",
            "\u{7f} delete is not escaped",
            "\u{1f} unit separator is",
            "Grüße 🌍 and 東京",
            "\n",
            long_plain.as_str(),
        ] {
            assert_eq!(
                written(|w| w.str(text)),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
        assert_eq!(written(|w| w.opt_str(None)), "null");
    }

    #[test]
    fn every_escaped_byte_is_found_at_every_position() {
        let specials = (0u8..0x20).chain([b'"', b'\\']);
        let neighbours = [b' ', b'!', b'#', b'[', b']', b'~', 0x7f, 0x80, 0xff];
        for special in specials {
            for len in 1..=24 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escaping(&bytes), "{special:#x} at {at} of {len}");
                }
            }
        }
        for len in 0..=24 {
            for &byte in &neighbours {
                assert!(!needs_escaping(&vec![byte; len]), "{byte:#x} x {len}");
            }
        }
    }

    #[test]
    fn integers_match_serde_json() {
        assert_eq!(written(|w| w.int(i64::MIN)), i64::MIN.to_string());
        assert_eq!(written(|w| w.int(u64::MAX)), u64::MAX.to_string());
        assert_eq!(written(|w| w.opt_int(Some(0u32))), "0");
        assert_eq!(written(|w| w.opt_int(None::<i64>)), "null");
    }

    #[test]
    fn timestamps_match_chrono() {
        let mut cases = vec![
            Utc.with_ymd_and_hms(2026, 11, 27, 20, 35, 58).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 12, 0, 0).unwrap(),
        ];
        let base = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        for nanos in [
            1,
            10,
            999,
            1_000,
            120_000,
            123_456_000,
            100_000_000,
            5_000_000,
            999_999_999,
        ] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // Microsecond timestamps as the stores keep them, spread over years.
        let mut micros: i64 = 1_764_275_758_123_456;
        for _ in 0..1000 {
            micros = micros
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1)
                % 253_402_300_799_000_000;
            cases.push(mediadl::store::rules::from_micros(micros.abs()));
        }
        for at in cases {
            assert_eq!(
                written(|w| w.datetime(&at)),
                serde_json::to_string(&at).unwrap(),
                "{at:?}"
            );
        }
    }
}
