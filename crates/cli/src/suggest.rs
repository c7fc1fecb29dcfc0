//! "Did you mean" for names typed on the command line (connections,
//! accounts, people): the closest known name by edit distance, when it is
//! close enough to be a plausible typo.

/// `"; did you mean \"x\"?"` for the closest of `known` to `typed`, or an
/// empty string when nothing is close (see [`roster_core::text::closest`]).
pub fn did_you_mean<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    closest(typed, known)
        .map(|c| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// The closest of `known` to `typed`, if close enough to be a typo (the
/// one rule the policy checker and the catalog loader use too).
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    roster_core::text::closest(typed, known)
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
