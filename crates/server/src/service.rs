//! The SCIM operations, independent of HTTP: read, list/search, create,
//! replace, patch, delete. The HTTP handlers and Bulk both call these.
//!
//! # Writes
//!
//! Every write is one store transaction. PATCH and PUT read the resource,
//! compute the new body in memory (PATCH through `roster_scim::apply_patch`,
//! which is all-or-nothing), then write it *only if the stored version is
//! still the one read*. Without `If-Match`, a lost race re-reads and
//! re-applies (a few times); with `If-Match`, it is `412`. Writers of the
//! same resource in this process queue on a striped lock first, so they
//! rarely race at all. The write's audit record (actor
//! `scim:<connection>:<token prefix>`) and, for a user, the typed gateway
//! intent computed from the new body ([`to_write`]) commit in the same
//! transaction, through the group-commit [`writer`](crate::writer). After the commit
//! the users concerned are announced to the
//! [`InboundSink`](crate::InboundSink).
//!
//! # Lists
//!
//! A filter the indexes can answer (equality on id, userName, externalId,
//! displayName, emails.value or members.value, alone, in a conjunction, or
//! in a disjunction of such) is answered from the database; the candidates
//! are then checked with the full filter, so extra conditions and case
//! rules hold exactly. Any other filter scans the connection in creation
//! order, at most [`ScimConfig::scan_limit`](crate::ScimConfig) resources.
//! Without filter and sort, a page is read with `LIMIT/OFFSET` and the
//! total with `COUNT(*)`. Results are always in creation order unless
//! sorted (sorting is stable), so paging is stable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use roster_scim::list::SortSpec;
use roster_scim::path::AttrPath;
use roster_scim::projection::split_attribute_list;
use roster_scim::{Filter, ListResponse, Paging, ScimError, apply_patch, normalize, project};
use roster_store::{
    ScimGroupRef, ScimHead, ScimIndex, ScimKind, ScimMember, ScimResource, ScimStoreError,
    ScimWriteJob, ScimWriteOp, ScimWriteResult, scim_fold,
};
use serde_json::Value;

use crate::cache::Rendered;

use crate::error::ApiError;
use crate::resource::{Relations, employee_number, render, to_write};
use crate::sink::{ChangeKind, GroupRef, ScimChange};
use crate::state::Inner;
use crate::tokens::Caller;

/// How many times a write retries after losing a race without `If-Match`.
const WRITE_RETRIES: usize = 5;
/// Resources read per query while scanning.
const SCAN_PAGE: usize = 2_000;

/// An `If-Match` / `If-None-Match` header, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// `*`
    Any,
    /// The versions named (weak comparison: `W/"3"` and `"3"` both name 3).
    /// ETags that are not ours parse to nothing and match no version.
    Versions(Vec<i64>),
}

impl Precondition {
    /// Parses a header value.
    pub fn parse(raw: &str) -> Precondition {
        let mut versions = Vec::new();
        for tag in raw.split(',').map(str::trim) {
            if tag == "*" {
                return Precondition::Any;
            }
            let t = tag.strip_prefix("W/").unwrap_or(tag);
            let t = t.trim_matches('"');
            if let Ok(v) = t.parse::<i64>() {
                versions.push(v);
            }
        }
        Precondition::Versions(versions)
    }

    /// Whether the resource at `version` satisfies it.
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Versions(v) => v.contains(&version),
        }
    }
}

/// List parameters, from a query string or a `.search` body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<Vec<String>>,
    pub excluded_attributes: Option<Vec<String>>,
}

impl ListQuery {
    /// From `?filter=...&startIndex=...` pairs (names case-insensitive).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ListQuery {
        let mut q = ListQuery::default();
        for (k, v) in pairs {
            let v = v.to_string();
            match k.to_ascii_lowercase().as_str() {
                "filter" => q.filter = Some(v),
                "sortby" => q.sort_by = Some(v),
                "sortorder" => q.sort_order = Some(v),
                "startindex" => q.start_index = Some(v),
                "count" => q.count = Some(v),
                "attributes" => q.attributes = Some(split_attribute_list(&v)),
                "excludedattributes" => q.excluded_attributes = Some(split_attribute_list(&v)),
                _ => {}
            }
        }
        q
    }

    /// From a `SearchRequest` body (RFC 7644 §3.4.3).
    pub fn from_search_body(body: &Value) -> Result<ListQuery, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("search request must be a JSON object"))?;
        let get = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let number = |name: &str| -> Result<Option<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an integer"
                ))),
            }
        };
        let list = |name: &str| -> Result<Option<Vec<String>>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(split_attribute_list(s))),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            ScimError::invalid_value(format!("{name} must list strings"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an array of strings"
                ))),
            }
        };
        Ok(ListQuery {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: number("startIndex")?,
            count: number("count")?,
            attributes: list("attributes")?,
            excluded_attributes: list("excludedAttributes")?,
        })
    }
}

/// A projection request (`attributes` / `excludedAttributes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Projection {
    pub attributes: Option<Vec<String>>,
    pub excluded: Option<Vec<String>>,
}

impl Projection {
    /// Whether it asks for the default representation (no `attributes`,
    /// no `excludedAttributes`), which kept renderings hold serialized.
    pub(crate) fn is_default(&self) -> bool {
        self.attributes.as_ref().is_none_or(Vec::is_empty)
            && self.excluded.as_ref().is_none_or(Vec::is_empty)
    }

    /// Applies it to a full resource.
    pub(crate) fn apply(&self, v: &Value, inner: &Inner) -> Value {
        project(
            v,
            self.attributes.as_deref().filter(|a| !a.is_empty()),
            self.excluded.as_deref(),
            inner.registry,
        )
    }

    /// Whether the (top-level) attribute `name` can appear in the output,
    /// so whether it is worth loading.
    fn wants(&self, name: &str) -> bool {
        let names = |list: &[String]| -> bool {
            list.iter().any(|e| {
                let head = e.split('.').next().unwrap_or(e);
                let last = head.rsplit(':').next().unwrap_or(head);
                last.eq_ignore_ascii_case(name)
            })
        };
        if let Some(ex) = &self.excluded
            && ex.iter().any(|e| {
                let last = e.rsplit(':').next().unwrap_or(e);
                last.eq_ignore_ascii_case(name)
            })
        {
            return false;
        }
        match &self.attributes {
            Some(a) if !a.is_empty() => names(a),
            _ => true,
        }
    }
}

/// A write's result: the stored resource rendered in full.
#[derive(Clone, Debug)]
pub struct Written {
    pub resource: Value,
    pub version: i64,
    pub id: String,
}

fn relation_name(kind: ScimKind) -> &'static str {
    match kind {
        ScimKind::User => "groups",
        ScimKind::Group => "members",
    }
}

/// Whether a filter refers to the top-level attribute `name`.
fn mentions(f: &Filter, name: &str) -> bool {
    let p = |a: &AttrPath| a.name.eq_ignore_ascii_case(name);
    match f {
        Filter::Compare { path, .. } | Filter::Present(path) => p(path),
        Filter::ValuePath { attr, .. } => p(attr),
        Filter::And(items) | Filter::Or(items) => items.iter().any(|i| mentions(i, name)),
        Filter::Not(inner) => mentions(inner, name),
    }
}

fn index_for(kind: ScimKind, path: &AttrPath) -> Option<ScimIndex> {
    let n = path.name.as_str();
    let sub = path.sub_attr.as_deref();
    let is = |a: &str| n.eq_ignore_ascii_case(a);
    match (kind, sub) {
        (_, None) if is("id") => Some(ScimIndex::Id),
        (_, None) if is("externalId") => Some(ScimIndex::ExternalId),
        (_, None) if is("displayName") => Some(ScimIndex::DisplayName),
        (ScimKind::User, None) if is("userName") => Some(ScimIndex::UserName),
        (ScimKind::User, Some(s)) if is("emails") && s.eq_ignore_ascii_case("value") => {
            Some(ScimIndex::Email)
        }
        (ScimKind::Group, Some(s)) if is("members") && s.eq_ignore_ascii_case("value") => {
            Some(ScimIndex::Member)
        }
        _ => None,
    }
}

/// The index lookups whose union contains every match of `f`, if any.
fn index_plan(f: &Filter, kind: ScimKind) -> Option<Vec<(ScimIndex, String)>> {
    match f {
        Filter::Or(items) => {
            let mut all = Vec::new();
            for i in items {
                all.extend(index_plan(i, kind)?);
            }
            Some(all)
        }
        Filter::And(items) => items.iter().find_map(|i| index_plan(i, kind)),
        other => {
            let (path, value) = other.as_indexed_eq()?;
            Some(vec![(index_for(kind, &path)?, value)])
        }
    }
}

impl Inner {
    /// Loads the membership data of `rs` (all of one kind).
    async fn relations(
        &self,
        connection: &str,
        kind: ScimKind,
        rs: &[&ScimResource],
    ) -> Result<Rel, ApiError> {
        let ids: Vec<String> = rs.iter().map(|r| r.id.clone()).collect();
        if ids.is_empty() {
            return Ok(Rel::None);
        }
        Ok(match kind {
            ScimKind::Group => Rel::Members(self.store.scim_members(connection, &ids).await?),
            ScimKind::User => Rel::Groups(self.store.scim_groups_of(connection, &ids).await?),
        })
    }

    /// One resource rendered in full (membership loaded when `with_rel`).
    pub(crate) async fn read(
        &self,
        connection: &str,
        kind: ScimKind,
        id: &str,
        base: &str,
        with_rel: bool,
    ) -> Result<(ScimResource, Value), ApiError> {
        let r = self
            .store
            .scim_get(connection, kind, id)
            .await?
            .ok_or_else(|| ScimError::not_found(format!("{kind} {id} not found")))?;
        let rel = if with_rel {
            self.relations(connection, kind, &[&r]).await?
        } else {
            Rel::None
        };
        let v = rel.render(&r, base);
        Ok((r, v))
    }

    /// GET `/{Users|Groups}/{id}`: the resource rendered in full, from
    /// the cache when the store says it is still at the kept head (a check
    /// batched with concurrent ones, see [`heads`](crate::heads); no body
    /// sent or parsed), else read, rendered and kept.
    pub(crate) async fn get(
        &self,
        connection: &str,
        kind: ScimKind,
        id: &str,
        base: &str,
    ) -> Result<Arc<Rendered>, ApiError> {
        let not_found = || ScimError::not_found(format!("{kind} {id} not found"));
        if let Some(kept) = self
            .cache
            .get(connection, kind, id)
            .filter(|r| r.base == base)
        {
            match self.heads.head(&self.store, connection, kind, id).await {
                Ok(Some(h)) if kept.is(h.version, h.modified_ms, base) => return Ok(kept),
                Ok(None) => return Err(not_found().into()),
                // Changed, or the check failed: read it.
                Ok(Some(_)) | Err(()) => {}
            }
        }
        let r = self
            .store
            .scim_get(connection, kind, id)
            .await?
            .ok_or_else(not_found)?;
        let rel = self.relations(connection, kind, &[&r]).await?;
        let out = self.rendering(&r, &rel, base);
        self.cache.put(connection, kind, id, out.clone());
        Ok(out)
    }

    /// A resource rendered in full with its membership, and its default
    /// representation serialized, as the cache keeps them.
    fn rendering(&self, r: &ScimResource, rel: &Rel, base: &str) -> Arc<Rendered> {
        let value = rel.render(r, base);
        let bytes = serde_json::to_vec(&project(&value, None, None, self.registry))
            .unwrap_or_default()
            .into();
        Arc::new(Rendered {
            version: r.version,
            modified_ms: r.modified_ms,
            base: base.to_string(),
            value,
            bytes,
            etag: axum::http::HeaderValue::from_str(&crate::resource::etag(r.version)).ok(),
        })
    }

    /// The renderings of the resources at `heads` (in that order): those
    /// kept at the same head from the cache, the rest loaded in two
    /// statements (bodies, membership), rendered and kept. A resource
    /// deleted since its head was read is left out.
    async fn rendered_many(
        &self,
        connection: &str,
        kind: ScimKind,
        heads: &[ScimHead],
        base: &str,
    ) -> Result<Vec<Arc<Rendered>>, ApiError> {
        let mut out: Vec<Option<Arc<Rendered>>> = heads
            .iter()
            .map(|h| {
                self.cache
                    .get(connection, kind, &h.id)
                    .filter(|r| r.is(h.version, h.modified_ms, base))
            })
            .collect();
        let missing: Vec<String> = heads
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(h, _)| h.id.clone())
            .collect();
        if !missing.is_empty() {
            let rows = self.store.scim_get_many(connection, kind, &missing).await?;
            let refs: Vec<&ScimResource> = rows.iter().collect();
            let rel = self.relations(connection, kind, &refs).await?;
            let mut fresh: HashMap<&str, Arc<Rendered>> = HashMap::new();
            for r in &rows {
                let x = self.rendering(r, &rel, base);
                self.cache.put(connection, kind, &r.id, x.clone());
                fresh.insert(r.id.as_str(), x);
            }
            for (h, o) in heads.iter().zip(out.iter_mut()) {
                if o.is_none() {
                    *o = fresh.remove(h.id.as_str());
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Sets each group member's `type` from what it is: a User or Group of
    /// this connection. A member naming nothing here yet is left without
    /// one: the store resolves it in the write's transaction (by id, or as
    /// the user whose `externalId` it is) or keeps it pending until that
    /// user arrives (see `roster_store`'s `scim/pending.rs`). Returns
    /// whether every member was found.
    async fn resolve_members(
        &self,
        connection: &str,
        members: &mut [ScimMember],
    ) -> Result<bool, ApiError> {
        if members.is_empty() {
            return Ok(true);
        }
        let ids: Vec<String> = members.iter().map(|m| m.value.clone()).collect();
        let kinds = self.store.scim_kinds_of(connection, &ids).await?;
        let mut all = true;
        for m in members.iter_mut() {
            m.member_type = kinds.get(&m.value).map(|k| k.as_str().to_string());
            all &= m.member_type.is_some();
        }
        Ok(all)
    }

    /// A group's members as stored (after the store resolved and linked
    /// what it could).
    async fn stored_members(
        &self,
        connection: &str,
        id: &str,
    ) -> Result<Vec<ScimMember>, ApiError> {
        Ok(self
            .store
            .scim_members(connection, &[id.to_string()])
            .await?
            .remove(id)
            .unwrap_or_default())
    }

    /// POST `/{Users|Groups}`.
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        kind: ScimKind,
        body: Value,
        base: &str,
    ) -> Result<Written, ApiError> {
        let normalized = normalize(body, self.registry, kind.as_str())?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut write = to_write(kind, &id, normalized)?;
        let mut all_found = true;
        if let Some(ms) = write.members.as_mut() {
            all_found = self.resolve_members(&caller.connection, ms).await?;
        }
        let mut members = write.members.clone().unwrap_or_default();
        let stored = match self
            .submit(caller, ScimWriteOp::Create { kind, write })
            .await?
        {
            ScimWriteResult::Created(r) => r,
            _ => return Err(ScimError::internal("unexpected write result").into()),
        };
        if !all_found {
            members = self.stored_members(&caller.connection, &id).await?;
        }
        let rel = match kind {
            ScimKind::Group => Rel::Members(HashMap::from([(id.clone(), members.clone())])),
            ScimKind::User => Rel::Groups(HashMap::new()),
        };
        let v = rel.render(&stored, base);
        match kind {
            ScimKind::User => self.notify_user(&stored, &[], ChangeKind::Created),
            ScimKind::Group => {
                let ids: Vec<String> = members.into_iter().map(|m| m.value).collect();
                self.notify_members(&caller.connection, &ids).await;
            }
        }
        Ok(Written {
            version: stored.version,
            id,
            resource: v,
        })
    }

    /// PUT `/{Users|Groups}/{id}`.
    pub(crate) async fn replace(
        &self,
        caller: &Caller,
        kind: ScimKind,
        id: &str,
        body: Value,
        if_match: Option<&Precondition>,
        base: &str,
    ) -> Result<Written, ApiError> {
        let normalized = normalize(body, self.registry, kind.as_str())?;
        let template = to_write(kind, id, normalized)?;
        self.write_loop(caller, kind, id, if_match, base, |_cur, _json| {
            Ok(template.clone())
        })
        .await
    }

    /// PATCH `/{Users|Groups}/{id}`.
    pub(crate) async fn patch(
        &self,
        caller: &Caller,
        kind: ScimKind,
        id: &str,
        body: &Value,
        if_match: Option<&Precondition>,
        base: &str,
    ) -> Result<Written, ApiError> {
        // The target is resolved first (404 before 400), as a client
        // patching a deleted resource needs to learn that it is gone.
        self.write_loop(caller, kind, id, if_match, base, |_cur, json| {
            let mut patched = json.clone();
            apply_patch(&mut patched, body, self.registry, kind.as_str())?;
            let normalized = normalize(patched, self.registry, kind.as_str())?;
            to_write(kind, id, normalized)
        })
        .await
    }

    /// The read-compute-write loop of PUT and PATCH.
    async fn write_loop(
        &self,
        caller: &Caller,
        kind: ScimKind,
        id: &str,
        if_match: Option<&Precondition>,
        base: &str,
        compute: impl Fn(&ScimResource, &Value) -> Result<roster_store::ScimResourceWrite, ScimError>,
    ) -> Result<Written, ApiError> {
        let conn = caller.connection.as_str();
        let _guard = self.write_lock(conn, id).lock().await;
        let mut attempt = 0;
        loop {
            let (cur, cur_json) = self.read(conn, kind, id, base, true).await?;
            if let Some(p) = if_match
                && !p.matches(cur.version)
            {
                return Err(ScimError::precondition_failed(format!(
                    "{kind} {id} is at version {}, not the one in If-Match",
                    crate::resource::etag(cur.version)
                ))
                .into());
            }
            // A group's pending members (not rendered: they name nothing
            // yet) are part of the list a PATCH or PUT is computed on, so
            // a PATCH adding someone else keeps them and one removing them
            // drops them.
            let pending = match kind {
                ScimKind::Group => self.store.scim_pending_members(conn, id).await?,
                ScimKind::User => Vec::new(),
            };
            let view = with_pending(&cur_json, &pending);
            let mut write = compute(&cur, view.as_ref().unwrap_or(&cur_json))?;
            let cur_members = current_members(view.as_ref().unwrap_or(&cur_json));
            let mut all_found = true;
            if let Some(ms) = write.members.as_mut() {
                // Only members already in the group need no checking.
                let known: HashSet<&str> = cur_members
                    .iter()
                    .filter(|m| m.member_type.is_some())
                    .map(|m| m.value.as_str())
                    .collect();
                let mut fresh: Vec<ScimMember> = ms
                    .iter()
                    .filter(|m| !known.contains(m.value.as_str()))
                    .cloned()
                    .collect();
                all_found = self.resolve_members(conn, &mut fresh).await?;
                let fresh_types: HashMap<String, Option<String>> = fresh
                    .into_iter()
                    .map(|m| (m.value, m.member_type))
                    .collect();
                let cur_types: HashMap<&str, Option<&String>> = cur_members
                    .iter()
                    .map(|m| (m.value.as_str(), m.member_type.as_ref()))
                    .collect();
                for m in ms.iter_mut() {
                    m.member_type = match fresh_types.get(&m.value) {
                        Some(t) => t.clone(),
                        None => cur_types.get(m.value.as_str()).and_then(|t| t.cloned()),
                    };
                }
            }
            let unchanged = write.data == cur.data
                && match &write.members {
                    None => true,
                    Some(ms) => *ms == cur_members,
                };
            if unchanged {
                return Ok(Written {
                    version: cur.version,
                    id: cur.id.clone(),
                    resource: cur_json,
                });
            }
            let new_members = write.members.clone();
            let user_name_changed = write.user_name.as_deref().map(scim_fold)
                != cur.user_name.as_deref().map(scim_fold);
            let emails_changed = email_set(&write.emails) != email_set(&emails_of(&cur.data));
            let columns_changed = write.user_name != cur.user_name
                || write.display_name != cur.display_name
                || write.external_id != cur.external_id;
            let op = ScimWriteOp::Replace {
                kind,
                write,
                expected_version: cur.version,
                user_name_changed,
                emails_changed,
                columns_changed,
            };
            match self.submit(caller, op).await {
                Ok(ScimWriteResult::Replaced(outcome)) => {
                    // Its kept rendering is out of date (reads would see
                    // that by its version; this frees the memory now).
                    self.cache.forget(conn, kind, id);
                    let stored = outcome.resource;
                    let (v, groups) = match kind {
                        ScimKind::Group => {
                            let ms = match new_members {
                                Some(ms) if all_found => ms,
                                // Resolved or kept pending by the store.
                                Some(_) => self.stored_members(conn, &stored.id).await?,
                                None => cur_members
                                    .into_iter()
                                    .filter(|m| m.member_type.is_some())
                                    .collect(),
                            };
                            let rel = Rel::Members(HashMap::from([(stored.id.clone(), ms)]));
                            (rel.render(&stored, base), Vec::new())
                        }
                        ScimKind::User => {
                            // A user write does not change memberships.
                            let gs = current_groups(&cur_json);
                            let rel = Rel::Groups(HashMap::from([(stored.id.clone(), gs.clone())]));
                            (rel.render(&stored, base), gs)
                        }
                    };
                    match kind {
                        ScimKind::User => {
                            let was = cur.active.unwrap_or(true);
                            let is = stored.active.unwrap_or(true);
                            let ck = match (was, is) {
                                (true, false) => ChangeKind::Deactivated,
                                (false, true) => ChangeKind::Reactivated,
                                _ => ChangeKind::Updated,
                            };
                            self.notify_user(&stored, &groups, ck);
                        }
                        ScimKind::Group => {
                            // A rename changes every member's group list.
                            let renamed = cur.display_name != stored.display_name;
                            let mut ids: Vec<String> = if renamed {
                                let v: Vec<String> =
                                    current_members(&v).into_iter().map(|m| m.value).collect();
                                v.into_iter().chain(outcome.members_removed).collect()
                            } else {
                                outcome
                                    .members_added
                                    .into_iter()
                                    .chain(outcome.members_removed)
                                    .collect()
                            };
                            ids.sort();
                            ids.dedup();
                            self.notify_members(conn, &ids).await;
                        }
                    }
                    return Ok(Written {
                        version: stored.version,
                        id: stored.id.clone(),
                        resource: v,
                    });
                }
                Ok(_) => return Err(ScimError::internal("unexpected write result").into()),
                Err(ScimStoreError::VersionMismatch { .. })
                    if if_match.is_none() && attempt < WRITE_RETRIES =>
                {
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// DELETE `/{Users|Groups}/{id}`.
    pub(crate) async fn delete(
        &self,
        caller: &Caller,
        kind: ScimKind,
        id: &str,
        if_match: Option<&Precondition>,
    ) -> Result<(), ApiError> {
        let conn = caller.connection.as_str();
        let _guard = self.write_lock(conn, id).lock().await;
        let expected = match if_match {
            None | Some(Precondition::Any) => None,
            Some(p) => {
                let cur = self
                    .store
                    .scim_get(conn, kind, id)
                    .await?
                    .ok_or_else(|| ScimError::not_found(format!("{kind} {id} not found")))?;
                if !p.matches(cur.version) {
                    return Err(ScimError::precondition_failed(format!(
                        "{kind} {id} has been modified"
                    ))
                    .into());
                }
                Some(cur.version)
            }
        };
        let op = ScimWriteOp::Delete {
            kind,
            id: id.to_string(),
            expected_version: expected,
        };
        let deleted = match self.submit(caller, op).await? {
            ScimWriteResult::Deleted(d) => d,
            _ => return Err(ScimError::internal("unexpected write result").into()),
        };
        self.cache.forget(conn, kind, id);
        match kind {
            ScimKind::User => self.notify_user(&deleted.resource, &[], ChangeKind::Deleted),
            ScimKind::Group => self.notify_members(conn, &deleted.former_members).await,
        }
        Ok(())
    }

    /// GET `/{Users|Groups}` and `POST .../.search`; `kinds` has both for a
    /// search at the root. The answer is the serialized `ListResponse`.
    pub(crate) async fn list(
        &self,
        connection: &str,
        kinds: &[ScimKind],
        q: &ListQuery,
        base: &str,
    ) -> Result<Vec<u8>, ApiError> {
        let cfg = &self.config;
        let paging = Paging::from_query(
            q.start_index.as_deref(),
            q.count.as_deref(),
            cfg.default_count,
            usize::try_from(cfg.max_results).unwrap_or(usize::MAX),
        )?;
        let filter = match q.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(Filter::parse_validated(f, self.registry)?),
        };
        let sort = match q.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(SortSpec::parse(s, q.sort_order.as_deref())?),
        };
        let projection = Projection {
            attributes: q.attributes.clone(),
            excluded: q.excluded_attributes.clone(),
        };

        // Fast path: one resource type, no filter, no sort.
        if let ([kind], None, None) = (kinds, &filter, &sort) {
            let total = self.store.scim_count(connection, *kind).await?;
            let total = usize::try_from(total).unwrap_or(usize::MAX);
            let range = paging.range(total);
            let page = if range.is_empty() {
                Vec::new()
            } else {
                self.store
                    .scim_page(connection, *kind, range.start, range.len())
                    .await?
            };
            let resources = self
                .render_page(connection, *kind, &page, base, &projection)
                .await?;
            let pieces: Vec<Piece> = resources.into_iter().map(Piece::Value).collect();
            return Ok(list_response_bytes(total, paging.start_index, &pieces));
        }

        let mut matched: Vec<Matched> = Vec::new();
        for kind in kinds {
            let rel_name = relation_name(*kind);
            let need_rel = filter.as_ref().is_some_and(|f| mentions(f, rel_name))
                || sort
                    .as_ref()
                    .is_some_and(|s| s.path.name.eq_ignore_ascii_case(rel_name));
            let candidates_plan = filter.as_ref().and_then(|f| index_plan(f, *kind));
            match candidates_plan {
                // Indexed lookups (what IdPs send before a create): the
                // candidates' heads, then their renderings, kept ones
                // from the cache; the full filter is checked on them.
                Some(keys) if self.cache.enabled() => {
                    let mut heads: Vec<ScimHead> = Vec::new();
                    let mut seen = HashSet::new();
                    for (index, value) in keys {
                        for h in self
                            .store
                            .scim_find_heads(connection, *kind, index, &value)
                            .await?
                        {
                            if seen.insert(h.seq) {
                                heads.push(h);
                            }
                        }
                    }
                    heads.sort_by_key(|h| h.seq);
                    for r in self.rendered_many(connection, *kind, &heads, base).await? {
                        if filter
                            .as_ref()
                            .is_none_or(|f| f.matches(&r.value, self.registry))
                        {
                            matched.push(Matched::Kept(r));
                        }
                    }
                }
                Some(keys) => {
                    let mut cands: Vec<ScimResource> = Vec::new();
                    let mut seen = HashSet::new();
                    for (index, value) in keys {
                        for r in self
                            .store
                            .scim_find(connection, *kind, index, &value)
                            .await?
                        {
                            if seen.insert(r.seq) {
                                cands.push(r);
                            }
                        }
                    }
                    cands.sort_by_key(|r| r.seq);
                    self.match_into(
                        connection,
                        *kind,
                        cands,
                        filter.as_ref(),
                        need_rel,
                        base,
                        &mut matched,
                    )
                    .await?;
                }
                None => {
                    let n = self.store.scim_count(connection, *kind).await?;
                    if n > cfg.scan_limit {
                        return Err(ScimError::too_many(format!(
                            "this query would scan {n} resources (limit {}); filter with eq on \
                             id, userName, externalId, displayName or emails.value",
                            cfg.scan_limit
                        ))
                        .into());
                    }
                    let mut after = 0i64;
                    loop {
                        let chunk = self
                            .store
                            .scim_scan(connection, *kind, after, SCAN_PAGE)
                            .await?;
                        let Some(last) = chunk.last() else { break };
                        after = last.seq;
                        let done = chunk.len() < SCAN_PAGE;
                        self.match_into(
                            connection,
                            *kind,
                            chunk,
                            filter.as_ref(),
                            need_rel,
                            base,
                            &mut matched,
                        )
                        .await?;
                        if done {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(s) = &sort {
            matched.sort_by(|a, b| s.compare(a.value(), b.value(), self.registry));
        }
        let total = matched.len();
        let range = paging.range(total);
        let page: Vec<Matched> = matched
            .into_iter()
            .skip(range.start)
            .take(range.len())
            .collect();
        // Render the stored rows of the page with membership (grouped by
        // kind, order kept); kept renderings have theirs.
        let mut by_kind: HashMap<ScimKind, Rel> = HashMap::new();
        for kind in kinds {
            let rs: Vec<&ScimResource> = page
                .iter()
                .filter_map(|m| match m {
                    Matched::Row(r, _) if r.kind == *kind => Some(&**r),
                    _ => None,
                })
                .collect();
            if !rs.is_empty() && projection.wants(relation_name(*kind)) {
                by_kind.insert(*kind, self.relations(connection, *kind, &rs).await?);
            }
        }
        let default = projection.is_default();
        let pieces: Vec<Piece> = page
            .iter()
            .map(|m| match m {
                Matched::Kept(r) if default => Piece::Bytes(r.bytes.clone()),
                Matched::Kept(r) => Piece::Value(projection.apply(&r.value, self)),
                Matched::Row(r, _) => {
                    let full = match by_kind.get(&r.kind) {
                        Some(rel) => rel.render(r, base),
                        None => Rel::None.render(r, base),
                    };
                    Piece::Value(projection.apply(&full, self))
                }
            })
            .collect();
        Ok(list_response_bytes(total, paging.start_index, &pieces))
    }

    #[allow(clippy::too_many_arguments)]
    async fn match_into(
        &self,
        connection: &str,
        kind: ScimKind,
        cands: Vec<ScimResource>,
        filter: Option<&Filter>,
        need_rel: bool,
        base: &str,
        out: &mut Vec<Matched>,
    ) -> Result<(), ApiError> {
        let rel = if need_rel {
            let refs: Vec<&ScimResource> = cands.iter().collect();
            self.relations(connection, kind, &refs).await?
        } else {
            Rel::None
        };
        for r in cands {
            let v = rel.render(&r, base);
            if filter.is_none_or(|f| f.matches(&v, self.registry)) {
                out.push(Matched::Row(Box::new(r), v));
            }
        }
        Ok(())
    }

    async fn render_page(
        &self,
        connection: &str,
        kind: ScimKind,
        page: &[ScimResource],
        base: &str,
        projection: &Projection,
    ) -> Result<Vec<Value>, ApiError> {
        let rel = if projection.wants(relation_name(kind)) {
            let refs: Vec<&ScimResource> = page.iter().collect();
            self.relations(connection, kind, &refs).await?
        } else {
            Rel::None
        };
        Ok(page
            .iter()
            .map(|r| projection.apply(&rel.render(r, base), self))
            .collect())
    }

    /// Runs a write through the group-commit writer, audited as `caller`.
    async fn submit(
        &self,
        caller: &Caller,
        op: ScimWriteOp,
    ) -> Result<ScimWriteResult, ScimStoreError> {
        let job = ScimWriteJob {
            connection: caller.connection.clone(),
            op,
            actor: Some(caller.actor()),
        };
        self.writer.submit(&self.store, job).await
    }

    fn notify_user(&self, r: &ScimResource, groups: &[ScimGroupRef], kind: ChangeKind) {
        self.sink.notify(ScimChange {
            connection: r.connection.clone(),
            user_id: r.id.clone(),
            user_name: r.user_name.clone().unwrap_or_default(),
            external_id: r.external_id.clone(),
            employee_number: employee_number(&r.data),
            active: r.active.unwrap_or(true),
            kind,
            groups: groups
                .iter()
                .map(|g| GroupRef {
                    id: g.group_id.clone(),
                    display_name: g.display_name.clone().unwrap_or_default(),
                })
                .collect(),
        });
    }

    /// Announces an `Updated` change for each user among `ids` (group
    /// members whose memberships changed). Failures are logged: the write
    /// has committed.
    async fn notify_members(&self, connection: &str, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let users = match self
            .store
            .scim_get_many(connection, ScimKind::User, ids)
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "loading group members to notify failed");
                return;
            }
        };
        let uids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let mut groups = match self.store.scim_groups_of(connection, &uids).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "loading memberships to notify failed");
                return;
            }
        };
        for u in &users {
            let gs = groups.remove(&u.id).unwrap_or_default();
            self.notify_user(u, &gs, ChangeKind::Updated);
        }
    }
}

/// The groups listed in a rendered user.
fn current_groups(v: &Value) -> Vec<ScimGroupRef> {
    v.get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| {
                    Some(ScimGroupRef {
                        group_id: g.get("value")?.as_str()?.to_string(),
                        display_name: g.get("display").and_then(Value::as_str).map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `emails[*].value` of a stored body.
fn emails_of(data: &Value) -> Vec<String> {
    data.get("emails")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("value").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The email index rows a list of addresses gives.
fn email_set(emails: &[String]) -> std::collections::BTreeSet<String> {
    emails
        .iter()
        .map(|e| scim_fold(e))
        .filter(|e| !e.is_empty())
        .collect()
}

/// A rendered group with its pending members appended to `members`
/// (without a type), or `None` when it has none.
fn with_pending(v: &Value, pending: &[ScimMember]) -> Option<Value> {
    if pending.is_empty() {
        return None;
    }
    let mut v = v.clone();
    let obj = v.as_object_mut()?;
    let list = obj
        .entry("members")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = list {
        for m in pending {
            let mut o = serde_json::Map::new();
            o.insert("value".into(), Value::String(m.value.clone()));
            if let Some(d) = &m.display {
                o.insert("display".into(), Value::String(d.clone()));
            }
            a.push(Value::Object(o));
        }
    }
    Some(v)
}

/// The members listed in a rendered group (for diffing).
fn current_members(v: &Value) -> Vec<ScimMember> {
    v.get("members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some(ScimMember {
                        value: m.get("value")?.as_str()?.to_string(),
                        member_type: m.get("type").and_then(Value::as_str).map(str::to_string),
                        display: m.get("display").and_then(Value::as_str).map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A resource a filter matched: a stored row rendered for matching
/// (membership only if the filter or sort needs it), or a full rendering
/// from the cache.
enum Matched {
    Row(Box<ScimResource>, Value),
    Kept(Arc<Rendered>),
}

impl Matched {
    /// What filters and sorts look at.
    fn value(&self) -> &Value {
        match self {
            Matched::Row(_, v) => v,
            Matched::Kept(r) => &r.value,
        }
    }
}

/// One resource of a list page: serialized already, or to serialize.
enum Piece {
    Bytes(axum::body::Bytes),
    Value(Value),
}

/// The wire form of a `ListResponse` (as [`ListResponse::to_json`] writes
/// it, serialized) around resources some of which are serialized already,
/// so a kept rendering is copied rather than parsed and written again.
fn list_response_bytes(total: usize, start_index: usize, resources: &[Piece]) -> Vec<u8> {
    // The envelope without resources, e.g. {"Resources":[],"itemsPerPage":1,
    // ...}: its members in serde_json's order, the resources spliced in.
    let envelope = ListResponse {
        total_results: total,
        start_index: start_index.max(1),
        items_per_page: resources.len(),
        resources: Vec::new(),
    }
    .to_json();
    let mut head = serde_json::to_vec(&envelope).unwrap_or_default();
    let marker = b"\"Resources\":[]";
    let Some(at) = head.windows(marker.len()).position(|w| w == marker) else {
        // Not the shape expected: serialize everything the slow way.
        let values = resources
            .iter()
            .map(|p| match p {
                Piece::Value(v) => v.clone(),
                Piece::Bytes(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
            })
            .collect();
        return serde_json::to_vec(&ListResponse::new(total, start_index, values).to_json())
            .unwrap_or_default();
    };
    let tail = head.split_off(at + marker.len() - 1);
    let mut out = head;
    out.reserve(tail.len() + resources.len() * 800);
    for (i, p) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match p {
            Piece::Bytes(b) => out.extend_from_slice(b),
            Piece::Value(v) => {
                let _ = serde_json::to_writer(&mut out, v);
            }
        }
    }
    out.extend_from_slice(&tail);
    out
}

/// Loaded membership for a batch of resources of one kind.
enum Rel {
    None,
    Members(HashMap<String, Vec<ScimMember>>),
    Groups(HashMap<String, Vec<ScimGroupRef>>),
}

impl Rel {
    fn render(&self, r: &ScimResource, base: &str) -> Value {
        match self {
            Rel::None => render(r, Relations::None, base),
            Rel::Members(m) => render(
                r,
                Relations::Members(m.get(&r.id).map(Vec::as_slice).unwrap_or(&[])),
                base,
            ),
            Rel::Groups(g) => render(
                r,
                Relations::Groups(g.get(&r.id).map(Vec::as_slice).unwrap_or(&[])),
                base,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_scim::SchemaRegistry;

    #[test]
    fn preconditions_parse_weak_and_strong_tags() {
        assert_eq!(Precondition::parse("*"), Precondition::Any);
        let p = Precondition::parse("W/\"3\", \"5\"");
        assert!(p.matches(3) && p.matches(5) && !p.matches(4));
        assert!(!Precondition::parse("\"abc\"").matches(0));
    }

    #[test]
    fn index_plans() {
        let reg = SchemaRegistry::standard();
        let plan = |s: &str, k| index_plan(&Filter::parse_validated(s, reg).expect(s), k);
        assert_eq!(
            plan("userName eq \"A\"", ScimKind::User),
            Some(vec![(ScimIndex::UserName, "A".into())])
        );
        assert_eq!(
            plan(
                "emails[type eq \"work\"].value eq \"a@x\" and active eq true",
                ScimKind::User
            ),
            Some(vec![(ScimIndex::Email, "a@x".into())])
        );
        assert_eq!(
            plan("userName eq \"a\" or externalId eq \"b\"", ScimKind::User),
            Some(vec![
                (ScimIndex::UserName, "a".into()),
                (ScimIndex::ExternalId, "b".into())
            ])
        );
        assert_eq!(
            plan("userName eq \"a\" or active eq true", ScimKind::User),
            None
        );
        assert_eq!(plan("userName co \"a\"", ScimKind::User), None);
        assert_eq!(plan("not (userName eq \"a\")", ScimKind::User), None);
        assert_eq!(
            plan("members[value eq \"u1\"]", ScimKind::Group),
            Some(vec![(ScimIndex::Member, "u1".into())])
        );
        assert_eq!(
            plan("displayName eq \"Ops\"", ScimKind::Group),
            Some(vec![(ScimIndex::DisplayName, "Ops".into())])
        );
        // userName is not a Group attribute: no index, a scan finds nothing.
        assert_eq!(plan("userName eq \"a\"", ScimKind::Group), None);
    }

    #[test]
    fn list_responses_splice_kept_bytes_as_serializing_would() {
        let a = serde_json::json!({"id": "a", "userName": "x\"y", "meta": {"version": "W/\"1\""}});
        let b = serde_json::json!({"id": "b", "active": false});
        for (total, start, pieces, values) in [
            (0, 1, vec![], vec![]),
            (
                7,
                3,
                vec![
                    Piece::Bytes(serde_json::to_vec(&a).expect("json").into()),
                    Piece::Value(b.clone()),
                ],
                vec![a.clone(), b.clone()],
            ),
        ] {
            let spliced = list_response_bytes(total, start, &pieces);
            let plain = serde_json::to_vec(&ListResponse::new(total, start, values).to_json())
                .expect("json");
            assert_eq!(
                String::from_utf8_lossy(&spliced),
                String::from_utf8_lossy(&plain)
            );
        }
    }

    #[test]
    fn projection_wants() {
        let p = Projection {
            attributes: None,
            excluded: Some(vec!["members".into()]),
        };
        assert!(!p.wants("members"));
        let p = Projection {
            attributes: Some(vec!["displayName".into()]),
            excluded: None,
        };
        assert!(!p.wants("members"));
        let p = Projection {
            attributes: Some(vec!["members.value".into()]),
            excluded: None,
        };
        assert!(p.wants("members"));
        assert!(Projection::default().wants("groups"));
    }
}
