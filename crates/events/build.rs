fn main() {
    // sqlx::migrate! embeds the migration files at compile time; a new file must rebuild
    // the crate.
    println!("cargo:rerun-if-changed=../../migrations");
}
