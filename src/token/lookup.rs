//! The verifier seam: the `Lookup` trait every layer implements by wrapping the next one (memory cache → local JWT
//! → shared cache → introspection), what a lookup asks and answers, and the one pure TTL arithmetic (`Lifetimes`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::error::IdpError;
use super::info::TokenInfo;
use crate::secret::Secret;

/// SHA-256 of the token: caches never hold a token.
pub type Key = [u8; 32];

pub fn key_of(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// Who is asking, for the fair share of the identity provider: the client's address as the door reads it
/// (`server.client_address`). Unknown clients share one share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ClientKey(pub Option<IpAddr>);

/// A lookup that reaches past the memory cache. Owned, so that it can outlive the check that started it (a
/// coalesced call or a background refresh finishes even if the first caller goes away).
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub token: Secret,
    pub key: Key,
    pub client: ClientKey,
    /// The one deadline for the whole wait on the identity provider (slot, discovery, exchange).
    pub deadline: Instant,
    /// A background refresh-ahead of an entry the caller still holds: a tier may answer it only with something
    /// fresher than that entry (a shared tier whose value another replica already refreshed).
    pub refresh: bool,
}

/// Where an answer came from, as the decision log and the lookup metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CacheHit,
    Introspection,
    Coalesced,
    Stale,
    LocalJwt,
    SharedHit,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::CacheHit => "cache_hit",
            Source::Introspection => "introspection",
            Source::Coalesced => "coalesced",
            Source::Stale => "stale",
            Source::LocalJwt => "local_jwt",
            Source::SharedHit => "shared_hit",
        }
    }
}

/// What a layer learned about a token.
#[derive(Debug, Clone)]
pub struct Found {
    pub info: TokenInfo,
    pub source: Source,
    /// Set by a tier that already decided how long the answer lives (a shared cache hit keeps its own clock);
    /// otherwise the memory cache computes them.
    pub lifetimes: Option<Lifetimes>,
}

impl Found {
    pub fn new(info: TokenInfo, source: Source) -> Found {
        Found {
            info,
            source,
            lifetimes: None,
        }
    }
}

/// A verifier layer. The future is `Send`, so that every front door (actix, tonic) can await it.
pub trait Lookup: Send + Sync {
    fn lookup(&self, req: LookupRequest) -> BoxFuture<'_, Result<Found, IdpError>>;
}

/// The cache rules (`[cache]`), shared by every cache tier.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub max_entries: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub refresh_ahead: f64,
    pub stale_if_error: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entries: 100_000,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            refresh_ahead: 0.8,
            stale_if_error: Duration::ZERO,
        }
    }
}

/// How long an answer lives, in clock milliseconds: fresh until `fresh_until`, refreshed in the background from
/// `refresh_at`, and usable when the IdP fails until `stale_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub created: u64,
    pub fresh_until: u64,
    pub refresh_at: Option<u64>,
    pub stale_until: u64,
}

impl Lifetimes {
    /// The TTL rules, in one place:
    /// - active: min(`ttl`, `exp` − now); refresh-ahead at that share of it; stale-if-error for at most
    ///   `stale_if_error` more, never past `exp`;
    /// - inactive: `negative_ttl`, no refresh, no stale use.
    pub fn compute(info: &TokenInfo, now: u64, s: &CacheSettings) -> Lifetimes {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let exp_ms = info.exp.map(|e| e.saturating_mul(1000));
        let (lifetime, stale_for) = if info.active {
            let ttl = exp_ms.map_or(millis(s.ttl), |exp| millis(s.ttl).min(exp.saturating_sub(now)));
            let stale_cap = exp_ms.map_or(u64::MAX, |exp| exp.saturating_sub(now.saturating_add(ttl)));
            (ttl, millis(s.stale_if_error).min(stale_cap))
        } else {
            (millis(s.negative_ttl), 0)
        };
        let refresh_at = (info.active && s.refresh_ahead > 0.0 && lifetime > 0)
            .then(|| now.saturating_add((lifetime as f64 * s.refresh_ahead) as u64));
        let fresh_until = now.saturating_add(lifetime);
        Lifetimes {
            created: now,
            fresh_until,
            refresh_at,
            stale_until: fresh_until.saturating_add(stale_for),
        }
    }

    /// Worth keeping at all (a zero negative TTL, or a token at its `exp`, is not).
    pub fn cacheable(&self) -> bool {
        self.fresh_until > self.created
    }

    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.fresh_until
    }

    pub fn wants_refresh(&self, now: u64) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }

    /// How long a tier should keep it from `now` (fresh and stale), e.g. a Redis `PX`.
    pub fn remaining(&self, now: u64) -> Duration {
        Duration::from_millis(self.stale_until.saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttl: u64, negative: u64, refresh: f64, stale: u64) -> CacheSettings {
        CacheSettings {
            max_entries: 10,
            ttl: Duration::from_millis(ttl),
            negative_ttl: Duration::from_millis(negative),
            refresh_ahead: refresh,
            stale_if_error: Duration::from_millis(stale),
        }
    }

    #[test]
    fn lifetimes_table() {
        let now = 1_000_000_000; // ms
        let active = |exp: Option<u64>| TokenInfo::new(true, exp, &[], &[], &[]);
        let inactive = TokenInfo::inactive();
        let l = |fresh: u64, refresh: Option<u64>, stale: u64| Lifetimes {
            created: now,
            fresh_until: now + fresh,
            refresh_at: refresh.map(|r| now + r),
            stale_until: now + stale,
        };
        let cases: Vec<(&str, TokenInfo, CacheSettings, Lifetimes)> = vec![
            (
                "ttl without exp",
                active(None),
                settings(60_000, 5_000, 0.8, 0),
                l(60_000, Some(48_000), 60_000),
            ),
            (
                "exp caps the ttl",
                active(Some(now / 1000 + 2)),
                settings(60_000, 5_000, 0.8, 0),
                l(2_000, Some(1_600), 2_000),
            ),
            (
                "exp passed",
                active(Some(now / 1000 - 1)),
                settings(60_000, 5_000, 0.8, 0),
                l(0, None, 0),
            ),
            (
                "no refresh-ahead",
                active(None),
                settings(60_000, 5_000, 0.0, 0),
                l(60_000, None, 60_000),
            ),
            (
                "stale window after the ttl",
                active(None),
                settings(60_000, 5_000, 0.5, 30_000),
                l(60_000, Some(30_000), 90_000),
            ),
            (
                "stale window never passes exp",
                active(Some(now / 1000 + 70)),
                settings(60_000, 5_000, 0.5, 30_000),
                l(60_000, Some(30_000), 70_000),
            ),
            (
                "exp inside the ttl leaves no stale window",
                active(Some(now / 1000 + 10)),
                settings(60_000, 5_000, 0.5, 30_000),
                l(10_000, Some(5_000), 10_000),
            ),
            (
                "inactive: negative ttl",
                inactive.clone(),
                settings(60_000, 5_000, 0.8, 30_000),
                l(5_000, None, 5_000),
            ),
            (
                "negative ttl off",
                inactive,
                settings(60_000, 0, 0.8, 30_000),
                l(0, None, 0),
            ),
        ];
        for (name, info, s, want) in cases {
            let got = Lifetimes::compute(&info, now, &s);
            assert_eq!(got, want, "{name}");
            assert_eq!(got.cacheable(), want.fresh_until > now, "{name}");
        }
    }

    #[test]
    fn predicates_and_remaining() {
        let l = Lifetimes {
            created: 0,
            fresh_until: 100,
            refresh_at: Some(80),
            stale_until: 150,
        };
        assert!(l.is_fresh(99) && !l.is_fresh(100));
        assert!(!l.wants_refresh(79) && l.wants_refresh(80));
        assert_eq!(l.remaining(120), Duration::from_millis(30));
        assert_eq!(l.remaining(200), Duration::ZERO);
    }
}
