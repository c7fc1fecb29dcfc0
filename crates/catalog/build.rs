//! Rebuild when a catalog file changes: `include_dir!` embeds the directory
//! but stable Rust cannot tell cargo to track it.
fn main() {
    println!("cargo::rerun-if-changed=../../catalog");
}
