//! The book quotes code; quotes must not go stale. A fenced block right after a line
//! `<!-- quote: PATH -->` must appear in PATH (relative to the repository root) as consecutive
//! lines, compared after trimming and after dropping comments that follow code on a line (the
//! book may annotate a line; a whole-line comment must match as it is). And every `text` block
//! that looks like Rust (`let `, `fn `, `tape.`) must be such a quote: the Rust examples that are
//! not quotes are ```rust blocks, compiled and run as doctests.

use std::path::{Path, PathBuf};

/// A line as compared: trimmed, with a comment after code removed.
fn normalize(line: &str) -> String {
    let t = line.trim();
    if t.starts_with("//") {
        return t.to_string();
    }
    match t.find("//") {
        Some(i) => t[..i].trim_end().to_string(),
        None => t.to_string(),
    }
}

/// The fenced blocks of a Markdown text: (info string, the quote path before it, its lines).
fn blocks(md: &str) -> Vec<(String, Option<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = md.lines().peekable();
    let mut quote: Option<String> = None;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.trim().strip_prefix("<!-- quote:") {
            quote = Some(rest.trim_end_matches("-->").trim().to_string());
            continue;
        }
        if let Some(info) = line.strip_prefix("```") {
            let mut body = Vec::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push(l.to_string());
            }
            out.push((info.trim().to_string(), quote.take(), body));
        } else if !line.trim().is_empty() {
            quote = None; // a marker applies to the block right after it
        }
    }
    out
}

/// Whether `quoted` appears in `source` as consecutive normalized lines.
fn appears_in(quoted: &[String], source: &str) -> bool {
    let q: Vec<String> = quoted.iter().map(|l| normalize(l)).filter(|l| !l.is_empty()).collect();
    let s: Vec<String> = source.lines().map(normalize).filter(|l| !l.is_empty()).collect();
    !q.is_empty() && s.windows(q.len()).any(|w| w == q.as_slice())
}

#[test]
fn every_code_quote_in_the_book_matches_its_source() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root.join("docs/book"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    // The crates' READMEs quote the source the same way ("how to add an op").
    for krate in ["autodiff", "layers", "vae", "cli"] {
        let readme = root.join("crates").join(krate).join("README.md");
        if readme.is_file() {
            chapters.push(readme);
        }
    }
    let mut problems = Vec::new();
    let mut quotes = 0;
    for chapter in &chapters {
        let name = chapter.file_name().unwrap().to_string_lossy().to_string();
        for (info, quote, body) in blocks(&std::fs::read_to_string(chapter).unwrap()) {
            let looks_like_rust = body.iter().any(|l| l.contains("let ") || l.contains("fn ") || l.contains("tape."));
            match quote {
                Some(path) => {
                    quotes += 1;
                    let source = std::fs::read_to_string(root.join(Path::new(&path)))
                        .unwrap_or_else(|e| panic!("{name}: cannot read quoted file {path}: {e}"));
                    if !appears_in(&body, &source) {
                        problems.push(format!("{name}: a quote is not (or no longer) in {path}:\n{}", body.join("\n")));
                    }
                }
                None if info == "text" && looks_like_rust => {
                    problems.push(format!("{name}: code in a text block without a quote marker:\n{}", body.join("\n")))
                }
                None => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(quotes >= 3, "expected the book's quotes, found {quotes}");
}

#[test]
fn a_stale_quote_is_caught() {
    let source = "fn f() {\n    let a = 1; // one\n    let b = a + 1;\n}\n";
    let fresh = vec!["let a = 1;   // the book's own remark".to_string(), "let b = a + 1;".to_string()];
    let stale = vec!["let a = 1;".to_string(), "let b = a + 2;".to_string()];
    assert!(appears_in(&fresh, source));
    assert!(!appears_in(&stale, source));
}
