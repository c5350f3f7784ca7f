//! The library's modules form no circle of imports, so that each can be read, and replaced,
//! knowing only those below it. Every top-level module of `src/` (a file, or a folder with all
//! its files) is a node; every `crate::<module>` its code names, braces
//! (`crate::{a, b}`) and the crate root's re-exports (`crate::Vae` is `model`) resolved, is an
//! edge. Comments are not code: a doc link to a higher module is no import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `.rs` files of a module: the file itself, or every file under its folder.
fn files_of(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files_of(&entry.unwrap().path()));
    }
    out.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    out
}

/// The code of a file without its comments (whole-line and trailing `//` comments).
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The names after each `crate::` of `code`: `crate::a::b` gives `a`, `crate::{a, b::c}` gives
/// `a` and `b`.
fn named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for rest in code.split("crate::").skip(1) {
        match rest.strip_prefix('{') {
            Some(group) => out.extend(group.split('}').next().unwrap().split(',').map(ident)),
            None => {
                out.insert(ident(rest));
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Which module each name the crate root re-exports comes from (`pub use model::Vae;`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        let (module, names) = line.split_once("::").unwrap();
        let names = names.trim_end_matches(';').trim_matches(|c| c == '{' || c == '}');
        for name in names.split(',') {
            out.insert(name.trim().to_string(), module.to_string());
        }
    }
    out
}

#[test]
fn no_two_modules_import_each_other_even_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let roots = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || (path.is_file() && path.extension().is_none_or(|e| e != "rs")) {
            continue;
        }
        let mut used = BTreeSet::new();
        for file in files_of(&path) {
            for n in named(&code(&std::fs::read_to_string(&file).unwrap())) {
                used.insert(roots.get(&n).cloned().unwrap_or(n));
            }
        }
        used.remove(&name);
        deps.insert(name, used);
    }
    assert!(deps.len() > 15, "read {} modules from {}", deps.len(), src.display());
    let unknown: Vec<_> = deps.values().flatten().filter(|m| !deps.contains_key(*m)).collect();
    assert!(unknown.is_empty(), "names that are no module of the crate: {unknown:?}");
    // Kahn's algorithm: repeatedly remove a module whose imports are all removed.
    let mut left = deps.clone();
    while !left.is_empty() {
        let ready: Vec<String> =
            left.iter().filter(|(_, d)| d.iter().all(|m| !left.contains_key(m))).map(|(m, _)| m.clone()).collect();
        let circle: BTreeMap<_, _> =
            left.iter().map(|(m, d)| (m, d.iter().filter(|x| left.contains_key(*x)).collect::<Vec<_>>())).collect();
        assert!(
            !ready.is_empty(),
            "a circle of imports among these modules (each with what it imports of them): {circle:#?}"
        );
        for m in ready {
            left.remove(&m);
        }
    }
}

/// The checker sees a circle where there is one, through braces and the root's re-exports.
#[test]
fn the_checker_reads_braces_re_exports_and_skips_comments() {
    let code = code("use crate::{data, model::Vae};\nlet v = crate::Family; // crate::run\n/// [`crate::train`]");
    assert_eq!(named(&code), ["Family", "data", "model"].map(String::from).into());
    let roots = reexports("pub use family::Family;\npub use config::{Activation, Arch};");
    assert_eq!((roots["Family"].as_str(), roots["Arch"].as_str()), ("family", "config"));
}
