//! Numbers for people, written one way wherever they appear (the API's
//! `*_human` fields, engine notifications, the command line).

/// Bytes as `42.5 GB`, `500 GB` or `512 B`: powers of 1024 with the short
/// unit names of the API spec's `used_human` example, one decimal unless it
/// is zero.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if (value - value.round()).abs() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(500 * 1024 * 1024 * 1024), "500 GB");
        assert_eq!(human_bytes(45_678_901_234), "42.5 GB");
        assert_eq!(human_bytes(u64::MAX), "16384 PB");
    }
}
