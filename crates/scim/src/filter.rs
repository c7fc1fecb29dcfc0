//! SCIM filters (RFC 7644 §3.4.2.2): parsing, printing, validation and
//! index planning. Evaluation lives in [`crate::eval`] and is exposed as
//! [`Filter::matches`].
//!
//! Parsing is delegated to the `scim_v2` crate's grammar (depth ≤ 64,
//! ≤ 1024 terms, so recursion over our AST is bounded) and converted into
//! this crate's own [`Filter`] AST. Before parsing, a small string-literal
//! aware pass accepts two forms real clients send that the grammar rejects:
//! - `not(` without a space (the RFC ABNF has no space there);
//! - Entra's `emails[type eq "work"].value eq "x"`, rewritten to the
//!   equivalent `emails[(type eq "work") and value eq "x"]` ("some element
//!   has type work and that same element's value is x").
//!
//! Invariants of the AST:
//! - `And`/`Or` hold at least two operands. The parser produces them
//!   flattened (no `And` directly inside `And`); [`Filter::and`] and
//!   [`Filter::or`] keep that shape for hand-built filters.
//! - Inside a `ValuePath`, the inner filter's paths are relative to an
//!   element of the attribute and never contain another `ValuePath`.
//!
//! `Display` prints valid SCIM filter syntax that re-parses to the same AST
//! (property-tested), so filters can be logged, forwarded and persisted.

use crate::error::ScimError;
use crate::path::AttrPath;
use crate::schema::{AttrType, SchemaRegistry};
use serde_json::Number;
use std::fmt;

/// Comparison operators (RFC 7644 §3.4.2.2, Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `co`
    Co,
    /// `sw`
    Sw,
    /// `ew`
    Ew,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CompareOp {
    /// All operators, for table-driven tests and generators.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// Wire spelling (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Whether the operator is an ordering (`gt ge lt le`).
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether the operator is a substring test (`co sw ew`).
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }

    fn from_v2(op: scim_v2::filter::CompareOp) -> CompareOp {
        use scim_v2::filter::CompareOp as V;
        match op {
            V::Eq => CompareOp::Eq,
            V::Ne => CompareOp::Ne,
            V::Co => CompareOp::Co,
            V::Sw => CompareOp::Sw,
            V::Ew => CompareOp::Ew,
            V::Gt => CompareOp::Gt,
            V::Ge => CompareOp::Ge,
            V::Lt => CompareOp::Lt,
            V::Le => CompareOp::Le,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The right-hand side of a comparison: a JSON scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string (unescaped).
    Str(String),
}

impl CompValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            CompValue::Str(s) => Some(s),
            _ => None,
        }
    }

    fn from_v2(v: scim_v2::filter::CompValue) -> CompValue {
        use scim_v2::filter::CompValue as V;
        match v {
            V::False => CompValue::Bool(false),
            V::True => CompValue::Bool(true),
            V::Null => CompValue::Null,
            V::Number(n) => CompValue::Number(n),
            V::Str(s) => CompValue::Str(s),
        }
    }
}

impl From<&str> for CompValue {
    fn from(s: &str) -> Self {
        CompValue::Str(s.to_string())
    }
}

impl From<String> for CompValue {
    fn from(s: String) -> Self {
        CompValue::Str(s)
    }
}

impl From<bool> for CompValue {
    fn from(b: bool) -> Self {
        CompValue::Bool(b)
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Str(s) => write_json_string(f, s),
        }
    }
}

/// Writes `s` as a JSON string literal (quotes and escapes).
fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// A SCIM filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`
    Compare {
        /// Attribute path.
        path: AttrPath,
        /// Operator.
        op: CompareOp,
        /// Comparison value.
        value: CompValue,
    },
    /// `path pr`
    Present(AttrPath),
    /// Conjunction of at least two operands.
    And(Vec<Filter>),
    /// Disjunction of at least two operands.
    Or(Vec<Filter>),
    /// `not (inner)`
    Not(Box<Filter>),
    /// `attr[filter]`: some element of `attr` satisfies `filter`, whose
    /// paths are relative to the element.
    ValuePath {
        /// The (usually multi-valued complex) attribute.
        attr: AttrPath,
        /// The element filter.
        filter: Box<Filter>,
    },
}

impl Filter {
    /// Parses a filter. Errors are `400 invalidFilter` with a detail naming
    /// the offending token and its byte position.
    pub fn parse(input: &str) -> Result<Filter, ScimError> {
        let prepared = prepare(input);
        let parsed: scim_v2::filter::Filter = prepared.parse().map_err(|e| {
            let mut detail = format!(
                "invalid filter {}: {}",
                quote_truncated(input),
                describe_parse_error(&e)
            );
            if prepared != input {
                detail.push_str(&format!(
                    " (positions refer to {})",
                    quote_truncated(&prepared)
                ));
            }
            ScimError::invalid_filter(detail)
        })?;
        Ok(Filter::from_v2(parsed))
    }

    /// Parses and then [`validate`](Filter::validate)s against a registry:
    /// what a server should call on `?filter=`.
    pub fn parse_validated(input: &str, registry: &SchemaRegistry) -> Result<Filter, ScimError> {
        let f = Filter::parse(input)?;
        f.validate(registry)?;
        Ok(f)
    }

    /// `path eq "value"`.
    pub fn eq(path: AttrPath, value: impl Into<CompValue>) -> Filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: value.into(),
        }
    }

    /// `lhs and rhs`, flattening nested conjunctions.
    pub fn and(lhs: Filter, rhs: Filter) -> Filter {
        let mut items = match lhs {
            Filter::And(v) => v,
            other => vec![other],
        };
        match rhs {
            Filter::And(v) => items.extend(v),
            other => items.push(other),
        }
        Filter::And(items)
    }

    /// `lhs or rhs`, flattening nested disjunctions.
    pub fn or(lhs: Filter, rhs: Filter) -> Filter {
        let mut items = match lhs {
            Filter::Or(v) => v,
            other => vec![other],
        };
        match rhs {
            Filter::Or(v) => items.extend(v),
            other => items.push(other),
        }
        Filter::Or(items)
    }

    /// `not (inner)`.
    pub fn negate(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    pub(crate) fn from_v2(f: scim_v2::filter::Filter) -> Filter {
        use scim_v2::filter::Filter as V;
        match f {
            V::Attr(e) => Filter::from_v2_exp(e),
            V::ValuePath(vp) => Filter::ValuePath {
                attr: AttrPath::from_v2(vp.attr),
                filter: Box::new(Filter::from_v2_val(*vp.filter)),
            },
            V::Not(inner) => Filter::Not(Box::new(Filter::from_v2(*inner))),
            V::And(items) => Filter::And(items.into_iter().map(Filter::from_v2).collect()),
            V::Or(items) => Filter::Or(items.into_iter().map(Filter::from_v2).collect()),
        }
    }

    pub(crate) fn from_v2_val(f: scim_v2::filter::ValFilter) -> Filter {
        use scim_v2::filter::ValFilter as V;
        match f {
            V::Attr(e) => Filter::from_v2_exp(e),
            V::Not(inner) => Filter::Not(Box::new(Filter::from_v2_val(*inner))),
            V::And(items) => Filter::And(items.into_iter().map(Filter::from_v2_val).collect()),
            V::Or(items) => Filter::Or(items.into_iter().map(Filter::from_v2_val).collect()),
        }
    }

    fn from_v2_exp(e: scim_v2::filter::AttrExp) -> Filter {
        use scim_v2::filter::AttrExp as V;
        match e {
            V::Present(p) => Filter::Present(AttrPath::from_v2(p)),
            V::Comparison(p, op, v) => Filter::Compare {
                path: AttrPath::from_v2(p),
                op: CompareOp::from_v2(op),
                value: CompValue::from_v2(v),
            },
        }
    }

    /// Checks the filter against the schema: operators must suit the
    /// attribute type (RFC 7644 §3.4.2.2: `gt/ge/lt/le` on boolean or binary
    /// attributes is an error), comparison values must have the attribute's
    /// type, and dateTime values must parse. Errors are `400 invalidFilter`.
    ///
    /// Unknown attributes are accepted (they simply match nothing), so
    /// clients probing custom attributes get an empty result, not an error.
    pub fn validate(&self, registry: &SchemaRegistry) -> Result<(), ScimError> {
        self.validate_in(registry, None)
    }

    fn validate_in(
        &self,
        registry: &SchemaRegistry,
        parent: Option<&crate::schema::AttributeDef>,
    ) -> Result<(), ScimError> {
        match self {
            Filter::Present(_) => Ok(()),
            Filter::And(items) | Filter::Or(items) => items
                .iter()
                .try_for_each(|f| f.validate_in(registry, parent)),
            Filter::Not(inner) => inner.validate_in(registry, parent),
            Filter::ValuePath { attr, filter } => {
                let def = registry.resolve(attr, None);
                match def {
                    Some(r) if r.leaf().attr_type != AttrType::Complex => {
                        Err(ScimError::invalid_filter(format!(
                            "value filter on {attr}, which is not a complex attribute"
                        )))
                    }
                    Some(r) => filter.validate_in(registry, Some(r.leaf())),
                    None => Ok(()),
                }
            }
            Filter::Compare { path, op, value } => {
                let leaf = match parent {
                    Some(p) => p
                        .sub_attribute(&path.name)
                        .and_then(|d| match &path.sub_attr {
                            Some(s) => d.sub_attribute(s),
                            None => Some(d),
                        }),
                    None => registry.resolve(path, None).map(|r| r.leaf()),
                };
                let Some(mut leaf) = leaf else {
                    return Ok(());
                };
                // A complex attribute without a sub-attribute compares its
                // `value` sub-attribute (e.g. `emails co "@x"`).
                if leaf.attr_type == AttrType::Complex {
                    leaf = leaf.sub_attribute("value").ok_or_else(|| {
                        ScimError::invalid_filter(format!(
                            "cannot compare complex attribute {path} with {op}"
                        ))
                    })?;
                }
                check_comparison(path, *op, value, leaf.attr_type)
            }
        }
    }

    /// Recognises a filter a server can answer from an index: equality on
    /// `id`, `userName`, `externalId`, `displayName`, `emails.value` or
    /// `members.value`, in any of the forms IdPs send:
    /// `userName eq "x"`, `emails.value eq "x"`, `emails[value eq "x"]`,
    /// `emails[type eq "work"].value eq "x"` (i.e.
    /// `emails[type eq "work" and value eq "x"]`), `members[value eq "x"]`,
    /// or a conjunction containing one of these.
    ///
    /// Returns the canonical path (e.g. `userName`, `emails.value`) and the
    /// value. The answer is a **candidate set**: callers must still run
    /// [`Filter::matches`] on the candidates (extra conjuncts, the `type`
    /// condition, and case rules are not encoded here). Whether to fold case
    /// is given by the registry (`userName` is caseExact=false; `id` and
    /// `externalId` are caseExact=true).
    pub fn as_indexed_eq(&self) -> Option<(AttrPath, String)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Str(v),
            } => indexed_path(path.uri.as_deref(), &path.name, path.sub_attr.as_deref())
                .map(|p| (p, v.clone())),
            Filter::ValuePath { attr, filter } if attr.sub_attr.is_none() => {
                let mut conjuncts: &[Filter] = std::slice::from_ref(filter.as_ref());
                if let Filter::And(items) = filter.as_ref() {
                    conjuncts = items;
                }
                conjuncts.iter().find_map(|c| match c {
                    Filter::Compare {
                        path,
                        op: CompareOp::Eq,
                        value: CompValue::Str(v),
                    } if path.uri.is_none() && path.sub_attr.is_none() => {
                        indexed_path(attr.uri.as_deref(), &attr.name, Some(&path.name))
                            .map(|p| (p, v.clone()))
                    }
                    _ => None,
                })
            }
            Filter::And(items) => items.iter().find_map(Filter::as_indexed_eq),
            _ => None,
        }
    }
}

/// The indexed attributes, as (name, sub-attribute) in canonical spelling.
const INDEXED: [(&str, Option<&str>); 6] = [
    ("id", None),
    ("userName", None),
    ("externalId", None),
    ("displayName", None),
    ("emails", Some("value")),
    ("members", Some("value")),
];

fn indexed_path(uri: Option<&str>, name: &str, sub: Option<&str>) -> Option<AttrPath> {
    if let Some(uri) = uri {
        let core = [crate::USER_SCHEMA, crate::GROUP_SCHEMA];
        if !core.iter().any(|c| c.eq_ignore_ascii_case(uri)) {
            return None;
        }
    }
    INDEXED.iter().find_map(|(n, s)| {
        let name_ok = n.eq_ignore_ascii_case(name);
        let sub_ok = match (s, sub) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        (name_ok && sub_ok).then(|| AttrPath {
            uri: None,
            name: (*n).to_string(),
            sub_attr: s.map(str::to_string),
        })
    })
}

fn check_comparison(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    ty: AttrType,
) -> Result<(), ScimError> {
    let bad = |why: &str| {
        Err(ScimError::invalid_filter(format!(
            "{path} {op} {value}: {why}"
        )))
    };
    if matches!(value, CompValue::Null) {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            bad("null can only be compared with eq or ne")
        };
    }
    match ty {
        AttrType::Boolean => {
            if op != CompareOp::Eq && op != CompareOp::Ne {
                return bad("boolean attributes support only eq, ne and pr");
            }
            let ok = match value {
                CompValue::Bool(_) => true,
                CompValue::Str(s) => {
                    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
                }
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                bad("expected true or false")
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            if op.is_substring() {
                return bad("co, sw and ew apply to strings only");
            }
            let ok = match value {
                CompValue::Number(_) => true,
                CompValue::Str(s) => s.trim().parse::<f64>().is_ok(),
                _ => false,
            };
            if ok { Ok(()) } else { bad("expected a number") }
        }
        AttrType::DateTime => match value {
            CompValue::Str(s) if op.is_substring() || crate::text::parse_datetime(s).is_some() => {
                Ok(())
            }
            CompValue::Str(_) => {
                bad("expected an RFC 3339 dateTime such as \"2011-05-13T04:42:34Z\"")
            }
            _ => bad("expected a dateTime string"),
        },
        AttrType::Binary if op.is_ordering() => bad("binary attributes cannot be ordered"),
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            CompValue::Str(_) => Ok(()),
            _ => bad("expected a string"),
        },
        AttrType::Complex => bad("complex attributes cannot be compared"),
    }
}

impl std::str::FromStr for Filter {
    type Err = ScimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
            Filter::And(items) => write_joined(f, items, " and ", |x| {
                matches!(x, Filter::Or(_) | Filter::And(_))
            }),
            Filter::Or(items) => write_joined(f, items, " or ", |x| matches!(x, Filter::Or(_))),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    items: &[Filter],
    sep: &str,
    needs_parens: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        if needs_parens(item) {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

/// Quotes `s` for an error message, truncated to keep details short.
pub(crate) fn quote_truncated(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// Human-readable description of a `scim_v2` parse error, with positions.
pub(crate) fn describe_parse_error(e: &scim_v2::filter::ParseError) -> String {
    use scim_v2::filter::ParseError as P;
    fn expected(list: &[String]) -> String {
        if list.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = list.iter().map(|s| s.trim_matches('"')).collect();
            format!("; expected one of: {}", names.join(", "))
        }
    }
    match e {
        P::InvalidToken { location } => format!("invalid token at position {location}"),
        P::UnrecognizedEof {
            location,
            expected: exp,
        } => {
            format!(
                "unexpected end of input at position {location}{}",
                expected(exp)
            )
        }
        P::UnrecognizedToken {
            token: (start, tok, _),
            expected: exp,
        } => format!("unexpected `{tok}` at position {start}{}", expected(exp)),
        P::ExtraToken {
            token: (start, tok, _),
        } => format!("unexpected extra `{tok}` at position {start}"),
        P::User { error } => error.to_string(),
    }
}

/// Pre-parse normalisation (see the module docs). Returns the input
/// unchanged when nothing needs rewriting.
fn prepare(input: &str) -> String {
    if !input.contains('(') && !input.contains("].") {
        return input.to_string();
    }
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len() + 16);
    // Byte offsets in `out` just after each currently open '['.
    let mut open_brackets: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                let end = string_end(&chars, i);
                out.extend(&chars[i..end]);
                i = end;
                continue;
            }
            '[' => {
                out.push('[');
                open_brackets.push(out.len());
            }
            '(' => {
                if ends_with_not_keyword(&out) {
                    out.push(' ');
                }
                out.push('(');
            }
            ']' => {
                let open = open_brackets.pop();
                if let (Some(open), Some((suffix, next))) =
                    (open, trailing_comparison(&chars, i + 1))
                {
                    let inner = out.split_off(open);
                    out.push('(');
                    out.push_str(&inner);
                    out.push_str(") and ");
                    out.push_str(&suffix);
                    out.push(']');
                    i = next;
                    continue;
                }
                out.push(']');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Index just past the string literal starting at `start` (a `"`).
fn string_end(chars: &[char], start: usize) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '"' => return j + 1,
            _ => j += 1,
        }
    }
    chars.len()
}

fn ends_with_not_keyword(out: &str) -> bool {
    let b = out.as_bytes();
    if b.len() < 3 || !b[b.len() - 3..].eq_ignore_ascii_case(b"not") {
        return false;
    }
    b.len() == 3 || matches!(b[b.len() - 4], b' ' | b'(' | b'[' | b'\t')
}

/// After a `]`, recognises `.sub op value` (or `.sub pr`) and returns the
/// comparison text `sub op value` and the index just past it.
fn trailing_comparison(chars: &[char], start: usize) -> Option<(String, usize)> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$';
    if chars.get(start) != Some(&'.') {
        return None;
    }
    let mut j = start + 1;
    let name_start = j;
    while j < chars.len() && is_name(chars[j]) {
        j += 1;
    }
    let name: String = chars[name_start..j].iter().collect();
    let ws = |mut k: usize| {
        while k < chars.len() && chars[k].is_whitespace() {
            k += 1;
        }
        k
    };
    let op_start = ws(j);
    if op_start == j || name.is_empty() {
        return None;
    }
    let mut k = op_start;
    while k < chars.len() && chars[k].is_ascii_alphabetic() {
        k += 1;
    }
    let op: String = chars[op_start..k].iter().collect();
    if op.eq_ignore_ascii_case("pr") {
        return Some((format!("{name} pr"), k));
    }
    if !CompareOp::ALL
        .iter()
        .any(|o| o.as_str().eq_ignore_ascii_case(&op))
    {
        return None;
    }
    let v_start = ws(k);
    if v_start == k || v_start >= chars.len() {
        return None;
    }
    let v_end = if chars[v_start] == '"' {
        string_end(chars, v_start)
    } else {
        let mut e = v_start;
        while e < chars.len()
            && !chars[e].is_whitespace()
            && !matches!(chars[e], ')' | ']' | '(' | '[')
        {
            e += 1;
        }
        e
    };
    let value: String = chars[v_start..v_end].iter().collect();
    Some((format!("{name} {op} {value}"), v_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Filter {
        Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_prints_canonical_forms() {
        // (input, canonical printed form)
        let cases = [
            (r#"userName eq "bjensen""#, r#"userName eq "bjensen""#),
            (r#"userName Eq "bjensen""#, r#"userName eq "bjensen""#),
            (
                r#"name.familyName co "O'Malley""#,
                r#"name.familyName co "O'Malley""#,
            ),
            (r#"title pr"#, "title pr"),
            (
                r#"a eq "x" or b eq "y" and c eq "z""#,
                r#"a eq "x" or b eq "y" and c eq "z""#,
            ),
            (
                r#"(a eq "x" or b eq "y") and c eq "z""#,
                r#"(a eq "x" or b eq "y") and c eq "z""#,
            ),
            (r#"not (a pr) and b pr"#, "not (a pr) and b pr"),
            (r#"not(a pr)"#, "not (a pr)"),
            (r#"NOT(a pr)"#, "not (a pr)"),
            (
                r#"userType eq "Employee" and not(emails co "x.org")"#,
                r#"userType eq "Employee" and not (emails co "x.org")"#,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            ),
            (
                r#"emails[type eq "work"].value eq "a@x.com""#,
                r#"emails[type eq "work" and value eq "a@x.com"]"#,
            ),
            (
                r#"emails[type eq "work" or type eq "home"].value ew "x.com""#,
                r#"emails[(type eq "work" or type eq "home") and value ew "x.com"]"#,
            ),
            (r#"emails[type eq "not(x)"]"#, r#"emails[type eq "not(x)"]"#),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            ),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            ),
            ("active eq true", "active eq true"),
            ("x eq 42", "x eq 42"),
            ("x eq null", "x eq null"),
            (r#"a eq "q\"uote\\""#, r#"a eq "q\"uote\\""#),
        ];
        for (input, printed) in cases {
            let f = p(input);
            assert_eq!(f.to_string(), printed, "{input}");
            assert_eq!(p(printed), f, "reparse of {printed}");
        }
    }

    #[test]
    fn precedence_is_not_over_and_over_or() {
        let f = p(r#"a pr or b pr and c pr"#);
        let Filter::Or(items) = &f else {
            panic!("expected or, got {f:?}")
        };
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Filter::And(v) if v.len() == 2));
    }

    #[test]
    fn parse_errors_are_invalid_filter_with_position() {
        let cases = [
            ("userName eq", "position"),
            ("userName eq \"x", "position"),
            ("userName zz \"x\"", "zz"),
            ("(userName eq \"x\"", "end of input"),
            ("a.b.c pr", "more than one sub-attribute"),
            ("", "position"),
            ("userName eq \"x\" junk", "junk"),
        ];
        for (input, needle) in cases {
            let e = Filter::parse(input).expect_err(input);
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter));
            assert!(e.detail.contains(needle), "{input}: {}", e.detail);
        }
    }

    #[test]
    fn validation_rejects_type_mismatches() {
        let reg = SchemaRegistry::standard();
        let bad = [
            "active gt true",
            "active co \"t\"",
            "active eq \"maybe\"",
            "meta.lastModified gt \"yesterday\"",
            "userName eq true",
            "userName gt null",
            "name eq \"x\"",
            "x509Certificates.value gt \"AA\"",
            "userName[value eq \"x\"]",
        ];
        for s in bad {
            let e = p(s).validate(reg).expect_err(s);
            assert_eq!(e.scim_type, Some(crate::ScimType::InvalidFilter), "{s}");
        }
        let good = [
            "active eq true",
            "active eq \"False\"",
            "meta.lastModified ge \"2011-05-13T04:42:34Z\"",
            "emails co \"@example.com\"",
            "emails[type eq \"work\" and primary eq true]",
            "userName eq null",
            "customThing gt 3",
        ];
        for s in good {
            assert!(p(s).validate(reg).is_ok(), "{s}");
        }
    }

    #[test]
    fn indexed_equality_is_recognised() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (r#"userName eq "a@x.com""#, Some(("userName", "a@x.com"))),
            (r#"USERNAME eq "a@x.com""#, Some(("userName", "a@x.com"))),
            (r#"externalId eq "e1""#, Some(("externalId", "e1"))),
            (r#"id eq "42""#, Some(("id", "42"))),
            (r#"displayName eq "Ops""#, Some(("displayName", "Ops"))),
            (
                r#"emails[type eq "work"].value eq "w@x.com""#,
                Some(("emails.value", "w@x.com")),
            ),
            (
                r#"emails[value eq "w@x.com"]"#,
                Some(("emails.value", "w@x.com")),
            ),
            (
                r#"emails.value eq "w@x.com""#,
                Some(("emails.value", "w@x.com")),
            ),
            (r#"members[value eq "u1"]"#, Some(("members.value", "u1"))),
            (
                r#"active eq true and userName eq "u""#,
                Some(("userName", "u")),
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "u""#,
                Some(("userName", "u")),
            ),
            (r#"userName sw "a""#, None),
            (r#"userName eq "a" or userName eq "b""#, None),
            (r#"not (userName eq "a")"#, None),
            (r#"title eq "boss""#, None),
            (r#"emails[type eq "work"]"#, None),
        ];
        for (s, want) in cases {
            let got = p(s).as_indexed_eq().map(|(p, v)| (p.to_string(), v));
            let want = want.map(|(a, b)| (a.to_string(), b.to_string()));
            assert_eq!(got, want, "{s}");
        }
    }
}
