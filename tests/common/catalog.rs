//! What the catalogue knows of a file, as `tapedeck find --json` answers.

use super::Home;
use std::path::Path;

/// `find --json --file PATH`: every version of `path` the catalogue knows, newest first.
pub fn versions(home: &Home, path: impl AsRef<Path>) -> Vec<serde_json::Value> {
    let path = path.as_ref().to_str().unwrap();
    let found = home.json(&["find", "--json", "--file", path]);
    found
        .as_array()
        .expect("find --json answers a list")
        .clone()
}

/// The one version of `path` the catalogue knows (there must be exactly one).
pub fn only_version(home: &Home, path: impl AsRef<Path>) -> serde_json::Value {
    let mut found = versions(home, path);
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}
