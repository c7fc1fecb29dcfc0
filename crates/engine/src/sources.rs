//! Identity providers as sources of people: building them from the
//! config, reading them, and merging what several sources say about one
//! person (attribute mastering).
//!
//! A deployment names an HR file (`[source] hr_csv`), one or more
//! identity providers (`[sources.<name>]`), or both. Every configured IdP
//! is read whole ([`roster_sources::read_all`]) or, once read, its changes
//! (see "Incremental reads" below), paced by a rate budget in
//! the store keyed by `source.<name>` ([`crate::StoreBudget`]), so every
//! process that shares the database shares one budget per tenant.
//!
//! **A read that fails, or that is incomplete, imports nothing.** The
//! people snapshot roster holds stays as it was, and the error names the
//! source and why: a person missing from a short read may simply not
//! have been reached, and must never be taken for a leaver. A person an
//! IdP lists without an address refuses the whole read too (as a bad HR
//! row refuses the file): dropping them would make their accounts look
//! like orphans.
//!
//! # Attribute mastering (the one place it is decided)
//!
//! People from different sources are the same person when they share an
//! employee ID, else an address (primary or alias, case-insensitively).
//! For each attribute, one source is the master:
//!
//! | attribute                                   | master                                   |
//! |---------------------------------------------|------------------------------------------|
//! | employment status                           | HR; but an IdP state that means "left" (Okta DEPROVISIONED, Entra deleted, ...) terminates |
//! | start date, end date, cost center           | HR (an IdP fills them only when HR has none) |
//! | employee ID, name, department               | HR                                       |
//! | primary address                             | the IdP (HR's address stays as an alias) |
//! | aliases                                     | every source's, together                 |
//! | groups                                      | the IdPs', together                      |
//! | manager                                     | the IdP (HR's when no IdP names one)     |
//! | other attributes                            | HR's columns; the IdP adds the keys HR lacks (`idp_id`, `idp_state`, `idp_flag`, custom profile attributes); every IdP keeps its own id as `idp_id.<source>` (an offboarding revokes sessions in each) |
//!
//! A person only an IdP knows comes from it whole. A person the last
//! snapshot had from an IdP whom a complete read of it no longer lists
//! (deleted) is carried as terminated ([`vanished`]). Between IdPs, the one
//! whose `[sources.<name>]` sorts first wins where one value must be
//! chosen; any IdP that says "left" terminates, unless that same IdP also
//! lists the person live (a rehire's new account beside the old,
//! deactivated one with the same address): the live listing counts. Locked-out, suspended and
//! password-expired states never terminate (see
//! `roster_sources::lifecycle`): a lockout storm is not a mass departure.
//!
//! # Incremental reads
//!
//! A full read stores the cursor it yields (taken before its listing) in
//! the store (`source_cursor`), and the engine keeps the source's whole
//! listing in memory ([`Held`]). A later import ([`SourceSync::Auto`] at
//! full runs, [`SourceSync::Changes`] at polls) reads only the changes
//! from the cursor: the changed people re-read whole replace theirs in the
//! listing, removed ids leave it, and every listing is merged whole as
//! after a full read, so a removed person is found gone by [`vanished`]
//! and carried as terminated exactly as a full read would. A source is
//! read whole instead when the process has no listing of it yet, it has no
//! stored cursor, its last full read is older than `full_read_every`
//! (default 24h: incremental feeds can miss), the source's changes never
//! show a deletion (OneLogin; read whole at full runs, changes between
//! them), or the IdP asks for it
//! (`SRC-0008` expired cursor, `SRC-0010` a lockout storm); the result
//! passes the source-change guard like any other. An event hook's people
//! ([`SourceSync::People`]) are re-read one by one
//! (`roster_sources::read_people`), never taken from the hook. Any failure
//! imports nothing and drops the listings held, so the next read of every
//! source is whole. A poll or hook that changes no one's record imports
//! nothing; the people whose record changed are reconciled one by one
//! ([`crate::Roster::poll_sources`], [`crate::Roster::reread_people`]).
//!
//! The merged snapshot is imported with [`crate::Roster::import_people`],
//! so the source-change guard applies as to any import: a source that
//! suddenly returns half its people holds every deactivation until a
//! person confirms it. Each IdP's listing is also judged against its own
//! baseline (keyed `source.<name>`): beside a complete HR file, a short
//! but complete IdP listing keeps everyone in the merged snapshot while
//! stripping the groups and managers only the IdP knows, which no count
//! of the merged snapshot sees. One confirmation
//! (`roster plan --accept-source-change`) accepts both.

use std::collections::BTreeMap;
use std::sync::Arc;

use roster_connectors::{RateBudget, SecretString};
use roster_core::{ConnectionId, EmploymentStatus, Person};
use roster_sources::entra::{EntraSource, EntraSourceConfig};
use roster_sources::google::{GoogleSource, GoogleSourceConfig};
use roster_sources::okta::{OktaOAuth, OktaSource, OktaSourceConfig};
use roster_sources::onelogin::{OneLoginSource, OneLoginSourceConfig};
use roster_sources::{Source, SourceKind, SyncCursor};

use crate::config::{SourceConfig, SourceKindName};
use crate::engine::{Engine, EngineError, WiredSource, ms};

/// Builds the source a `[sources.<name>]` table describes. Its secret
/// must have been resolved ([`crate::config::Config::resolve_secrets`]).
pub fn build(c: &SourceConfig) -> Result<Arc<dyn Source>, String> {
    let place = format!("sources.{}", c.name);
    let id = ConnectionId::new(c.connection_id());
    let secret = c
        .secret
        .as_ref()
        .map(|s| SecretString::new(s.expose()))
        .ok_or_else(|| format!("{place}.secret is not resolved"))?;
    let required = |key: &str, v: &Option<String>| {
        v.clone()
            .ok_or_else(|| format!("{place}.{key} is required"))
    };
    let fail = |e: roster_sources::SourceError| format!("{place}: {e}");
    Ok(match c.kind {
        SourceKindName::Okta => {
            let mut s =
                OktaSourceConfig::new(id, required("base_url", &c.base_url)?, secret.clone());
            if let Some(client_id) = &c.client_id {
                let mut oauth = OktaOAuth::new(client_id.clone(), secret);
                oauth.key_id = c.key_id.clone();
                if c.revoke_sessions {
                    // Clearing a user's sessions is a write.
                    oauth.scopes.push("okta.users.manage".into());
                }
                s.oauth = Some(oauth);
            }
            if let Some(share) = c.rate_share {
                s.rate_share = share;
            }
            if let Some(n) = c.page_size {
                s.page_size = n;
            }
            s.allow_private_network = c.allow_private_network;
            Arc::new(OktaSource::new(s).map_err(fail)?)
        }
        SourceKindName::Entra => {
            let mut s = EntraSourceConfig::new(
                id,
                required("tenant_id", &c.tenant_id)?,
                required("client_id", &c.client_id)?,
                secret,
            );
            if let Some(u) = &c.base_url {
                s.graph_url = u.clone();
            }
            if let Some(u) = &c.login_url {
                s.login_url = u.clone();
            }
            if let Some(n) = c.page_size {
                s.page_size = n;
            }
            s.allow_private_network = c.allow_private_network;
            Arc::new(EntraSource::new(s).map_err(fail)?)
        }
        SourceKindName::Google => {
            let mut s = GoogleSourceConfig::new(
                id,
                required("service_account", &c.service_account)?,
                secret,
                required("admin", &c.admin)?,
            );
            if let Some(v) = &c.customer {
                s.customer = v.clone();
            }
            if let Some(u) = &c.base_url {
                s.api_url = u.clone();
            }
            if let Some(u) = &c.token_url {
                s.token_url = u.clone();
            }
            s.revoke_sessions = c.revoke_sessions;
            if let Some(n) = c.page_size {
                s.page_size = n;
            }
            s.allow_private_network = c.allow_private_network;
            Arc::new(GoogleSource::new(s).map_err(fail)?)
        }
        SourceKindName::Onelogin => {
            let mut s = OneLoginSourceConfig::new(
                id,
                required("base_url", &c.base_url)?,
                required("client_id", &c.client_id)?,
                secret,
            );
            s.allow_private_network = c.allow_private_network;
            Arc::new(OneLoginSource::new(s).map_err(fail)?)
        }
    })
}

/// Builds the source a `[sources.<name>]` table describes and registers it
/// with its schedule (`poll_interval`, `full_read_every`).
pub fn wire(engine: &mut Engine, c: &SourceConfig) -> Result<(), String> {
    let source = build(c)?;
    let id = source.id().clone();
    engine.add_source(source);
    engine.schedule_source(&id, c.poll_interval, c.full_read_every);
    if c.revoke_sessions {
        engine.revoke_sessions_in(&id);
    }
    Ok(())
}

/// What importing the sources did.
#[derive(Clone, Debug)]
pub struct SourcesImported {
    /// People each source's listing holds after the read.
    pub read: Vec<(ConnectionId, usize)>,
    /// How each source was read (whole, changes, named people).
    pub reads: Vec<(ConnectionId, SourceReadKind)>,
    /// The people whose record the import changed (new, changed, or
    /// carried as terminated), as imported: who a poll or a hook
    /// reconciles.
    pub changed: Vec<Person>,
    /// False when nothing changed and nothing was imported (a poll that
    /// found no news).
    pub imported: bool,
    /// People in the merged snapshot.
    pub people: usize,
    /// The snapshot's label in the audit log (`people.csv + source.okta`).
    pub label: String,
    /// The source change it is, if its deactivations are withheld until
    /// someone confirms (the source-change guard).
    pub held: Option<roster_core::guard::SourceChange>,
}

impl Engine {
    /// Registers an identity provider as a source of people, paced by a
    /// budget in the store keyed by its id (`source.<name>`) built from
    /// its declared limits.
    pub fn add_source(&mut self, source: Arc<dyn Source>) {
        let budget = Arc::new(crate::StoreBudget::new(
            self.store.clone(),
            source.id().clone(),
            source.capabilities().rate_limits,
        ));
        self.add_source_with_budget(source, budget);
    }

    /// Registers a source paced by `budget` instead (tests).
    pub fn add_source_with_budget(&mut self, source: Arc<dyn Source>, budget: Arc<dyn RateBudget>) {
        let budget = crate::metrics::MeteredBudget::wrap(budget, source.id());
        self.sources.retain(|w| w.source.id() != source.id());
        self.sources.push(WiredSource {
            source,
            budget,
            revoke_sessions: false,
            full_read_every: crate::config::FULL_READ_EVERY,
            poll_interval: None,
        });
        self.sources
            .sort_by(|a, b| a.source.id().as_str().cmp(b.source.id().as_str()));
    }

    /// Lets offboardings end people's sessions in source `id`
    /// (`[sources.<name>] revoke_sessions = true`; see [`crate::revoke`]).
    /// False if no such source is registered.
    pub fn revoke_sessions_in(&mut self, id: &ConnectionId) -> bool {
        match self.sources.iter_mut().find(|w| w.source.id() == id) {
            Some(w) => {
                w.revoke_sessions = true;
                true
            }
            None => false,
        }
    }

    /// Sets how often the source `id` is polled for changes and read whole
    /// (`[sources.<name>] poll_interval`, `full_read_every`).
    pub fn schedule_source(
        &mut self,
        id: &ConnectionId,
        poll_interval: Option<std::time::Duration>,
        full_read_every: std::time::Duration,
    ) {
        if let Some(w) = self.sources.iter_mut().find(|w| w.source.id() == id) {
            w.poll_interval = poll_interval;
            w.full_read_every = full_read_every;
        }
    }

    /// Whether any identity provider is configured as a source.
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Reads the sources as `mode` asks (module docs, "Incremental
    /// reads") and returns each source's people as held after the read;
    /// all or nothing. The caller holds [`Engine::held`] for the whole
    /// sequence, and clears it if what follows fails.
    pub(crate) async fn read_sources(
        &self,
        held: &mut Held,
        mode: &SourceSync,
        progress: &mut (dyn FnMut(&ConnectionId, &roster_connectors::driver::Progress<'_>) + Send),
    ) -> Result<SourcesRead, EngineError> {
        let mut out = SourcesRead::default();
        let now = ms(self.now());
        for w in &self.sources {
            let id = w.source.id().clone();
            let caps = w.source.capabilities();
            let kind = caps.kind;
            let unread = |why: String| {
                EngineError::Refused(format!(
                    "source {id} ({kind}): {why}; nothing was imported from any source, \
                     the people roster holds are unchanged and nothing was planned"
                ))
            };
            let listing = held.by_source.get(&id);
            // Why this source is read whole, if it is.
            let mut full: Option<String> = match (mode, listing) {
                (_, None) => Some("no full read of it in this process yet".into()),
                (SourceSync::Full, _) => Some("a full read was asked for".into()),
                _ => None,
            };
            if full.is_none()
                && caps.incremental
                && !caps.incremental_removals
                && *mode == SourceSync::Auto
            {
                // Its changes never show a deletion, and a deletion is how
                // this IdP shows a leaver: full runs read it whole.
                full = Some("its changes do not show deleted people".into());
            }
            let cursor = if full.is_none() && caps.incremental {
                match self.store.source_cursor(id.as_str()).await? {
                    None => {
                        full = Some("no stored cursor".into());
                        None
                    }
                    Some(c) if now.saturating_sub(c.full_read_ms) >= ms_of(w.full_read_every) => {
                        full = Some(format!(
                            "the last full read is older than full_read_every ({}s)",
                            w.full_read_every.as_secs()
                        ));
                        None
                    }
                    Some(c) => Some(SyncCursor::new(c.cursor)),
                }
            } else {
                None
            };
            let named = match mode {
                SourceSync::People { source, ids } if *source == id => Some(ids.as_slice()),
                _ => None,
            };
            if full.is_none() {
                // Named people first (a hook), else changes (incremental
                // sources), else the listing held stands: a source that
                // can only be read whole is read at full runs.
                let answer = match (named, &cursor, mode) {
                    (Some(ids), _, _) => Some(
                        roster_sources::read_people(&*w.source, &*w.budget, ids, &self.source_read)
                            .await,
                    ),
                    (None, Some(c), SourceSync::Auto | SourceSync::Changes) => Some(
                        roster_sources::read_changes(&*w.source, &*w.budget, c, &self.source_read)
                            .await,
                    ),
                    (None, None, SourceSync::Auto) => {
                        full = Some("the source can only be read whole".into());
                        None
                    }
                    _ => None,
                };
                match answer {
                    None => {}
                    Some(Ok(changes)) => {
                        let listing = held.by_source.entry(id.clone()).or_default();
                        let mut converted = Vec::new();
                        let mut bad = Vec::new();
                        for p in &changes.changed {
                            match convert(kind, &id, p) {
                                Ok(person) => converted.push((p.id.clone(), person)),
                                Err(e) => bad.push(e),
                            }
                        }
                        if !bad.is_empty() {
                            return Err(unread(format!(
                                "{} changed person(s) cannot be imported: {}",
                                bad.len(),
                                bad.join("; ")
                            )));
                        }
                        let (n_changed, n_removed) = (converted.len(), changes.removed.len());
                        for (k, person) in converted {
                            listing.insert(k, person);
                        }
                        // A removed person leaves the listing; the merge
                        // then finds them gone as a full read would
                        // ([`vanished`]).
                        for r in &changes.removed {
                            listing.remove(&r.id);
                        }
                        if named.is_none() {
                            self.store
                                .advance_source_cursor(id.as_str(), changes.cursor.as_str(), now)
                                .await?;
                        }
                        tracing::info!(source = %id, changed = n_changed, removed = n_removed, pages = changes.pages, named = named.is_some(), "read changes");
                        out.reads.push((
                            id.clone(),
                            if named.is_some() {
                                SourceReadKind::People {
                                    changed: n_changed,
                                    removed: n_removed,
                                }
                            } else {
                                SourceReadKind::Changes {
                                    changed: n_changed,
                                    removed: n_removed,
                                }
                            },
                        ));
                    }
                    // An expired cursor, a lockout storm, a source that
                    // cannot read one person: read whole; the import's
                    // source-change guard judges the result as any other.
                    Some(Err(e))
                        if e.needs_full_read()
                            || matches!(e, roster_sources::SourceError::Unsupported { .. }) =>
                    {
                        tracing::warn!(source = %id, error = %e, "reading changes is not possible; reading the source whole");
                        full = Some(e.to_string());
                    }
                    Some(Err(e)) => {
                        return Err(unread(format!("reading changes failed: {e}")));
                    }
                }
            }
            if let Some(reason) = full {
                let read = roster_sources::read::read_all_with_progress(
                    &*w.source,
                    &*w.budget,
                    &self.source_read,
                    &mut |p| progress(&id, p),
                )
                .await
                .map_err(|e| unread(format!("the read failed: {e}")))?;
                if !read.complete {
                    return Err(unread(format!(
                        "the read is incomplete ({}), and a short read is never taken as the truth",
                        read.incomplete_reason
                            .as_deref()
                            .unwrap_or("no reason given")
                    )));
                }
                let mut listing = BTreeMap::new();
                let mut bad = Vec::new();
                for p in &read.people {
                    match convert(kind, &id, p) {
                        Ok(person) => {
                            listing.insert(p.id.clone(), person);
                        }
                        Err(e) => bad.push(e),
                    }
                }
                if !bad.is_empty() {
                    return Err(unread(format!(
                        "{} person(s) cannot be imported: {}",
                        bad.len(),
                        bad.join("; ")
                    )));
                }
                // The cursor was taken before the listing: nothing that
                // changed during the read is missed.
                match &read.cursor {
                    Some(c) => {
                        self.store
                            .record_full_read(id.as_str(), c.as_str(), now)
                            .await?
                    }
                    None => self.store.forget_source_cursor(id.as_str()).await?,
                }
                tracing::info!(source = %id, people = listing.len(), pages = read.pages, %reason, "read source whole");
                held.by_source.insert(id.clone(), listing);
                out.reads
                    .push((id.clone(), SourceReadKind::Full { reason }));
            }
            let people: Vec<Person> = held
                .by_source
                .get(&id)
                .map(|l| l.values().cloned().collect())
                .unwrap_or_default();
            out.people.push((kind, id, people));
        }
        Ok(out)
    }

    /// The shortest `poll_interval` of the configured sources: how often
    /// the service reads changes (`None`: no source asks to be polled).
    pub fn source_poll_interval(&self) -> Option<std::time::Duration> {
        self.sources.iter().filter_map(|w| w.poll_interval).min()
    }

    /// The source with this id reads changes (an event hook may name its
    /// people).
    pub fn has_source(&self, id: &ConnectionId) -> bool {
        self.sources.iter().any(|w| w.source.id() == id)
    }
}

fn ms_of(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One IdP person as a core person, tagged with the source it came from.
fn convert(
    kind: SourceKind,
    id: &ConnectionId,
    p: &roster_sources::SourcePerson,
) -> Result<Person, String> {
    let mut person = p.to_person(kind)?;
    person
        .attributes
        .insert(IDP_SOURCE.into(), id.as_str().to_string());
    // The id this source knows them by, kept per source through the
    // merge: an offboarding revokes their sessions in each
    // (crate::revoke).
    person.attributes.insert(
        format!("{}{id}", crate::revoke::IDP_ID_PREFIX),
        p.id.clone(),
    );
    Ok(person)
}

pub use crate::engine::Held;

/// How [`crate::Roster::import_sources_with`] reads the sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSync {
    /// A full run: changes where a source's cursor is good (stored, and
    /// its last full read younger than `full_read_every`), else whole.
    Auto,
    /// A poll: changes of the incremental sources; the others keep the
    /// listing their last full read left (read whole only when there is
    /// none yet).
    Changes,
    /// Every source whole.
    Full,
    /// These people of this source re-read whole (an event hook named
    /// them; it is never taken as their state); the others as for
    /// `Changes` without reading anything.
    People {
        source: ConnectionId,
        ids: Vec<String>,
    },
}

/// How one source was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceReadKind {
    /// Whole, and why.
    Full { reason: String },
    /// Its changes since the stored cursor.
    Changes { changed: usize, removed: usize },
    /// Named people re-read.
    People { changed: usize, removed: usize },
}

/// What [`Engine::read_sources`] gives.
#[derive(Debug, Default)]
pub(crate) struct SourcesRead {
    /// Each source's whole listing after the read, in source order.
    pub people: Vec<(SourceKind, ConnectionId, Vec<Person>)>,
    /// How each source that was read was read.
    pub reads: Vec<(ConnectionId, SourceReadKind)>,
}

/// Merges the HR file's people and each IdP's, in order, by the
/// attribute mastering of the module docs. Deterministic: the same inputs
/// give the same people, sorted by employee ID.
pub fn merge(hr: &[Person], idps: &[Vec<Person>]) -> Vec<Person> {
    // Each merged person remembers whether HR knows them and whether an
    // IdP spoke about them yet.
    let mut merged: Vec<(Person, bool, bool)> =
        hr.iter().map(|p| (p.clone(), true, false)).collect();
    for idp in idps {
        // The index is rebuilt per IdP: people one IdP added can be
        // matched by the next.
        let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_email: BTreeMap<String, usize> = BTreeMap::new();
        for (i, (p, _, _)) in merged.iter().enumerate() {
            by_id.entry(p.employee_id.as_str().to_string()).or_insert(i);
            for e in std::iter::once(&p.email).chain(p.aliases.iter()) {
                by_email.entry(e.as_str().to_lowercase()).or_insert(i);
            }
        }
        // Live listings first, then the deactivated ones: a person one IdP
        // lists twice (a rehire's new account beside the old, deactivated
        // one with the same address) is live, and the old account must
        // not terminate them. Sorted, so the order the IdP listed people
        // in does not matter.
        let mut listing: Vec<&Person> = idp.iter().collect();
        listing.sort_by_cached_key(|p| {
            (
                p.status == EmploymentStatus::Terminated,
                p.employee_id.as_str().to_string(),
                p.email.as_str().to_lowercase(),
            )
        });
        // The people this IdP lists live.
        let mut live: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
        for from in listing {
            let found = by_id.get(from.employee_id.as_str()).copied().or_else(|| {
                std::iter::once(&from.email)
                    .chain(from.aliases.iter())
                    .find_map(|e| by_email.get(&e.as_str().to_lowercase()).copied())
            });
            let i = match found {
                None => {
                    merged.push((from.clone(), false, true));
                    let i = merged.len() - 1;
                    // Indexed now, so a second listing by this IdP matches.
                    by_id
                        .entry(from.employee_id.as_str().to_string())
                        .or_insert(i);
                    for e in std::iter::once(&from.email).chain(from.aliases.iter()) {
                        by_email.entry(e.as_str().to_lowercase()).or_insert(i);
                    }
                    i
                }
                Some(i) => {
                    let (into, from_hr, seen) = &mut merged[i];
                    fold(into, *from_hr, !*seen, !live.contains(&i), from);
                    *seen = true;
                    i
                }
            };
            if from.status != EmploymentStatus::Terminated {
                live.insert(i);
            }
        }
    }
    let mut people: Vec<Person> = merged.into_iter().map(|(p, _, _)| p).collect();
    people.sort_by(|a, b| a.employee_id.as_str().cmp(b.employee_id.as_str()));
    people
}

/// Folds what one IdP says about a person into what is known (module
/// docs). `hr`: HR knows the person. `first`: this is the first IdP to
/// speak about them where one value must be chosen. `may_terminate`:
/// this IdP does not also list them live.
fn fold(into: &mut Person, hr: bool, first: bool, may_terminate: bool, from: &Person) {
    // Status: HR's, or the first IdP's; any "left" terminates.
    if from.status == EmploymentStatus::Terminated && may_terminate {
        into.status = EmploymentStatus::Terminated;
    }
    // The IdP owns the primary address; HR's becomes an alias.
    if hr && first && from.email != into.email {
        let old = std::mem::replace(&mut into.email, from.email.clone());
        into.aliases.push(old);
    }
    for a in std::iter::once(&from.email).chain(from.aliases.iter()) {
        if *a != into.email && !into.aliases.contains(a) {
            into.aliases.push(a.clone());
        }
    }
    into.aliases.sort();
    into.aliases.dedup();
    // Groups: every IdP's together.
    into.groups.extend(from.groups.iter().cloned());
    into.groups.sort();
    into.groups.dedup();
    // Manager: the first IdP's; later ones fill a gap.
    if from.manager_email.is_some() && (first || into.manager_email.is_none()) {
        into.manager_email = from.manager_email.clone();
    }
    // HR owns dates, cost center, department and names; an IdP fills gaps.
    if into.start_date.is_none() {
        into.start_date = from.start_date;
    }
    if into.end_date.is_none() {
        into.end_date = from.end_date;
    }
    if into.cost_center.is_empty() {
        into.cost_center = from.cost_center.clone();
    }
    if into.department.is_empty() {
        into.department = from.department.clone();
    }
    for (k, v) in &from.attributes {
        into.attributes
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}

pub use crate::config::IDP_SOURCE;

/// People the last snapshot had from one of `read` (by [`IDP_SOURCE`])
/// whom the merged snapshot no longer has under any identifier: gone from
/// a complete read of their IdP, which is how a deletion shows (OneLogin
/// and Google delete leavers; Okta deletes only the deactivated). They are
/// carried as terminated (`idp_state = "removed"`), so their accounts
/// close as a leaver's rather than lingering as orphans; the terminations
/// count toward the source-change guard like any other, so a directory
/// that loses many people at once holds them all.
pub fn vanished(previous: &[Person], merged: &[Person], read: &[ConnectionId]) -> Vec<Person> {
    let mut ids = std::collections::BTreeSet::new();
    let mut emails = std::collections::BTreeSet::new();
    for p in merged {
        ids.insert(p.employee_id.as_str().to_string());
        for e in std::iter::once(&p.email).chain(p.aliases.iter()) {
            emails.insert(e.as_str().to_lowercase());
        }
    }
    previous
        .iter()
        .filter(|p| {
            p.attributes
                .get(IDP_SOURCE)
                .is_some_and(|s| read.iter().any(|r| r.as_str() == s))
        })
        .filter(|p| {
            !ids.contains(p.employee_id.as_str())
                && !std::iter::once(&p.email)
                    .chain(p.aliases.iter())
                    .any(|e| emails.contains(&e.as_str().to_lowercase()))
        })
        .map(|p| {
            let mut p = p.clone();
            p.status = EmploymentStatus::Terminated;
            p.attributes.insert("idp_state".into(), "removed".into());
            p.attributes.insert("idp_flag".into(), "removed".into());
            // Gone from those IdPs: there is no session of theirs to end
            // there (deleting a user ends them), so no revocation asks.
            for r in read {
                p.attributes
                    .remove(&format!("{}{r}", crate::revoke::IDP_ID_PREFIX));
            }
            p.attributes.remove("idp_id");
            p
        })
        .collect()
}

/// The people of `merged` whose record differs from `previous`'s (new
/// ones included): who an import changed, and so who a poll or a hook
/// reconciles.
pub fn changed_people(previous: &[Person], merged: &[Person]) -> Vec<Person> {
    let before: BTreeMap<&str, &Person> = previous
        .iter()
        .map(|p| (p.employee_id.as_str(), p))
        .collect();
    merged
        .iter()
        .filter(|p| before.get(p.employee_id.as_str()) != Some(p))
        .cloned()
        .collect()
}

/// What one import of the sources is called in the audit log.
pub(crate) fn label(hr: Option<&str>, sources: &[ConnectionId]) -> String {
    hr.into_iter()
        .map(str::to_string)
        .chain(sources.iter().map(|s| s.to_string()))
        .collect::<Vec<_>>()
        .join(" + ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::{Email, EmployeeId};

    fn person(id: &str, email: &str, status: EmploymentStatus) -> Person {
        Person {
            employee_id: EmployeeId::new(id),
            email: Email::parse(email).unwrap(),
            aliases: Vec::new(),
            first_name: "F".into(),
            last_name: "L".into(),
            department: String::new(),
            cost_center: String::new(),
            manager_email: None,
            status,
            start_date: None,
            end_date: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    use EmploymentStatus::{Active, Leave, Terminated};

    #[test]
    fn hr_owns_status_and_dates_the_idp_owns_address_groups_and_manager() {
        let mut hr = person("E1", "ann@old.example", Active);
        hr.cost_center = "CC-HR".into();
        hr.department = "Finance".into();
        hr.end_date = Some(time::macros::date!(2030 - 01 - 31));
        hr.manager_email = Email::parse("hrboss@acme.example").ok();
        let mut idp = person("E1", "ann@acme.example", Leave);
        idp.aliases = vec![Email::parse("ann@old.example").unwrap()];
        idp.cost_center = "CC-IDP".into();
        idp.groups = vec!["Sales".into()];
        idp.manager_email = Email::parse("boss@acme.example").ok();
        idp.end_date = Some(time::macros::date!(2029 - 01 - 01));
        idp.attributes
            .insert("idp_state".into(), "SUSPENDED".into());
        let out = merge(&[hr], &[vec![idp]]);
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(p.status, Active, "HR owns status; suspended is not left");
        assert_eq!(p.email.as_str(), "ann@acme.example");
        assert_eq!(p.aliases, vec![Email::parse("ann@old.example").unwrap()]);
        assert_eq!(p.cost_center, "CC-HR");
        assert_eq!(p.department, "Finance");
        assert_eq!(p.end_date, Some(time::macros::date!(2030 - 01 - 31)));
        assert_eq!(p.groups, vec!["Sales".to_string()]);
        assert_eq!(
            p.manager_email.as_ref().unwrap().as_str(),
            "boss@acme.example"
        );
        assert_eq!(p.attribute("idp_state").as_deref(), Some("SUSPENDED"));
    }

    #[test]
    fn people_match_by_address_an_idp_leaver_terminates_and_idp_only_people_come_in() {
        let hr = vec![
            person("E1", "ann@acme.example", Active),
            person("E2", "bob@acme.example", Active),
        ];
        // Okta knows Ann by address only, and she left; Carol only Okta knows.
        let okta = vec![
            person("okta:00u1", "ANN@acme.example", Terminated),
            person("okta:00u3", "carol@acme.example", Active),
        ];
        // Google lists Bob suspended (leave) and Carol with a group.
        let mut carol = person("google:9", "carol@acme.example", Active);
        carol.groups = vec!["Eng".into()];
        let google = vec![person("google:8", "bob@acme.example", Leave), carol];
        let out = merge(&hr, &[okta.clone(), google.clone()]);
        let find = |id: &str| out.iter().find(|p| p.employee_id.as_str() == id).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            find("E1").status,
            Terminated,
            "an IdP that says left terminates"
        );
        assert_eq!(find("E2").status, Active, "HR owns status otherwise");
        assert_eq!(find("okta:00u3").groups, vec!["Eng".to_string()]);
        // Deterministic whatever the order of people within a source.
        let mut okta_rev = okta;
        okta_rev.reverse();
        let mut google_rev = google;
        google_rev.reverse();
        assert_eq!(merge(&hr, &[okta_rev, google_rev]), out);
        // Without HR, the IdP is the whole truth.
        let only = merge(&[], &[vec![person("okta:00u1", "ann@acme.example", Leave)]]);
        assert_eq!(only[0].status, Leave);
    }

    #[test]
    fn a_person_gone_from_a_complete_idp_read_is_carried_as_terminated() {
        let mut ann = person("okta:1", "ann@acme.example", Active);
        ann.attributes
            .insert(IDP_SOURCE.into(), "source.okta".into());
        let mut bob = person("okta:2", "bob@acme.example", Active);
        bob.attributes
            .insert(IDP_SOURCE.into(), "source.okta".into());
        let mut cat = person("g:3", "cat@acme.example", Active);
        cat.attributes
            .insert(IDP_SOURCE.into(), "source.google".into());
        let hr_only = person("E9", "hr@acme.example", Active);
        let previous = vec![ann.clone(), bob.clone(), cat, hr_only];
        // Okta was read and lists only Bob; Google was not read this time.
        let okta = ConnectionId::new("source.okta");
        let gone = vanished(&previous, &[bob.clone()], std::slice::from_ref(&okta));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].employee_id.as_str(), "okta:1");
        assert_eq!(gone[0].status, Terminated);
        assert_eq!(gone[0].attribute("idp_state").as_deref(), Some("removed"));
        // Listed under another identifier (moved to another IdP, renumbered):
        // not gone.
        let mut moved = person("E1", "ann@acme.example", Active);
        moved.aliases = vec![];
        assert!(vanished(&previous, &[bob, moved], &[okta]).is_empty());
    }

    #[test]
    fn a_rehire_listed_beside_their_old_deactivated_account_stays_active() {
        // HR knows Bob; Okta lists his old account (deactivated) and his
        // new one under the same address, in either order.
        let hr = vec![person("E2", "bob@acme.example", Active)];
        let old = person("okta:00u1", "bob@acme.example", Terminated);
        let new = person("okta:00u9", "bob@acme.example", Active);
        for okta in [
            vec![old.clone(), new.clone()],
            vec![new.clone(), old.clone()],
        ] {
            let out = merge(&hr, std::slice::from_ref(&okta));
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0].status, Active);
            // Without HR too: one person, active.
            let out = merge(&[], &[okta]);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0].status, Active);
        }
        // Only the deactivated account: he left.
        assert_eq!(merge(&hr, &[vec![old]])[0].status, Terminated);
    }

    #[test]
    fn the_audit_label_names_every_source() {
        assert_eq!(
            label(
                Some("people.csv"),
                &[
                    ConnectionId::new("source.entra"),
                    ConnectionId::new("source.okta")
                ]
            ),
            "people.csv + source.entra + source.okta"
        );
    }
}
