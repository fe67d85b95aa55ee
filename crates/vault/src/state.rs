//! The daemon's shared state: the database behind a mutex, and in-memory caches of token
//! bindings and credentials that are dropped whenever the database changes (SQLite's
//! `data_version`, checked at most every 50 ms), so a revocation elsewhere takes effect quickly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use terok_credentials::routes::{Route, RouteTable};
use terok_credentials::{Credential, CredentialDb, TokenRecord, token_hash};

use crate::audit::AuditLog;
use crate::paths::VaultPaths;

const RECHECK: Duration = Duration::from_millis(50);
/// Bytes of request bodies held in memory at once, across every listener.
const BODY_BUDGET: usize = 64 * 1024 * 1024;

struct Caches {
    tokens: HashMap<String, Arc<TokenRecord>>,
    /// By credential set, then provider: looked up with borrowed names, no key built.
    credentials: HashMap<String, HashMap<String, Arc<Credential>>>,
    data_version: i64,
    checked: Instant,
}

/// Everything request handlers share.
pub struct Shared {
    db: Mutex<CredentialDb>,
    caches: RwLock<Caches>,
    routes: RwLock<ServedTable>,
    /// HTTP client for upstreams (pooled).
    pub client: crate::tls::UpstreamClient,
    /// The audit log.
    pub audit: AuditLog,
    /// The vault's paths.
    pub paths: VaultPaths,
    /// Where the data key came from (for status).
    pub key_source: String,
    /// Upstreams refusing stored credentials.
    pub rejections: crate::rejections::Rejections,
    /// Bytes of request bodies all listeners together may hold in memory at once.
    pub body_budget: tokio::sync::Semaphore,
    /// Time a client has to send a body the vault holds whole: a slow one would keep its
    /// share of [`Shared::body_budget`] from the others.
    pub body_deadline: std::time::Duration,
}

impl Shared {
    /// Wraps an open database.
    pub fn new(
        db: CredentialDb,
        routes: RouteTable,
        client: crate::tls::UpstreamClient,
        audit: AuditLog,
        paths: VaultPaths,
        key_source: String,
    ) -> Self {
        let version = db.data_version().unwrap_or(0);
        Self {
            db: Mutex::new(db),
            caches: RwLock::new(Caches {
                tokens: HashMap::new(),
                credentials: HashMap::new(),
                data_version: version,
                checked: Instant::now(),
            }),
            routes: RwLock::new(ServedTable::new(routes)),
            client,
            audit,
            paths,
            key_source,
            rejections: crate::rejections::Rejections::default(),
            body_budget: tokio::sync::Semaphore::new(BODY_BUDGET),
            body_deadline: std::time::Duration::from_secs(30),
        }
    }

    /// The same, giving clients `deadline` to send a body the vault holds whole.
    pub fn with_body_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.body_deadline = deadline;
        self
    }

    /// Runs `f` with the database. A call can block — SQLite waits up to its lock timeout for
    /// another process —, so on a multi-thread runtime the worker first hands its other tasks
    /// to a new thread: the daemon serves every container from one worker, which must not
    /// stall them all behind one slow database call.
    pub fn with_db<T>(&self, f: impl FnOnce(&CredentialDb) -> T) -> T {
        let call = || match self.db.lock() {
            Ok(db) => f(&db),
            Err(poisoned) => f(&poisoned.into_inner()),
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(call)
        } else {
            call()
        }
    }

    /// Drops the caches if the database changed since they were filled.
    fn refresh_if_stale(&self) {
        let stale = self
            .caches
            .read()
            .map(|c| c.checked.elapsed() >= RECHECK)
            .unwrap_or(true);
        if !stale {
            return;
        }
        // Never waits on the request path: while this daemon's own database call runs, or
        // another process holds the database, the check is left to a later request — a
        // change is only visible once its writer commits anyway.
        let db = match self.db.try_lock() {
            Ok(db) => db,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let Some(version) = db.data_version_now() else {
            return;
        };
        drop(db);
        if let Ok(mut caches) = self.caches.write() {
            if caches.data_version != version {
                caches.tokens.clear();
                caches.credentials.clear();
                caches.data_version = version;
            }
            caches.checked = Instant::now();
        }
    }

    /// Forgets every cached binding and credential (after this daemon changed the database).
    pub fn invalidate(&self) {
        if let Ok(mut caches) = self.caches.write() {
            caches.tokens.clear();
            caches.credentials.clear();
            caches.checked = Instant::now() - RECHECK;
        }
    }

    /// The binding of a presented token, if it is live.
    pub fn lookup_token(&self, token: &str) -> Option<Arc<TokenRecord>> {
        self.refresh_if_stale();
        let hash = token_hash(token);
        if let Ok(caches) = self.caches.read()
            && let Some(record) = caches.tokens.get(&hash)
        {
            return Some(record.clone());
        }
        let record = Arc::new(self.with_db(|db| db.lookup_hash(&hash)).ok().flatten()?);
        if let Ok(mut caches) = self.caches.write() {
            caches.tokens.insert(hash, record.clone());
        }
        Some(record)
    }

    /// The stored credential of `provider` in `set`.
    pub fn credential(&self, set: &str, provider: &str) -> Result<Option<Arc<Credential>>, String> {
        self.refresh_if_stale();
        if let Ok(caches) = self.caches.read()
            && let Some(credential) = caches.credentials.get(set).and_then(|by| by.get(provider))
        {
            return Ok(Some(credential.clone()));
        }
        let loaded = self
            .with_db(|db| db.load_credential(set, provider))
            .map_err(|e| e.to_string())?
            .map(Arc::new);
        if let (Some(credential), Ok(mut caches)) = (&loaded, self.caches.write()) {
            caches
                .credentials
                .entry(set.to_owned())
                .or_default()
                .insert(provider.to_owned(), credential.clone());
        }
        Ok(loaded)
    }

    /// The route of `provider`.
    pub fn route(&self, provider: &str) -> Option<Arc<Route>> {
        self.routes
            .read()
            .ok()
            .and_then(|r| r.by_provider.get(provider).cloned())
    }

    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.routes.read().map(|r| r.by_provider.len()).unwrap_or(0)
    }

    /// The fingerprint of the served route table.
    pub fn routes_hash(&self) -> String {
        self.routes
            .read()
            .map(|r| r.hash.clone())
            .unwrap_or_default()
    }

    /// Replaces the route table.
    pub fn set_routes(&self, routes: RouteTable) {
        if let Ok(mut current) = self.routes.write() {
            *current = ServedTable::new(routes);
        }
    }

    /// A snapshot of the routes.
    pub fn routes(&self) -> RouteTable {
        self.routes
            .read()
            .map(|r| {
                r.by_provider
                    .iter()
                    .map(|(k, v)| (k.clone(), Route::clone(v)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The routes as handlers look them up, and the fingerprint of the table they came from.
struct ServedTable {
    by_provider: HashMap<String, Arc<Route>>,
    hash: String,
}

impl ServedTable {
    fn new(routes: RouteTable) -> Self {
        Self {
            hash: terok_credentials::routes::routes_hash(&routes),
            by_provider: routes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }
}
