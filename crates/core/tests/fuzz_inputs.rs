//! Bounded fuzzing of the files roster reads from people it does not
//! control: policy files, HR CSV exports and JSON feeds. Each target starts
//! from the corpus kept in `tests/fuzz-corpus/<target>/` and applies
//! proptest-chosen mutations (bit flips, byte insertions and deletions,
//! truncation, splicing with another corpus file, duplicated lines).
//!
//! Invariants, beyond "never panics" (each input also runs under
//! `catch_unwind`, so a panic names the input that caused it):
//!
//! * every error carries its stable code (`POLICY-…`, `HRCSV-…`);
//! * HR CSV: what parses writes back (`hr_csv::write`) to a file that
//!   parses to the same people (every field the writer carries: identity,
//!   names, org, manager, status, dates, groups; it leaves extra attribute
//!   columns and aliases out) — an ambiguous round trip would let a
//!   re-export change who roster thinks is employed;
//! * HR JSON: what parses has the same people as its CSV rendering.
//!
//! Bounded: `ROSTER_FUZZ_CASES` mutations per target (default 300), a few
//! seconds in the normal suite; set it higher for a longer run. A failing
//! case is shrunk by proptest and can be added to the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roster_core::{Policy, hr_csv, hr_json};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, usize),
    DuplicateLine(usize),
    Interesting(usize, usize),
}

/// Bytes that matter to these formats.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b"[[rules]]\n",
    b"\0",
    b"\xff\xfe",
    b"\xc3",
    b"E1",
    b"@",
    b"terminated",
    b"9999-99-99",
    b"\\u0000",
    b"null",
    b"employee_id",
    b"{lookup = \"x\", table = \"nope\"}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(f, a, b)| Mutation::Splice(f, a, b)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, k)| Mutation::Interesting(i, k)),
    ]
}

fn apply(mut data: Vec<u8>, muts: &[Mutation], corpus: &[Vec<u8>]) -> Vec<u8> {
    for m in muts {
        let len = data.len();
        let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
        match *m {
            Mutation::FlipBit(i, b) if len > 0 => data[i % len] ^= 1 << b,
            Mutation::FlipBit(..) => {}
            Mutation::Insert(i, b) => data.insert(at(i), b),
            Mutation::Delete(i, n) if len > 0 => {
                let s = i % len;
                data.drain(s..(s + n).min(len));
            }
            Mutation::Delete(..) => {}
            Mutation::Truncate(i) => data.truncate(at(i)),
            Mutation::Splice(f, a, b) => {
                let other = &corpus[f % corpus.len()];
                if !other.is_empty() {
                    let (x, y) = (a % other.len(), b % other.len());
                    let (x, y) = (x.min(y), x.max(y));
                    let pos = at(a ^ b);
                    data.splice(pos..pos, other[x..y].iter().copied());
                }
            }
            Mutation::DuplicateLine(i) => {
                let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
                if !lines.is_empty() {
                    let line = lines[i % lines.len()].to_vec();
                    let mut out = data.clone();
                    out.push(b'\n');
                    out.extend(line);
                    data = out;
                }
            }
            Mutation::Interesting(i, k) => {
                let pos = at(i);
                let bytes = INTERESTING[k % INTERESTING.len()];
                data.splice(pos..pos, bytes.iter().copied());
            }
        }
    }
    data
}

/// What `hr_csv::write` carries: a person without extra attributes and
/// aliases.
fn written_fields(people: &[roster_core::Person]) -> Vec<roster_core::Person> {
    people
        .iter()
        .cloned()
        .map(|mut p| {
            p.attributes.clear();
            p.aliases.clear();
            p
        })
        .collect()
}

fn cases() -> u32 {
    std::env::var("ROSTER_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

/// Runs `check` on every corpus file unmutated, then on `cases()` mutated
/// inputs; a panic inside `check` fails with the input shown.
fn fuzz(target: &str, check: impl Fn(&str) -> Result<(), String>) {
    let corpus = corpus(target);
    let run = |data: &[u8]| -> Result<(), TestCaseError> {
        let text = String::from_utf8_lossy(data);
        match catch_unwind(AssertUnwindSafe(|| check(&text))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestCaseError::fail(format!("{e}\ninput: {text:?}"))),
            Err(_) => Err(TestCaseError::fail(format!("panicked on input: {text:?}"))),
        }
    };
    for c in &corpus {
        run(c).unwrap_or_else(|e| panic!("{target} corpus: {e}"));
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..corpus.len(), proptest::collection::vec(mutation(), 1..6));
    runner
        .run(&strategy, |(seed, muts)| {
            run(&apply(corpus[seed].clone(), &muts, &corpus))
        })
        .unwrap_or_else(|e| panic!("{target}: {e}"));
}

#[test]
fn policy_files_never_panic_and_errors_carry_their_code() {
    fuzz("policy", |text| match Policy::parse("fuzz.toml", text) {
        Ok(_) => Ok(()),
        Err(e) if e.code().starts_with("POLICY-") => Ok(()),
        Err(e) => Err(format!("error without a POLICY code: {} {e}", e.code())),
    });
}

#[test]
fn hr_csv_never_panics_and_what_parses_round_trips() {
    fuzz("hr_csv", |text| match hr_csv::parse("fuzz.csv", text) {
        Ok(people) => {
            let written = hr_csv::write(&people);
            let again = hr_csv::parse("rewritten.csv", &written)
                .map_err(|e| format!("the rewritten file does not parse: {e}\n{written}"))?;
            if written_fields(&again) != written_fields(&people) {
                return Err(format!(
                    "round trip changed the people:\n{people:?}\n{again:?}"
                ));
            }
            Ok(())
        }
        Err(e) if e.code().starts_with("HRCSV-") => Ok(()),
        Err(e) => Err(format!("error without an HRCSV code: {} {e}", e.code())),
    });
}

#[test]
fn hr_json_never_panics_and_agrees_with_its_csv_rendering() {
    fuzz("hr_json", |text| match hr_json::parse("fuzz.json", text) {
        Ok(people) => {
            let written = hr_csv::write(&people);
            let again = hr_csv::parse("rendered.csv", &written)
                .map_err(|e| format!("the CSV rendering does not parse: {e}\n{written}"))?;
            if written_fields(&again) != written_fields(&people) {
                return Err(format!("JSON and CSV disagree:\n{people:?}\n{again:?}"));
            }
            Ok(())
        }
        Err(e) if e.code().starts_with("HRCSV-") => Ok(()),
        Err(e) => Err(format!("error without an HRCSV code: {} {e}", e.code())),
    });
}
