//! The workspace README's quick start is this crate's README example, which runs as a doc
//! test (the crate docs include `README.md`): the two must not drift apart. The workspace
//! README is not part of the published crate, so outside the repository there is nothing to
//! compare.

use std::path::Path;

/// The first ```` ```rust ```` block of a Markdown file.
fn first_rust_block(markdown: &str) -> Option<&str> {
    let start = markdown.find("```rust\n")? + "```rust\n".len();
    let len = markdown[start..].find("```")?;
    Some(&markdown[start..start + len])
}

#[test]
fn workspace_readme_quick_start_is_the_crate_readme_example() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.join("../..");
    if root.join("crates/counter").canonicalize().ok() != crate_dir.canonicalize().ok() {
        return; // not in the repository (a published crate)
    }
    let workspace = std::fs::read_to_string(root.join("README.md")).unwrap();
    let own = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    let own = first_rust_block(&own).expect("the crate README has a rust example");
    let quick_start =
        first_rust_block(&workspace).expect("the workspace README has a rust example");
    assert_eq!(
        quick_start, own,
        "README.md's quick start differs from crates/counter/README.md's example (the tested one)"
    );
}
