// Re-embed migrations when a migration file changes (embed_migrations! alone
// does not notice new files).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
