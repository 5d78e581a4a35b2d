//! The one markdown table each bench ends with.

/// Prints `rows` under `headers` as a markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    println!("\n| {} |", headers.join(" | "));
    println!("|{}", "---|".repeat(headers.len()));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}
