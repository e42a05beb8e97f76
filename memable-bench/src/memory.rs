//! Process memory readings (resident set size), for the per-instance figure.

/// Resident set size in bytes, from `/proc/self/statm` (Linux); `None`
/// elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
