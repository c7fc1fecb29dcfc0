//! The router's shared state and its tunables.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roster_scim::{SchemaRegistry, ServiceProviderConfig};
use roster_store::Store;

use crate::sink::InboundSink;
use crate::tokens::TokenVerifier;

/// Limits and settings of the SCIM service provider.
#[derive(Clone, Debug)]
pub struct ScimConfig {
    /// The externally visible origin, e.g. `https://roster.example.com`,
    /// used in `meta.location` and `Location`. When `None`, the request's
    /// `Host` header is used with `http://`.
    pub public_url: Option<String>,
    /// Largest request body accepted (except Bulk), in bytes. Larger
    /// bodies get `413`.
    pub max_body_bytes: usize,
    /// Bulk: most operations in one request (advertised).
    pub bulk_max_operations: u32,
    /// Bulk: largest request body, in bytes (advertised).
    pub bulk_max_payload_bytes: usize,
    /// Most resources returned on one page (advertised as
    /// `filter.maxResults`); a larger `count` is lowered to it.
    pub max_results: u32,
    /// Page size when the client gives no `count`.
    pub default_count: usize,
    /// Most resources a filter that no index can answer may scan; beyond
    /// it the request is refused with `400 tooMany`.
    pub scan_limit: u64,
    /// How long a verified token is trusted without asking the store again
    /// (the longest a revocation takes to bite).
    pub token_cache_ttl: Duration,
    /// Memory for renderings of resources kept between reads (see
    /// `cache.rs`: each is checked against the store's version before it is
    /// served, so it is never stale). 0 turns the cache off.
    pub read_cache_bytes: usize,
}

impl Default for ScimConfig {
    fn default() -> Self {
        ScimConfig {
            public_url: None,
            max_body_bytes: 1024 * 1024,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 4 * 1024 * 1024,
            max_results: 1000,
            default_count: 100,
            scan_limit: 250_000,
            token_cache_ttl: Duration::from_secs(2),
            read_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ScimConfig {
    /// The largest request body any SCIM endpoint accepts: Bulk's
    /// advertised `maxPayloadSize`, or the plain limit if that is larger.
    /// Both the router's limit and the server's outer cap
    /// ([`crate::scim_serve_options`]) use it, so a Bulk request of exactly
    /// the advertised size is never cut off by a lower layer.
    pub fn max_request_bytes(&self) -> usize {
        self.max_body_bytes.max(self.bulk_max_payload_bytes)
    }

    /// The `/ServiceProviderConfig` this configuration implies.
    pub fn service_provider_config(&self) -> ServiceProviderConfig {
        ServiceProviderConfig::default()
            .bulk(
                self.bulk_max_operations,
                u64::try_from(self.bulk_max_payload_bytes).unwrap_or(u64::MAX),
            )
            .filter(Some(self.max_results))
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) sink: Arc<dyn InboundSink>,
    pub(crate) config: ScimConfig,
    pub(crate) registry: &'static SchemaRegistry,
    pub(crate) tokens: TokenVerifier,
    /// Striped per-resource write locks: writers of the same resource in
    /// this process queue instead of racing (and retrying); writers of
    /// different resources almost never share a stripe. Writers in other
    /// processes are still handled by the store's version check.
    pub(crate) write_locks: Vec<tokio::sync::Mutex<()>>,
    /// The group-commit writer all SCIM writes go through.
    pub(crate) writer: crate::writer::Writer,
    /// Renderings kept between reads.
    pub(crate) cache: crate::cache::ReadCache,
    /// Checks kept renderings against the store, batched.
    pub(crate) heads: crate::heads::HeadChecker,
}

/// Number of write-lock stripes.
const WRITE_LOCK_STRIPES: usize = 1024;

impl Inner {
    /// The write lock of one resource.
    pub(crate) fn write_lock(&self, connection: &str, id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        connection.hash(&mut h);
        id.hash(&mut h);
        let i = usize::try_from(h.finish() % WRITE_LOCK_STRIPES as u64).unwrap_or(0);
        &self.write_locks[i]
    }
}

/// What the SCIM router needs: the store, where inbound changes go, and
/// the configuration. Cheap to clone.
#[derive(Clone)]
pub struct ScimState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ScimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimState")
            .field("store", &self.inner.store.describe())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl ScimState {
    /// State with the default [`ScimConfig`].
    pub fn new(store: Store, sink: Arc<dyn InboundSink>) -> Self {
        Self::with_config(store, sink, ScimConfig::default())
    }

    /// State with an explicit configuration.
    pub fn with_config(store: Store, sink: Arc<dyn InboundSink>, config: ScimConfig) -> Self {
        let tokens = TokenVerifier::new(config.token_cache_ttl);
        let cache = crate::cache::ReadCache::new(config.read_cache_bytes);
        ScimState {
            inner: Arc::new(Inner {
                store,
                sink,
                config,
                registry: SchemaRegistry::standard(),
                tokens,
                write_locks: (0..WRITE_LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                writer: crate::writer::Writer::new(),
                cache,
                heads: crate::heads::HeadChecker::new(),
            }),
        }
    }

    /// The store the router serves from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &ScimConfig {
        &self.inner.config
    }
}

/// Wall-clock now in unix milliseconds (the store never reads a clock).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
