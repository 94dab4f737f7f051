//! The memory cache in front of every other verifier layer: SHA-256-keyed entries that live by `Lifetimes`,
//! concurrent misses for one token coalesced into one call to the next layer, refresh-ahead in the background,
//! and stale-if-error. Hits never leave the caller's thread and never allocate beyond an `Arc` clone.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::oneshot;

use super::error::IdpError;
use super::info::TokenInfo;
use super::lookup::{CacheSettings, ClientKey, Key, Lifetimes, Lookup, LookupRequest, Source, key_of};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// A cached answer; the `TokenInfo` sits inline so that an entry is one allocation, not two.
pub struct Entry {
    info: TokenInfo,
    life: Lifetimes,
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

/// A token's info and where it came from.
#[derive(Debug, Clone)]
pub struct Hit {
    pub info: Cached,
    pub source: Source,
}

type Answer = Result<(Cached, Source), IdpError>;

/// Counters resolved once, so a hit does no label lookup.
struct Counters {
    hit: IntCounter,
    miss: IntCounter,
    stale: IntCounter,
    coalesced: IntCounter,
    refreshes: IntCounter,
    entries: IntGauge,
}

pub struct MemoryCache {
    entries: quick_cache::sync::Cache<Key, Arc<Entry>>,
    /// Calls to the next layer in progress, with whoever waits for them.
    in_flight: Mutex<HashMap<Key, Vec<oneshot::Sender<Answer>>>>,
    next: Arc<dyn Lookup>,
    settings: CacheSettings,
    clock: Arc<dyn Clock>,
    /// `idp.timeout`, the budget of a background refresh.
    refresh_timeout: Duration,
    counters: Counters,
}

impl MemoryCache {
    pub fn new(
        settings: CacheSettings,
        next: Arc<dyn Lookup>,
        clock: Arc<dyn Clock>,
        metrics: &Metrics,
        refresh_timeout: Duration,
    ) -> Self {
        let lookups = |r: &str| metrics.cache_lookups.with_label_values(&[r]);
        MemoryCache {
            entries: quick_cache::sync::Cache::new(usize::try_from(settings.max_entries).unwrap_or(usize::MAX)),
            in_flight: Mutex::new(HashMap::new()),
            next,
            settings,
            clock,
            refresh_timeout,
            counters: Counters {
                hit: lookups("hit"),
                miss: lookups("miss"),
                stale: lookups("stale"),
                coalesced: metrics.coalesced.clone(),
                refreshes: metrics.cache_refreshes.clone(),
                entries: metrics.cache_entries.clone(),
            },
        }
    }

    /// The token's info: from memory when fresh, else from the next layer (one call shared by every concurrent
    /// caller). `deadline` bounds the wait on the identity provider.
    pub async fn get(self: &Arc<Self>, token: &str, client: ClientKey, deadline: Instant) -> Result<Hit, IdpError> {
        let key = key_of(token);
        let now = self.clock.now_millis();
        let cached = self.entries.get(&key);
        if let Some(e) = &cached
            && e.life.is_fresh(now)
        {
            if e.life.wants_refresh(now) && !e.refresh_requested.swap(true, Ordering::Relaxed) {
                self.counters.refreshes.inc();
                let refresh_deadline = Instant::now() + self.refresh_timeout;
                self.fetch(key, || request(token, key, client, refresh_deadline, true), None);
            }
            self.counters.hit.inc();
            return Ok(Hit {
                info: Cached(e.clone()),
                source: Source::CacheHit,
            });
        }
        let (tx, rx) = oneshot::channel();
        let joined = self.fetch(key, || request(token, key, client, deadline, false), Some(tx));
        let answer = rx.await.unwrap_or(Err(IdpError::WorkerGone));
        match answer {
            Ok((info, source)) => {
                self.counters.miss.inc();
                let source = if joined { Source::Coalesced } else { source };
                Ok(Hit { info, source })
            }
            Err(err) => match cached.filter(|e| self.usable_when_failing(e, &err)) {
                Some(e) => {
                    log::warn!("serving a cached answer past its TTL (cache.stale_if_error): {err}");
                    self.counters.stale.inc();
                    Ok(Hit {
                        info: Cached(e),
                        source: Source::Stale,
                    })
                }
                None => {
                    self.counters.miss.inc();
                    Err(err)
                }
            },
        }
    }

    /// Stale-if-error: only for failures that say nothing about the token, only for an active entry, only within
    /// the window, and never past the token's own `exp`.
    fn usable_when_failing(&self, e: &Entry, err: &IdpError) -> bool {
        let now = self.clock.now_millis();
        err.is_transient()
            && e.info.active
            && now < e.life.stale_until
            && e.info.exp.is_none_or(|exp| exp.saturating_mul(1000) > now)
    }

    /// Starts a call to the next layer for `key`, or joins the one in progress. Returns true when it joined.
    fn fetch(
        self: &Arc<Self>,
        key: Key,
        make_request: impl FnOnce() -> LookupRequest,
        waiter: Option<oneshot::Sender<Answer>>,
    ) -> bool {
        let Ok(mut in_flight) = self.in_flight.lock() else {
            if let Some(w) = waiter {
                let _ = w.send(Err(IdpError::WorkerGone));
            }
            return false;
        };
        if let Some(waiters) = in_flight.get_mut(&key) {
            if let Some(w) = waiter {
                self.counters.coalesced.inc();
                waiters.push(w);
            }
            return true;
        }
        // A caller may have missed just before another call filled the entry: answer it from there.
        if let Some(w) = waiter {
            let now = self.clock.now_millis();
            if let Some(e) = self.entries.get(&key).filter(|e| e.life.is_fresh(now)) {
                let _ = w.send(Ok((Cached(e), Source::CacheHit)));
                return false;
            }
            in_flight.insert(key, vec![w]);
        } else {
            in_flight.insert(key, Vec::new());
        }
        drop(in_flight);
        let me = self.clone();
        let req = make_request();
        // Its own task: the call finishes (and fills the cache) even if the check that started it goes away.
        tokio::spawn(async move { me.complete(key, req).await });
        false
    }

    async fn complete(self: Arc<Self>, key: Key, req: LookupRequest) {
        let result = AssertUnwindSafe(self.next.lookup(req))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                log::error!("a verifier layer panicked; answering 503");
                Err(IdpError::WorkerGone)
            });
        let answer = match result {
            Ok(found) => {
                let now = self.clock.now_millis();
                let life = found
                    .lifetimes
                    .unwrap_or_else(|| Lifetimes::compute(&found.info, now, &self.settings));
                let entry = Arc::new(Entry {
                    info: found.info,
                    life,
                    refresh_requested: AtomicBool::new(false),
                });
                if life.cacheable() {
                    self.entries.insert(key, entry.clone());
                } else {
                    self.entries.remove(&key);
                }
                Ok((Cached(entry), found.source))
            }
            Err(e) => {
                log::warn!("lookup failed: {e}");
                // A failed refresh is tried again by a later hit.
                if let Some(entry) = self.entries.get(&key) {
                    entry.refresh_requested.store(false, Ordering::Relaxed);
                }
                Err(e)
            }
        };
        let waiters = self
            .in_flight
            .lock()
            .map(|mut m| m.remove(&key).unwrap_or_default())
            .unwrap_or_default();
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }

    /// Drops entries whose whole useful span has passed, so memory follows real use and not only the bound.
    pub fn sweep(&self) {
        let now = self.clock.now_millis();
        self.entries.retain(|_, e| now < e.life.stale_until);
        self.update_gauge();
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Refreshes the entries gauge; called when /metrics is scraped.
    pub fn update_gauge(&self) {
        self.counters
            .entries
            .set(i64::try_from(self.entry_count()).unwrap_or(i64::MAX));
    }
}

fn request(token: &str, key: Key, client: ClientKey, deadline: Instant, refresh: bool) -> LookupRequest {
    LookupRequest {
        token: Secret::new(token),
        key,
        client,
        deadline,
        refresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::token::lookup::Found;
    use futures_util::future::{BoxFuture, join_all};
    use std::sync::atomic::AtomicUsize;

    /// A next layer that counts calls, waits to be released, and answers what it is told.
    struct Fake {
        calls: AtomicUsize,
        answer: Mutex<Result<TokenInfo, IdpError>>,
        gate: tokio::sync::Semaphore,
    }

    impl Fake {
        fn new(answer: Result<TokenInfo, IdpError>) -> Arc<Fake> {
            Arc::new(Fake {
                calls: AtomicUsize::new(0),
                answer: Mutex::new(answer),
                gate: tokio::sync::Semaphore::new(0),
            })
        }
        fn set(&self, answer: Result<TokenInfo, IdpError>) {
            *self.answer.lock().unwrap() = answer;
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Lookup for Fake {
        fn lookup(&self, _: LookupRequest) -> BoxFuture<'_, Result<Found, IdpError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                self.gate.acquire().await.unwrap().forget();
                self.answer
                    .lock()
                    .unwrap()
                    .clone()
                    .map(|info| Found::new(info, Source::Introspection))
            })
        }
    }

    fn cache(fake: &Arc<Fake>, settings: CacheSettings) -> (Arc<MemoryCache>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let metrics = Metrics::register(&prometheus::Registry::new(), &[]).unwrap();
        let c = MemoryCache::new(settings, fake.clone(), clock.clone(), &metrics, Duration::from_secs(5));
        (Arc::new(c), clock)
    }

    fn active() -> TokenInfo {
        TokenInfo::new(true, None, &[], &["read"], &[])
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_call_and_hits_follow() {
        let fake = Fake::new(Ok(active()));
        let (c, _) = cache(&fake, CacheSettings::default());
        fake.gate.add_permits(1000);
        let gets = join_all((0..50).map(|_| c.get("t", ClientKey::default(), soon()))).await;
        assert!(gets.iter().all(|g| g.as_ref().is_ok_and(|h| h.info.active)));
        assert_eq!(fake.calls(), 1);
        let sources: Vec<Source> = gets.iter().map(|g| g.as_ref().unwrap().source).collect();
        assert_eq!(sources.iter().filter(|s| **s == Source::Introspection).count(), 1);
        assert_eq!(
            c.get("t", ClientKey::default(), soon()).await.unwrap().source,
            Source::CacheHit
        );
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn an_error_reaches_every_waiter_and_is_not_kept() {
        let fake = Fake::new(Err(IdpError::Timeout));
        let (c, _) = cache(&fake, CacheSettings::default());
        let gets = {
            let c = c.clone();
            tokio::spawn(async move { join_all((0..20).map(|_| c.get("t", ClientKey::default(), soon()))).await })
        };
        tokio::task::yield_now().await;
        fake.gate.add_permits(1);
        let gets = gets.await.unwrap();
        assert!(gets.iter().all(|g| matches!(g, Err(IdpError::Timeout))));
        assert_eq!(fake.calls(), 1);
        fake.set(Ok(active()));
        fake.gate.add_permits(1);
        assert!(c.get("t", ClientKey::default(), soon()).await.is_ok());
        assert_eq!(fake.calls(), 2, "the error was not cached");
    }

    #[tokio::test]
    async fn refresh_ahead_answers_at_once_and_refreshes_once() {
        let fake = Fake::new(Ok(active()));
        let (c, clock) = cache(
            &fake,
            CacheSettings {
                ttl: Duration::from_secs(10),
                refresh_ahead: 0.5,
                ..CacheSettings::default()
            },
        );
        fake.gate.add_permits(1);
        c.get("t", ClientKey::default(), soon()).await.unwrap();
        clock.advance(Duration::from_secs(6));
        // The next layer is now held: every hit must still answer at once.
        for _ in 0..5 {
            assert_eq!(
                c.get("t", ClientKey::default(), soon()).await.unwrap().source,
                Source::CacheHit
            );
        }
        tokio::task::yield_now().await;
        assert_eq!(fake.calls(), 2, "one refresh for five hits");
        fake.set(Ok(TokenInfo::inactive()));
        fake.gate.add_permits(1);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let h = c.get("t", ClientKey::default(), soon()).await.unwrap();
        assert!(
            !h.info.active,
            "the refreshed answer replaced the entry (a revocation is seen)"
        );
    }

    #[tokio::test]
    async fn stale_if_error_serves_active_entries_inside_the_window_only() {
        let fake = Fake::new(Ok(active()));
        let (c, clock) = cache(
            &fake,
            CacheSettings {
                ttl: Duration::from_secs(10),
                refresh_ahead: 0.0,
                stale_if_error: Duration::from_secs(30),
                ..CacheSettings::default()
            },
        );
        fake.gate.add_permits(1000);
        c.get("t", ClientKey::default(), soon()).await.unwrap();
        fake.set(Err(IdpError::ServerError(500)));
        clock.advance(Duration::from_secs(15));
        assert_eq!(
            c.get("t", ClientKey::default(), soon()).await.unwrap().source,
            Source::Stale
        );
        fake.set(Err(IdpError::CredentialsRejected {
            status: 400,
            error: "unauthorized_client".into(),
        }));
        assert!(
            c.get("t", ClientKey::default(), soon()).await.is_err(),
            "never for a 4xx"
        );
        fake.set(Err(IdpError::ServerError(500)));
        clock.advance(Duration::from_secs(30));
        assert!(
            c.get("t", ClientKey::default(), soon()).await.is_err(),
            "past the window"
        );
    }

    #[tokio::test]
    async fn a_panicking_layer_fails_the_waiters_instead_of_hanging_them() {
        struct Panics;
        impl Lookup for Panics {
            fn lookup(&self, _: LookupRequest) -> BoxFuture<'_, Result<Found, IdpError>> {
                Box::pin(async { panic!("layer bug") })
            }
        }
        let clock = Arc::new(ManualClock::new());
        let metrics = Metrics::register(&prometheus::Registry::new(), &[]).unwrap();
        let c = Arc::new(MemoryCache::new(
            CacheSettings::default(),
            Arc::new(Panics),
            clock,
            &metrics,
            Duration::from_secs(5),
        ));
        let r = c.get("t", ClientKey::default(), soon()).await;
        assert!(matches!(r, Err(IdpError::WorkerGone)));
    }

    #[tokio::test]
    async fn sweep_drops_what_has_lived_its_span() {
        let fake = Fake::new(Ok(active()));
        let (c, clock) = cache(&fake, CacheSettings::default());
        fake.gate.add_permits(1000);
        c.get("a", ClientKey::default(), soon()).await.unwrap();
        assert_eq!(c.entry_count(), 1);
        clock.advance(Duration::from_secs(61));
        c.sweep();
        assert_eq!(c.entry_count(), 0);
    }
}
