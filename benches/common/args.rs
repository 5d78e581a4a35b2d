//! The benches' command-line options (after `--`): `--name N` numbers and bare `--flag`s.

/// The number after `name` on the command line, or `default`.
pub fn number(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether the bare flag `name` is on the command line.
#[allow(dead_code)]
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
