//! Rebuilds the server when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations` directory at compile time, and without this an incremental build would keep
//! the migrations it embedded last (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
