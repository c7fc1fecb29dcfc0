//! Stable error codes, one format across the workspace: `PREFIX-NNNN`
//! (`CONN-0004`, `STORE-SCIM-0001`), never two variants with one code.
//!
//! Operators and scripts match on these codes, so they are checked where
//! every crate can be seen: this test reads the library sources (the
//! `code()` methods and the `#[error("CODE ...")]` messages) rather than
//! constructing every variant, many of which wrap I/O or database errors
//! that can't be built in a test. It fails on a code in another format, on
//! a code two `code()` arms share, and on a message whose leading code no
//! `code()` in its file returns (the message and the method disagree).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `PREFIX-NNNN`: upper-case words joined by `-`, then four digits.
fn well_formed(code: &str) -> bool {
    let Some((prefix, digits)) = code.rsplit_once('-') else {
        return false;
    };
    digits.len() == 4
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !prefix.is_empty()
        && prefix
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()))
}

/// Something that looks like an error code (`CAT001`, `AUDIT-010`,
/// `CONN-0004`): upper-case letters (and `-`), ending in digits.
fn looks_like_code(token: &str) -> bool {
    let digits = token.bytes().rev().take_while(u8::is_ascii_digit).count();
    let head = &token[..token.len() - digits];
    digits >= 2
        && head.len() >= 2
        && head.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && head.bytes().all(|b| b.is_ascii_uppercase() || b == b'-')
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The body of each `fn code(&self)`, by brace matching.
fn code_bodies(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("fn code(&self)") {
        let after = &rest[at..];
        let Some(open) = after.find('{') else { break };
        let mut depth = 0usize;
        let mut end = None;
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        out.push(&after[open..end]);
        rest = &after[end..];
    }
    out
}

/// String literals in `text` that look like codes.
fn quoted_codes(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| looks_like_code(s))
        .map(str::to_string)
        .collect()
}

/// The leading code of each `#[error("...")]` message.
fn message_codes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("#[error(") {
        let after = text[i + "#[error(".len()..].trim_start();
        let Some(msg) = after.strip_prefix('"') else {
            continue;
        };
        let token: String = msg
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if looks_like_code(&token) {
            out.push(token);
        }
    }
    out
}

#[test]
fn every_crates_codes_are_well_formed_and_unique() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&crates).expect("crates dir").flatten() {
        sources(&krate.path().join("src"), &mut files);
    }
    files.sort();
    assert!(files.len() > 20, "found the workspace's sources: {files:?}");

    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut methods = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        // Unit tests assert on codes; only the definitions count.
        let text = text
            .split("\n#[cfg(test)]\nmod ")
            .next()
            .unwrap_or_default();
        let name = file
            .strip_prefix(&crates)
            .unwrap_or(file)
            .display()
            .to_string();
        let mut returned = Vec::new();
        for body in code_bodies(text) {
            methods += 1;
            for code in quoted_codes(body) {
                if !well_formed(&code) {
                    problems.push(format!("{name}: code() returns {code}, not PREFIX-NNNN"));
                }
                if let Some(first) = owner.insert(code.clone(), name.clone()) {
                    problems.push(format!("{code} is returned twice ({first} and {name})"));
                }
                returned.push(code);
            }
        }
        for code in message_codes(text) {
            if !well_formed(&code) {
                problems.push(format!(
                    "{name}: a message starts with {code}, not PREFIX-NNNN"
                ));
            } else if !returned.contains(&code) {
                problems.push(format!(
                    "{name}: a message starts with {code}, which no code() in the file returns"
                ));
            }
        }
    }
    assert!(methods >= 10, "found the code() methods: {methods}");
    assert!(owner.contains_key("CONN-0001") && owner.contains_key("STORE-0001"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_format_check_itself() {
    for good in ["CONN-0001", "STORE-SCIM-0004", "AUDIT-0010", "CAT-0003"] {
        assert!(well_formed(good), "{good}");
    }
    for bad in [
        "CAT001",
        "AUDIT-010",
        "conn-0001",
        "CONN-00001",
        "CONN-",
        "-0001",
    ] {
        assert!(!well_formed(bad), "{bad}");
    }
    assert!(looks_like_code("CAT001") && looks_like_code("AUDIT-010"));
    assert!(!looks_like_code("SHA") && !looks_like_code("http") && !looks_like_code("v2"));
    assert_eq!(
        message_codes(r#"#[error("FILES-001 cannot {x}")] #[error("{path}: x")]"#),
        vec!["FILES-001"]
    );
}
