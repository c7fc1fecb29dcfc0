//! Renderings of stored resources, kept between reads.
//!
//! Serving a resource means parsing its stored body, loading its
//! membership, rendering `id`, `meta` and `groups`/`members`, projecting
//! and serializing it. [`ReadCache`] keeps the result per resource: the
//! full rendering (a JSON value, for filters and projections) and the bytes
//! of the default representation (what `GET` without `attributes` sends),
//! under the resource's *head*: its `version` and `modified_ms`.
//!
//! # Why a kept rendering is never stale
//!
//! An entry is only served after the store confirmed, in the same request,
//! that the resource is still at the entry's head
//! (`Store::scim_heads_of` through the [checker](crate::heads), batched
//! with concurrent checks; `Store::scim_find_heads`). The store moves a
//! resource's version with every change of its representation, membership
//! seen through `User.groups` and a group's rename included, and
//! `modified_ms` tells a resource apart from an earlier one with the same
//! id. So the check holds whoever wrote: this process, another process on
//! the same PostgreSQL database, or a restore. A write this process
//! acknowledged has committed before its answer went out, so any later
//! read sees its new head and renders afresh; the cache needs no
//! invalidation for correctness. Writes through this process still drop
//! their resource's entry, to free the memory early.
//!
//! The rendering also depends on the base URL (`meta.location`, `$ref`),
//! which comes from the request's `Host` unless `public_url` is set: an
//! entry is used only for the base it was rendered for.
//!
//! # Bounds
//!
//! Memory is bounded by [`ScimConfig::read_cache_bytes`](crate::ScimConfig)
//! (an estimate per entry: the serialized bytes and the value they came
//! from). Entries live in shards, each under a short-held lock (never
//! across an `.await`); a full shard drops arbitrary entries (the hash
//! map's iteration order) until the new one fits.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderValue;
use roster_store::ScimKind;
use serde_json::Value;

/// Number of shards (a power of two).
const SHARDS: usize = 32;

/// One kept rendering.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) version: i64,
    pub(crate) modified_ms: i64,
    /// The base URL it was rendered for.
    pub(crate) base: String,
    /// The full rendering (membership included).
    pub(crate) value: Value,
    /// The default representation, serialized.
    pub(crate) bytes: Bytes,
    /// The `ETag` header of `version`.
    pub(crate) etag: Option<HeaderValue>,
}

impl Rendered {
    /// A rough size in memory: the bytes, and the value they came from
    /// (about twice as large again), and the strings around them.
    fn cost(&self) -> usize {
        self.bytes.len() * 3 + self.base.len() + 128
    }

    /// Whether it may be served for a resource at this head and base.
    pub(crate) fn is(&self, version: i64, modified_ms: i64, base: &str) -> bool {
        self.version == version && self.modified_ms == modified_ms && self.base == base
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    connection: String,
    kind: ScimKind,
    id: String,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, Arc<Rendered>>,
    bytes: usize,
}

/// See the module docs.
pub(crate) struct ReadCache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Budget per shard, in bytes; 0 disables the cache.
    shard_budget: usize,
}

impl ReadCache {
    /// A cache of at most about `max_bytes` (0: keeps nothing).
    pub(crate) fn new(max_bytes: usize) -> Self {
        ReadCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            shard_budget: max_bytes / SHARDS,
        }
    }

    /// Whether it keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    fn shard(&self, connection: &str, kind: ScimKind, id: &str) -> &Mutex<Shard> {
        let mut h = self.hasher.build_hasher();
        connection.hash(&mut h);
        kind.hash(&mut h);
        id.hash(&mut h);
        let i = usize::try_from(h.finish()).unwrap_or(0) & (SHARDS - 1);
        &self.shards[i]
    }

    fn key(connection: &str, kind: ScimKind, id: &str) -> Key {
        Key {
            connection: connection.to_string(),
            kind,
            id: id.to_string(),
        }
    }

    /// The kept rendering of a resource, whatever its head (the caller
    /// checks it with [`Rendered::is`] against the store's).
    pub(crate) fn get(&self, connection: &str, kind: ScimKind, id: &str) -> Option<Arc<Rendered>> {
        if !self.enabled() {
            return None;
        }
        let shard = self
            .shard(connection, kind, id)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.map.get(&Self::key(connection, kind, id)).cloned()
    }

    /// Keeps a rendering, unless one of a later version is kept already
    /// (concurrent readers may finish out of order).
    pub(crate) fn put(&self, connection: &str, kind: ScimKind, id: &str, r: Arc<Rendered>) {
        let cost = r.cost();
        if !self.enabled() || cost > self.shard_budget {
            return;
        }
        let key = Self::key(connection, kind, id);
        let mut shard = self
            .shard(connection, kind, id)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = shard.map.get(&key) {
            if old.version > r.version {
                return;
            }
            let c = old.cost();
            shard.bytes -= c;
        }
        while shard.bytes + cost > self.shard_budget {
            let Some(victim) = shard.map.keys().next().cloned() else {
                break;
            };
            if let Some(v) = shard.map.remove(&victim) {
                shard.bytes -= v.cost();
            }
        }
        shard.bytes += cost;
        shard.map.insert(key, r);
    }

    /// Drops a resource's rendering (after this process wrote it).
    pub(crate) fn forget(&self, connection: &str, kind: ScimKind, id: &str) {
        if !self.enabled() {
            return;
        }
        let mut shard = self
            .shard(connection, kind, id)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = shard.map.remove(&Self::key(connection, kind, id)) {
            shard.bytes -= v.cost();
        }
    }

    /// Entries kept, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.map.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(version: i64, n: usize) -> Arc<Rendered> {
        Arc::new(Rendered {
            version,
            modified_ms: 7,
            base: "http://h/scim/v2/c".into(),
            value: Value::Null,
            bytes: Bytes::from(vec![b'x'; n]),
            etag: None,
        })
    }

    #[test]
    fn keeps_the_latest_version_and_matches_head_and_base() {
        let c = ReadCache::new(1 << 20);
        c.put("c", ScimKind::User, "u", rendered(2, 10));
        c.put("c", ScimKind::User, "u", rendered(1, 10));
        let got = c.get("c", ScimKind::User, "u").expect("kept");
        assert_eq!(
            got.version, 2,
            "an older rendering never replaces a newer one"
        );
        assert!(got.is(2, 7, "http://h/scim/v2/c"));
        assert!(!got.is(3, 7, "http://h/scim/v2/c"));
        assert!(!got.is(2, 8, "http://h/scim/v2/c"));
        assert!(!got.is(2, 7, "http://other/scim/v2/c"));
        assert!(c.get("c", ScimKind::Group, "u").is_none());
        assert!(c.get("d", ScimKind::User, "u").is_none());
        c.forget("c", ScimKind::User, "u");
        assert!(c.get("c", ScimKind::User, "u").is_none());
    }

    #[test]
    fn stays_within_its_budget() {
        let c = ReadCache::new(SHARDS * 4_000);
        for i in 0..1_000 {
            c.put("c", ScimKind::User, &format!("u{i}"), rendered(1, 500));
        }
        // At most 2 entries of ~1,700 bytes fit in a 4,000-byte shard.
        assert!(c.len() <= SHARDS * 2, "{} entries kept", c.len());
        assert!(c.len() >= SHARDS / 2);
        let off = ReadCache::new(0);
        off.put("c", ScimKind::User, "u", rendered(1, 10));
        assert!(off.get("c", ScimKind::User, "u").is_none());
    }
}
