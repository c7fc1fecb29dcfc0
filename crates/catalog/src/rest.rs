//! The declarative REST connector's description of one app's user API, as
//! data: the `[rest]` table of a catalog record. The connector
//! (`roster_connectors::rest`) reads it as it is; the loader checks it
//! ([`check`]) so a typo is a `CAT-0010` problem at load, not a failed
//! request at 3 a.m.
//!
//! ```toml
//! [rest]
//! source = "users-api"                  # a key of [sources]
//! base_url = "https://api.zoom.us/v2"   # a connection's base_url wins
//! auth = { kind = "oauth2-client-credentials", token_url = "https://zoom.us/oauth/token",
//!          grant_type = "account_credentials", params = ["account_id"] }
//!
//! [rest.list]
//! path = "/users"
//! query = { status = "active" }
//! items = "/users"                      # JSON pointer to the array of users
//! paging = { style = "cursor", param = "next_page_token", next = "/next_page_token",
//!            size_param = "page_size" }
//! page_size = 300
//!
//! [rest.fields]
//! id = "/id"
//! email = "/email"
//! active = { pointer = "/status", active = ["active"], inactive = ["inactive"] }
//! attributes = { first_name = "/first_name", last_name = "/last_name" }
//!
//! [rest.create]
//! method = "POST"
//! path = "/users"
//! body = { action = "ssoCreate", user_info = { email = "{email}", type = 1, first_name = "{first_name}" } }
//! id = "/id"
//!
//! [rest.deactivate]
//! method = "PUT"
//! path = "/users/{id}/status"
//! body = { action = "deactivate" }
//!
//! [[rest.errors]]
//! status = 409
//! kind = "exists"
//! ```
//!
//! Templates: `{name}` in paths, query values, base URLs and body strings
//! is replaced by `id` (the account key), `email`, `page_size`, an
//! attribute of the action, or a connection option of that name. A body
//! string that is exactly one `{name}` with no value is left out (its key
//! dropped), so an unset attribute is never sent as an empty string.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the connector authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestAuth {
    /// `bearer` (the secret as a bearer token), `basic` (the connection's
    /// `username` and the secret) or `oauth2-client-credentials` (the
    /// connection's `username` as client id, the secret as client secret,
    /// exchanged at `token_url` for a bearer token).
    pub kind: String,
    /// The token endpoint (`oauth2-client-credentials`); a connection's
    /// `token_url` option wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// `grant_type` sent to the token endpoint (default
    /// `client_credentials`; Zoom's server-to-server apps use
    /// `account_credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Connection options sent to the token endpoint as form fields of the
    /// same name (Zoom: `account_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// `scope` sent to the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl RestAuth {
    pub const KINDS: [&'static str; 3] = ["bearer", "basic", "oauth2-client-credentials"];
}

/// How the list endpoint pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestPaging {
    /// `none` (one answer holds everything), `cursor` (a token from the body
    /// at `next`, sent back as query `param`: page tokens, `after`
    /// cursors, Asana's offset tokens), `next-url` (a full URL from the body
    /// at `next`), `link-header` (RFC 8288 `Link: <...>; rel="next"`),
    /// `offset` (a numeric item offset in `param`) or `page` (a page number
    /// in `param`).
    pub style: String,
    /// The query parameter carrying the cursor, offset or page number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// JSON pointer to the next cursor or URL in the body; empty, null or
    /// absent ends the listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// JSON pointer to a boolean that says whether more pages follow
    /// (Zendesk's `meta.has_more`: its `after_cursor` is set on the last
    /// page too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<String>,
    /// The query parameter for the page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    /// JSON pointer to the app's total count, checked by the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
    /// The first offset (default 0) or page number (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

impl RestPaging {
    pub const STYLES: [&'static str; 6] = [
        "none",
        "cursor",
        "next-url",
        "link-header",
        "offset",
        "page",
    ];
}

/// The list call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestList {
    /// A path template under the base URL.
    pub path: String,
    /// Fixed query parameters (templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// JSON pointer to the array of users (`""`: the body is the array).
    pub items: String,
    pub paging: RestPaging,
    /// Users per page to ask for (the driver's hint is clamped to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// One write call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestCall {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// A path template under the base URL (`{id}` = the account key).
    pub path: String,
    /// The JSON body template (none: no body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Create: JSON pointer to the new user's id in the answer. When set,
    /// an answer without it is a protocol error (retried); unset, the next
    /// read links the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl RestCall {
    pub const METHODS: [&'static str; 4] = ["POST", "PUT", "PATCH", "DELETE"];
}

/// How a status value maps to active or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestStatus {
    pub pointer: String,
    /// Values (as text: `"true"`, `"active"`) meaning active.
    #[serde(default)]
    pub active: Vec<String>,
    /// Values meaning deactivated. A value in neither list is a protocol
    /// error: the connector never guesses that someone is inactive.
    #[serde(default)]
    pub inactive: Vec<String>,
}

/// Where a vendor user's fields are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestFields {
    /// JSON pointer to the user's id (the account key).
    pub id: String,
    /// JSON pointer to the user's email address (or userName).
    pub email: String,
    /// Without it, every listed user is active (apps whose removal takes
    /// the user off the list: Asana, HubSpot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<RestStatus>,
    /// roster attribute name → JSON pointer (`display_name = "/name"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One error mapping: an HTTP status (and optionally text in the body) to
/// what it means for roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestErrorRule {
    pub status: u16,
    /// Only when the body contains this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// `exists` (a create whose user is already there: skipped, the next
    /// read links it), `gone` (the user no longer exists: a deactivation is
    /// skipped), `invalid` (refused, not retryable), `unauthorized`,
    /// `rate-limited` or `transient` (retryable).
    pub kind: String,
}

impl RestErrorRule {
    pub const KINDS: [&'static str; 6] = [
        "exists",
        "gone",
        "invalid",
        "unauthorized",
        "rate-limited",
        "transient",
    ];
}

/// One documented request window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestWindow {
    pub requests: u32,
    pub seconds: u32,
}

/// The app's rate-limit headers and documented windows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestRateLimit {
    /// Header with the window's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Header with the requests left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<String>,
    /// Header with when the window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<String>,
    /// What `reset` holds: `seconds` (from now, the default),
    /// `milliseconds` (from now) or `epoch-seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_unit: Option<String>,
    /// The documented windows; all apply at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<RestWindow>,
}

impl RestRateLimit {
    pub const RESET_UNITS: [&'static str; 3] = ["seconds", "milliseconds", "epoch-seconds"];
}

/// The whole `[rest]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestClient {
    /// The source (a key of `[sources]`) these shapes follow from.
    pub source: String,
    /// The API base (template: `https://{subdomain}.zendesk.com`); a
    /// connection's `base_url` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    pub auth: RestAuth,
    pub list: RestList,
    pub fields: RestFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<RestCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<RestCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivate: Option<RestCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactivate: Option<RestCall>,
    /// JSON pointer whose presence in a 2xx body means the answer is an
    /// error (an error inside an HTTP 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_in_body: Option<String>,
    /// JSON pointer to the vendor's message in an error body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RestErrorRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RestRateLimit>,
}

fn pointer_ok(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

/// Whether every `{` in a template closes with a `}` around a name of
/// letters, digits, `_`, `-` and `.`.
fn template_ok(t: &str) -> bool {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return false;
        };
        let name = &after[..close];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return false;
        }
        rest = &after[close + 1..];
    }
    !rest.contains('}')
}

/// Every problem with a `[rest]` table, as `(field, reason)`; `sources` are
/// the record's source keys.
pub fn check(rest: &RestClient, sources: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut bad = |field: &str, reason: String| out.push((format!("rest.{field}"), reason));
    let one_of = |v: &str, allowed: &[&str]| allowed.contains(&v);
    if !sources.contains(&rest.source.as_str()) {
        bad(
            "source",
            format!(
                "source {:?} is not in [sources] (known: {})",
                rest.source,
                sources.join(", ")
            ),
        );
    }
    if let Some(b) = &rest.base_url
        && (!template_ok(b) || !(b.starts_with("https://") || b.starts_with("http://")))
    {
        bad(
            "base_url",
            format!("expected an http(s) URL template, got {b:?}"),
        );
    }
    let a = &rest.auth;
    if !one_of(&a.kind, &RestAuth::KINDS) {
        bad(
            "auth.kind",
            format!(
                "expected one of {}, got {:?}",
                RestAuth::KINDS.join(", "),
                a.kind
            ),
        );
    }
    if a.kind == "oauth2-client-credentials" && a.token_url.is_none() {
        bad(
            "auth.token_url",
            "oauth2-client-credentials needs the token endpoint".into(),
        );
    }
    let l = &rest.list;
    if !l.path.starts_with('/') || !template_ok(&l.path) {
        bad(
            "list.path",
            format!(
                "expected a path template starting with '/', got {:?}",
                l.path
            ),
        );
    }
    for (k, v) in &l.query {
        if !template_ok(v) {
            bad(
                &format!("list.query.{k}"),
                format!("malformed template {v:?}"),
            );
        }
    }
    if !pointer_ok(&l.items) {
        bad(
            "list.items",
            format!(
                "expected a JSON pointer (\"/users\" or \"\"), got {:?}",
                l.items
            ),
        );
    }
    let p = &l.paging;
    if !one_of(&p.style, &RestPaging::STYLES) {
        bad(
            "list.paging.style",
            format!(
                "expected one of {}, got {:?}",
                RestPaging::STYLES.join(", "),
                p.style
            ),
        );
    }
    let needs_param = matches!(p.style.as_str(), "cursor" | "offset" | "page");
    if needs_param && p.param.is_none() {
        bad(
            "list.paging.param",
            format!("paging style {} needs the query parameter", p.style),
        );
    }
    if matches!(p.style.as_str(), "cursor" | "next-url") && p.next.is_none() {
        bad(
            "list.paging.next",
            format!(
                "paging style {} needs the pointer to the next cursor or URL",
                p.style
            ),
        );
    }
    for (f, v) in [
        ("next", &p.next),
        ("has_more", &p.has_more),
        ("total", &p.total),
    ] {
        if let Some(v) = v
            && !pointer_ok(v)
        {
            bad(
                &format!("list.paging.{f}"),
                format!("expected a JSON pointer, got {v:?}"),
            );
        }
    }
    let f = &rest.fields;
    for (name, v) in [("id", &f.id), ("email", &f.email)] {
        if v.is_empty() || !pointer_ok(v) {
            bad(
                &format!("fields.{name}"),
                format!("expected a JSON pointer, got {v:?}"),
            );
        }
    }
    if let Some(s) = &f.active {
        if !pointer_ok(&s.pointer) || s.pointer.is_empty() {
            bad(
                "fields.active.pointer",
                format!("expected a JSON pointer, got {:?}", s.pointer),
            );
        }
        if s.active.is_empty() || s.inactive.is_empty() {
            bad(
                "fields.active",
                "list both the active and the inactive values: a value in neither is refused, never guessed".into(),
            );
        }
        if s.active.iter().any(|v| s.inactive.contains(v)) {
            bad(
                "fields.active",
                "a value is both active and inactive".into(),
            );
        }
    }
    for (k, v) in &f.attributes {
        if !pointer_ok(v) || v.is_empty() {
            bad(
                &format!("fields.attributes.{k}"),
                format!("expected a JSON pointer, got {v:?}"),
            );
        }
    }
    for (name, call) in [
        ("create", &rest.create),
        ("update", &rest.update),
        ("deactivate", &rest.deactivate),
        ("reactivate", &rest.reactivate),
    ] {
        let Some(c) = call else { continue };
        if !one_of(&c.method, &RestCall::METHODS) {
            bad(
                &format!("{name}.method"),
                format!(
                    "expected one of {}, got {:?}",
                    RestCall::METHODS.join(", "),
                    c.method
                ),
            );
        }
        if !c.path.starts_with('/') || !template_ok(&c.path) {
            bad(
                &format!("{name}.path"),
                format!(
                    "expected a path template starting with '/', got {:?}",
                    c.path
                ),
            );
        }
        if name != "create" && !c.path.contains("{id}") && c.body.is_none() {
            bad(
                &format!("{name}.path"),
                "names no user: put {id} in the path or the body".into(),
            );
        }
        if let Some(id) = &c.id
            && !pointer_ok(id)
        {
            bad(
                &format!("{name}.id"),
                format!("expected a JSON pointer, got {id:?}"),
            );
        }
    }
    if rest.update.is_some() && rest.update.as_ref().and_then(|u| u.body.as_ref()).is_none() {
        bad(
            "update.body",
            "an update needs a body template naming the attributes it writes".into(),
        );
    }
    for (k, v) in [
        ("error_in_body", &rest.error_in_body),
        ("error_message", &rest.error_message),
    ] {
        if let Some(v) = v
            && (!pointer_ok(v) || v.is_empty())
        {
            bad(k, format!("expected a JSON pointer, got {v:?}"));
        }
    }
    for (i, e) in rest.errors.iter().enumerate() {
        if !one_of(&e.kind, &RestErrorRule::KINDS) {
            bad(
                &format!("errors[{i}].kind"),
                format!(
                    "expected one of {}, got {:?}",
                    RestErrorRule::KINDS.join(", "),
                    e.kind
                ),
            );
        }
        if !(400..=599).contains(&e.status) {
            bad(
                &format!("errors[{i}].status"),
                format!("expected an HTTP error status, got {}", e.status),
            );
        }
    }
    if let Some(r) = &rest.rate_limit {
        if let Some(u) = &r.reset_unit
            && !one_of(u, &RestRateLimit::RESET_UNITS)
        {
            bad(
                "rate_limit.reset_unit",
                format!(
                    "expected one of {}, got {u:?}",
                    RestRateLimit::RESET_UNITS.join(", ")
                ),
            );
        }
        for (i, w) in r.windows.iter().enumerate() {
            if w.requests == 0 || w.seconds == 0 {
                bad(
                    &format!("rate_limit.windows[{i}]"),
                    "requests and seconds must be above 0".into(),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RestClient {
        toml::from_str(text).unwrap()
    }

    const GOOD: &str = r#"
source = "doc"
base_url = "https://{subdomain}.example.com"
auth = { kind = "bearer" }
errors = [{ status = 409, kind = "exists" }]
[list]
path = "/users"
items = "/users"
paging = { style = "cursor", param = "after", next = "/next" }
[fields]
id = "/id"
email = "/email"
active = { pointer = "/status", active = ["active"], inactive = ["off"] }
[deactivate]
method = "PUT"
path = "/users/{id}"
body = { status = "off" }
"#;

    #[test]
    fn a_good_table_passes_and_each_mistake_is_named() {
        assert_eq!(
            check(&parse(GOOD), &["doc"]),
            Vec::<(String, String)>::new()
        );
        let fields = |text: &str| -> Vec<String> {
            check(&parse(text), &["doc"])
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(
            fields(&GOOD.replace("\"cursor\"", "\"sideways\"")),
            ["rest.list.paging.style"]
        );
        assert_eq!(
            fields(&GOOD.replace("param = \"after\", ", "")),
            ["rest.list.paging.param"]
        );
        assert_eq!(
            fields(&GOOD.replace("items = \"/users\"", "items = \"users\"")),
            ["rest.list.items"]
        );
        assert_eq!(
            fields(&GOOD.replace("kind = \"bearer\"", "kind = \"oauth2-client-credentials\"")),
            ["rest.auth.token_url"]
        );
        assert_eq!(
            fields(&GOOD.replace("inactive = [\"off\"]", "inactive = []")),
            ["rest.fields.active"]
        );
        assert_eq!(
            fields(&GOOD.replace("method = \"PUT\"", "method = \"GET\"")),
            ["rest.deactivate.method"]
        );
        assert_eq!(
            fields(&GOOD.replace("kind = \"exists\"", "kind = \"fine\"")),
            ["rest.errors[0].kind"]
        );
        assert_eq!(
            fields(&GOOD.replace("/users/{id}", "/users/{id")),
            ["rest.deactivate.path"]
        );
        assert_eq!(check(&parse(GOOD), &["other"])[0].0, "rest.source");
        // Unknown keys are refused by the parser itself.
        assert!(
            toml::from_str::<RestClient>(&GOOD.replace("[fields]", "[fields]\nactiv = 1")).is_err()
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(template_ok("/workspaces/{workspace_gid}/users"));
        assert!(template_ok("plain"));
        assert!(!template_ok("/users/{id"));
        assert!(!template_ok("/users/id}"));
        assert!(!template_ok("/users/{}"));
        assert!(!template_ok("/users/{a b}"));
    }
}
