//! The introspection cache and the worker behind it: SHA-256-keyed entries with TTL rules (capped by the token's
//! `exp`, negative entries, refresh-ahead, stale-if-error), and one introspection worker thread that coalesces
//! concurrent misses for a token into one IdP call and bounds the calls in flight.
//!
//! Why a worker thread: actix-web runs one single-threaded runtime per worker and awc clients are not `Send`, so
//! misses from all workers are funnelled to one thread that owns the IdP client, its connection pool and the
//! in-flight table. Hits never leave the request's thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{IdpError, IdpHealth, Introspect, Introspection, RoleScope, TokenInfo};
use crate::clock::Clock;
use crate::config::{CacheConfig, HeaderRule, Secret};
use crate::metrics::Metrics;

/// SHA-256 of the token: the cache never holds a token.
pub type Key = [u8; 32];

pub fn key_of(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// A cached introspection; the `TokenInfo` sits inline so that an entry is one allocation, not two.
pub struct Entry {
    info: TokenInfo,
    /// Times in clock milliseconds.
    created: u64,
    fresh_until: u64,
    refresh_at: Option<u64>,
    stale_until: u64,
    refresh_requested: AtomicBool,
}

/// What a lookup hands out: a shared entry, read as its `TokenInfo`.
#[derive(Clone)]
pub struct Cached(Arc<Entry>);

impl std::ops::Deref for Cached {
    type Target = TokenInfo;
    fn deref(&self) -> &TokenInfo {
        &self.0.info
    }
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.info.fmt(f)
    }
}

type Outcome = Result<Cached, IdpError>;

struct Job {
    key: Key,
    token: Secret,
    reply: Option<oneshot::Sender<Outcome>>,
    refresh: bool,
}

/// State shared by the request threads and the worker.
struct Store {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    settings: CacheConfig,
    mapping: Vec<HeaderRule>,
    roles: RoleScope,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    health: Arc<IdpHealth>,
}

impl Store {
    /// Builds the entry for a fresh answer and keeps it if the rules allow; returns what the caller gets.
    fn insert(&self, key: Key, introspection: &Introspection) -> Cached {
        let info = TokenInfo::from_introspection(introspection, &self.mapping, &self.roles);
        if info.rejected_headers > 0 {
            self.metrics
                .rejected_header_values
                .inc_by(u64::from(info.rejected_headers));
        }
        let now = self.clock.now_millis();
        let s = &self.settings;
        let (lifetime, stale_for) = if info.active {
            let mut ttl = s.ttl.as_millis() as u64;
            if let Some(exp) = info.exp {
                ttl = ttl.min((exp * 1000).saturating_sub(now));
            }
            let stale = (s.stale_if_error.as_millis() as u64)
                .min(info.exp.map_or(u64::MAX, |exp| (exp * 1000).saturating_sub(now + ttl)));
            (ttl, stale)
        } else {
            (s.negative_ttl.as_millis() as u64, 0)
        };
        let refresh_at =
            (info.active && s.refresh_ahead > 0.0).then(|| now + (lifetime as f64 * s.refresh_ahead) as u64);
        let entry = Arc::new(Entry {
            info,
            created: now,
            fresh_until: now + lifetime,
            refresh_at,
            stale_until: now + lifetime + stale_for,
            refresh_requested: AtomicBool::new(false),
        });
        if lifetime > 0 {
            self.entries.insert(key, entry.clone());
        }
        Cached(entry)
    }
}

/// The request side: look a token up, and on a miss ask the worker.
#[derive(Clone)]
pub struct TokenCache {
    store: Arc<Store>,
    jobs: mpsc::UnboundedSender<Job>,
}

/// The worker side, fed by the `TokenCache` that `new` returns with it.
pub struct Worker {
    store: Arc<Store>,
    jobs: mpsc::UnboundedReceiver<Job>,
    max_concurrent: usize,
    wait_limit: Duration,
}

pub struct CacheParts {
    pub settings: CacheConfig,
    pub mapping: Vec<HeaderRule>,
    pub roles: RoleScope,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<IdpHealth>,
    /// `idp.max_concurrent`.
    pub max_concurrent: usize,
    /// How long a call may wait for a free slot: `idp.timeout`.
    pub wait_limit: Duration,
}

pub fn new(parts: CacheParts) -> (TokenCache, Worker) {
    let entries = moka::sync::Cache::builder()
        .max_capacity(parts.settings.max_entries)
        .expire_after(RealTimeExpiry)
        .build();
    let store = Arc::new(Store {
        entries,
        settings: parts.settings,
        mapping: parts.mapping,
        roles: parts.roles,
        clock: parts.clock,
        metrics: parts.metrics,
        health: parts.health,
    });
    let (tx, rx) = mpsc::unbounded_channel();
    (
        TokenCache {
            store: store.clone(),
            jobs: tx,
        },
        Worker {
            store,
            jobs: rx,
            max_concurrent: parts.max_concurrent,
            wait_limit: parts.wait_limit,
        },
    )
}

/// Memory is bounded in real time even when tests drive the cache's own clock: an entry is dropped once its
/// whole useful span (fresh, then stale-if-error) has passed since insertion.
struct RealTimeExpiry;

impl moka::Expiry<Key, Arc<Entry>> for RealTimeExpiry {
    fn expire_after_create(&self, _: &Key, e: &Arc<Entry>, _: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_millis(e.stale_until.saturating_sub(e.created)))
    }
}

impl TokenCache {
    /// The token's introspection, from the cache when fresh, else from the IdP (shared with concurrent callers).
    pub async fn get(&self, token: &str) -> Outcome {
        let store = &self.store;
        let key = key_of(token);
        let now = store.clock.now_millis();
        let cached = store.entries.get(&key);
        if let Some(e) = &cached
            && now < e.fresh_until
        {
            if e.refresh_at.is_some_and(|at| now >= at) && !e.refresh_requested.swap(true, Ordering::Relaxed) {
                let job = Job {
                    key,
                    token: Secret::new(token),
                    reply: None,
                    refresh: true,
                };
                if self.jobs.send(job).is_err() {
                    e.refresh_requested.store(false, Ordering::Relaxed);
                }
            }
            store.metrics.labelled.hit.inc();
            return Ok(Cached(e.clone()));
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            key,
            token: Secret::new(token),
            reply: Some(tx),
            refresh: false,
        };
        let result = match self.jobs.send(job) {
            Ok(()) => rx.await.unwrap_or(Err(IdpError::WorkerGone)),
            Err(_) => Err(IdpError::WorkerGone),
        };
        if let Err(err) = &result
            && let Some(e) = cached
            && err.is_transient()
        {
            let now = store.clock.now_millis();
            let exp_ok = e.info.exp.is_none_or(|exp| exp * 1000 > now);
            if e.info.active && now < e.stale_until && exp_ok {
                log::warn!("serving a cached introspection past its TTL (cache.stale_if_error): {err}");
                store.metrics.labelled.stale.inc();
                return Ok(Cached(e.clone()));
            }
        }
        store.metrics.labelled.miss.inc();
        result
    }

    /// Entries held now (after pending evictions have run).
    pub fn entry_count(&self) -> u64 {
        self.store.entries.run_pending_tasks();
        self.store.entries.entry_count()
    }

    /// Refreshes the entries gauge; called when /metrics is scraped.
    pub fn update_gauge(&self) {
        self.store.metrics.cache_entries.set(self.entry_count() as i64);
    }
}

struct WorkerState<I> {
    introspector: I,
    store: Arc<Store>,
    in_flight: RefCell<HashMap<Key, Vec<oneshot::Sender<Outcome>>>>,
    permits: Semaphore,
    wait_limit: Duration,
}

impl Worker {
    /// Runs until every `TokenCache` clone is gone. Must run on a single-threaded runtime with a `LocalSet`
    /// (actix's); `run_on_thread` gives it one of its own.
    pub async fn run<I: Introspect + 'static>(mut self, introspector: I) {
        let state = Rc::new(WorkerState {
            introspector,
            store: self.store.clone(),
            in_flight: RefCell::new(HashMap::new()),
            permits: Semaphore::new(self.max_concurrent),
            wait_limit: self.wait_limit,
        });
        let warm = state.clone();
        tokio::task::spawn_local(async move { warm.prepare_until_ready().await });
        let housekeeping = state.clone();
        tokio::task::spawn_local(async move { housekeeping.introspector.background().await });
        while let Some(job) = self.jobs.recv().await {
            state.clone().handle(job);
        }
    }

    /// The worker on a thread of its own; `make` builds the (non-`Send`) introspector there.
    pub fn run_on_thread<I, F>(self, make: F) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        I: Introspect + 'static,
        F: FnOnce() -> I + Send + 'static,
    {
        std::thread::Builder::new()
            .name("tokengate-introspection".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(self.run(make()));
            })
    }
}

impl<I: Introspect + 'static> WorkerState<I> {
    async fn prepare_until_ready(&self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.introspector.prepare().await {
                Ok(()) => {
                    self.store.health.endpoints_known();
                    return;
                }
                Err(e) => {
                    log::error!("cannot prepare identity-provider access, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn handle(self: Rc<Self>, job: Job) {
        let Job {
            key,
            token,
            reply,
            refresh,
        } = job;
        if let Some(waiters) = self.in_flight.borrow_mut().get_mut(&key) {
            if let Some(r) = reply {
                self.store.metrics.coalesced.inc();
                waiters.push(r);
            }
            return;
        }
        // A caller may have missed just before another call filled the entry: answer it from there.
        let now = self.store.clock.now_millis();
        if let Some(e) = self.store.entries.get(&key) {
            let good_until = if refresh {
                e.refresh_at.unwrap_or(e.fresh_until)
            } else {
                e.fresh_until
            };
            if now < good_until {
                if let Some(r) = reply {
                    let _ = r.send(Ok(Cached(e.clone())));
                }
                return;
            }
        }
        self.in_flight.borrow_mut().insert(key, reply.into_iter().collect());
        if refresh {
            self.store.metrics.cache_refreshes.inc();
        }
        tokio::task::spawn_local(async move {
            let result = self.call(token.expose()).await;
            let outcome = match &result {
                Ok(i) => Ok(self.store.insert(key, i)),
                Err(e) => {
                    log::error!("introspection failed: {e}");
                    if refresh && let Some(entry) = self.store.entries.get(&key) {
                        entry.refresh_requested.store(false, Ordering::Relaxed);
                    }
                    Err(e.clone())
                }
            };
            let waiters = self.in_flight.borrow_mut().remove(&key).unwrap_or_default();
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        });
    }

    async fn call(&self, token: &str) -> Result<Introspection, IdpError> {
        let permit = tokio::time::timeout(self.wait_limit, self.permits.acquire()).await;
        let result = match permit {
            Ok(Ok(_permit)) => self.introspector.introspect(token).await,
            Ok(Err(_)) => Err(IdpError::WorkerGone),
            Err(_) => {
                // Never reached the IdP, so the client's metrics did not see it.
                self.store.metrics.idp_error(&IdpError::Overloaded);
                Err(IdpError::Overloaded)
            }
        };
        self.store.health.record(&result);
        result
    }
}
