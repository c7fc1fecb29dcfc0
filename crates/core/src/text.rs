//! Small text helpers shared by the crates that report mistakes in files
//! people write (the catalog loader, the policy checker): the edit distance
//! between two words and the closest known word to a misspelled one.

/// Levenshtein distance between `a` and `b`, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known word closest to `word` (case-insensitively), if it is close
/// enough to be what was meant: at most a third of the word's length away,
/// and never less tolerant than two edits. Ties go to the first candidate
/// in sorted order, so the suggestion does not depend on input order.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = 2.max(word.chars().count() / 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("expensfy", "expensify"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("okta", "okta"), 0);
        assert_eq!(edit_distance("staus", "status"), 1);
    }

    #[test]
    fn closest_suggests_only_near_words() {
        let known = ["status", "department", "email"];
        assert_eq!(closest("staus", known), Some("status"));
        assert_eq!(closest("Departmnt", known), Some("department"));
        assert_eq!(closest("location", known), None);
        assert_eq!(closest("x", ["a", "b"]), Some("a"), "ties: sorted first");
    }
}
