//! The command line's modules form no circle of imports: read from `src/*.rs`, every
//! `crate::<module>` a module names is an edge, and the graph has a topological order.

use std::collections::{BTreeMap, BTreeSet};

#[test]
fn no_two_modules_import_each_other_even_through_others() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let used: BTreeSet<String> = text
            .split("crate::")
            .skip(1)
            .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
            .filter(|m| !m.is_empty() && *m != name)
            .collect();
        deps.insert(name, used);
    }
    assert!(deps.len() > 20, "read {} modules from {}", deps.len(), src.display());
    // Kahn's algorithm: repeatedly remove a module whose imports are all removed.
    let mut left = deps.clone();
    while !left.is_empty() {
        let ready: Vec<String> =
            left.iter().filter(|(_, d)| d.iter().all(|m| !left.contains_key(m))).map(|(m, _)| m.clone()).collect();
        assert!(!ready.is_empty(), "a circle of imports among {:?}", left.keys().collect::<Vec<_>>());
        for m in ready {
            left.remove(&m);
        }
    }
}
