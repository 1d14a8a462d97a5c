//! The migrations are embedded at compile time (`sqlx::migrate!`): rebuild when one changes, or a
//! new migration would be missing from an incremental build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
