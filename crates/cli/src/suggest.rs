//! "Did you mean" for names typed on the command line (connections,
//! accounts, people): the closest known name by edit distance, when it is
//! close enough to be a plausible typo.

/// `"; did you mean \"x\"?"` for the closest of `known` to `typed`, or an
/// empty string when nothing is close (at most a third of the name's
/// characters differ, and at least one may).
pub fn did_you_mean<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(typed, known)
        .map(|c| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// The closest of `known` to `typed`, if close enough (see [`did_you_mean`]).
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lc = typed.to_lowercase();
    let budget = (typed.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (edit_distance(&typed_lc, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= budget)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_a_close_name_and_nothing_for_a_far_one() {
        let known = ["expensify", "spendesk", "bill-com"];
        assert_eq!(closest("expensfy", known), Some("expensify"));
        assert_eq!(closest("Spendesk", known), Some("spendesk"));
        assert_eq!(closest("slack", known), None);
        assert_eq!(did_you_mean("slack", known), "");
        assert_eq!(
            did_you_mean("bil-com", known),
            "; did you mean \"bill-com\"?"
        );
    }
}
