//! The check pipeline, the same for every front door and unaware of any: what the check requires (policy), the
//! token's info (the verifier layers), the pure decision, and — once, for every door — the decision log and the
//! check metrics. A door builds a `Check` and renders the `Decided` it gets back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::{Histogram, IntCounter};

use crate::bearer::TokenError;
use crate::clock::Clock;
use crate::config::DecisionLog;
use crate::logging::DECISION_TARGET;
use crate::metrics::Metrics;
use crate::original::OriginalRequest;
use crate::policy::{Decision, Denial, Policy, Required, Requirements, decide};
use crate::token::cache::{Cached, MemoryCache};
use crate::token::headers::header_for_claim;
use crate::token::lookup::{ClientKey, Source};
use crate::token::{HeaderRule, IdpError};

/// The front door a check came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Http,
    Grpc,
}

impl Door {
    pub const ALL: [Door; 2] = [Door::Http, Door::Grpc];

    pub fn label(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Grpc => "grpc",
        }
    }
}

/// A door's own reason for refusing to build a check, typed by the door; the pipeline needs its text and label.
pub trait DoorError: std::error::Error + Send + Sync {
    fn label(&self) -> &'static str;
}

/// Why a door could not build a check.
pub enum Malformed {
    /// Request headers over `MAX_HEADER_BYTES`.
    HeadersTooLarge,
    /// The operator's per-check settings are wrong (an unknown check-URL parameter, an unknown context extension):
    /// a configuration error, 400.
    BadCheck(Box<dyn DoorError>),
    /// The original request cannot be read one way (the request firewall, ambiguous sources): 403.
    Unreadable(Box<dyn DoorError>),
}

impl std::fmt::Debug for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::HeadersTooLarge => f.write_str("HeadersTooLarge"),
            Malformed::BadCheck(e) => write!(f, "BadCheck({e})"),
            Malformed::Unreadable(e) => write!(f, "Unreadable({e})"),
        }
    }
}

impl Malformed {
    pub fn label(&self) -> &'static str {
        match self {
            Malformed::HeadersTooLarge => "headers_too_large",
            Malformed::BadCheck(e) | Malformed::Unreadable(e) => e.label(),
        }
    }
}

/// What a door knows about one check.
pub struct Check<'a> {
    pub door: Door,
    pub started: Instant,
    /// The request being authorised, when the door had to read it (`Policy::needs_original`, or its own
    /// reasons); a refusal when it could not.
    pub original: Result<Option<OriginalRequest>, Malformed>,
    /// The door's extra requirements (the check URL's query, gRPC context extensions).
    pub extra: Requirements,
    pub token: Result<&'a str, TokenError>,
    /// For the fair share of the identity provider.
    pub client: ClientKey,
}

/// Every way a check can end.
#[derive(Debug)]
pub enum Outcome {
    Allow(Cached),
    Anonymous,
    NoToken,
    BadToken(TokenError),
    Denied(Denial),
    Unmatched,
    Malformed(Malformed),
    Unavailable(IdpError),
}

/// How a check ended, as the metrics and the decision log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Unauthenticated,
    Forbidden,
    Unavailable,
    BadRequest,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Allowed,
        Verdict::Unauthenticated,
        Verdict::Forbidden,
        Verdict::Unavailable,
        Verdict::BadRequest,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Unauthenticated => "unauthenticated",
            Verdict::Forbidden => "forbidden",
            Verdict::Unavailable => "unavailable",
            Verdict::BadRequest => "bad_request",
        }
    }
}

impl Outcome {
    pub fn verdict(&self) -> Verdict {
        match self {
            Outcome::Allow(_) | Outcome::Anonymous => Verdict::Allowed,
            Outcome::NoToken | Outcome::BadToken(_) => Verdict::Unauthenticated,
            Outcome::Denied(d) if d.is_invalid_token() => Verdict::Unauthenticated,
            Outcome::Denied(_) | Outcome::Unmatched | Outcome::Malformed(Malformed::Unreadable(_)) => {
                Verdict::Forbidden
            }
            Outcome::Malformed(_) => Verdict::BadRequest,
            Outcome::Unavailable(_) => Verdict::Unavailable,
        }
    }

    /// The machine-readable cause, for the decision log.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Allow(_) => "granted",
            Outcome::Anonymous => "anonymous_rule",
            Outcome::NoToken => "no_token",
            Outcome::BadToken(_) => "malformed_token",
            Outcome::Denied(d) => d.label(),
            Outcome::Unmatched => "unmatched",
            Outcome::Malformed(m) => m.label(),
            Outcome::Unavailable(IdpError::Timeout) => "idp_timeout",
            Outcome::Unavailable(IdpError::Overloaded) => "idp_overloaded",
            Outcome::Unavailable(e) if e.is_credentials() => "idp_credentials_rejected",
            Outcome::Unavailable(_) => "idp_unavailable",
        }
    }
}

/// What the door renders, with what the decision log and the door's metadata need.
#[derive(Debug)]
pub struct Decided<'p> {
    pub outcome: Outcome,
    /// The rule that applied; `None` for the global policy.
    pub rule: Option<&'p str>,
    /// Where the token's info came from, when it was looked up.
    pub source: Option<Source>,
    /// The token's info when it was looked up and active, allowed or not: who was refused is worth logging.
    pub identity: Option<Cached>,
}

/// Per door, per verdict; resolved once so a check does no label lookup.
struct Counters {
    verdicts: [[IntCounter; 5]; 2],
    duration: [Histogram; 2],
}

pub struct Pipeline {
    policy: Policy,
    cache: Arc<MemoryCache>,
    clock: Arc<dyn Clock>,
    /// `idp.timeout`: the whole budget of a check's wait on the identity provider.
    idp_timeout: Duration,
    counters: Counters,
    decisions: DecisionLog,
    /// Allowed checks seen, for the sampler.
    allowed_seen: AtomicU64,
    /// Which identity headers hold `sub`, `client_id` and the organisation, for the decision log.
    identity_headers: [Option<usize>; 3],
}

impl Pipeline {
    pub fn new(
        policy: Policy,
        cache: Arc<MemoryCache>,
        clock: Arc<dyn Clock>,
        idp_timeout: Duration,
        decisions: DecisionLog,
        mapping: &[HeaderRule],
        metrics: &Metrics,
    ) -> Pipeline {
        let counters = Counters {
            verdicts: Door::ALL.map(|door| {
                Verdict::ALL.map(|v| metrics.verify_requests.with_label_values(&[door.label(), v.label()]))
            }),
            duration: Door::ALL.map(|door| metrics.verify_duration.with_label_values(&[door.label()])),
        };
        Pipeline {
            policy,
            cache,
            clock,
            idp_timeout,
            counters,
            decisions,
            allowed_seen: AtomicU64::new(0),
            identity_headers: ["sub", "client_id", "urn:zitadel:iam:user:resourceowner:id"]
                .map(|claim| header_for_claim(mapping, claim)),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cache(&self) -> &Arc<MemoryCache> {
        &self.cache
    }

    /// Decides one check, then logs and counts it.
    pub async fn check(&self, check: Check<'_>) -> Decided<'_> {
        let Check {
            door,
            started,
            original,
            extra,
            token,
            client,
        } = check;
        let (decided, original) = match original {
            Ok(original) => {
                let decided = self.decide(original.as_ref(), &extra, token, client, started).await;
                (decided, original)
            }
            Err(m) => (
                Decided {
                    outcome: Outcome::Malformed(m),
                    rule: None,
                    source: None,
                    identity: None,
                },
                None,
            ),
        };
        let verdict = decided.outcome.verdict();
        self.counters.verdicts[door as usize][verdict as usize].inc();
        self.counters.duration[door as usize].observe(started.elapsed().as_secs_f64());
        if self.keep_line(verdict) {
            self.log_decision(door, &decided, original.as_ref(), started);
        }
        decided
    }

    /// Every denial gets a line; allowed checks in the configured share, spread evenly (the n-th allowed check is
    /// kept when n × share crosses a whole number), so the share is exact and needs no random numbers.
    fn keep_line(&self, verdict: Verdict) -> bool {
        if !self.decisions.enabled {
            return false;
        }
        if verdict != Verdict::Allowed || self.decisions.sample_allowed >= 1.0 {
            return true;
        }
        let n = self.allowed_seen.fetch_add(1, Ordering::Relaxed) as f64;
        let share = self.decisions.sample_allowed;
        ((n + 1.0) * share).floor() > (n * share).floor()
    }

    async fn decide(
        &self,
        original: Option<&OriginalRequest>,
        extra: &Requirements,
        token: Result<&str, TokenError>,
        client: ClientKey,
        started: Instant,
    ) -> Decided<'_> {
        let (rule, requirements) = match self.policy.requirements_for(original, extra) {
            Required::Anonymous { rule } => {
                return Decided {
                    outcome: Outcome::Anonymous,
                    rule: Some(rule),
                    source: None,
                    identity: None,
                };
            }
            Required::DenyUnmatched => {
                return Decided {
                    outcome: Outcome::Unmatched,
                    rule: None,
                    source: None,
                    identity: None,
                };
            }
            Required::Require { rule, requirements } => (rule, requirements),
        };
        let with_rule = |outcome, source, identity| Decided {
            outcome,
            rule,
            source,
            identity,
        };
        let token = match token {
            Ok(t) => t,
            Err(TokenError::Missing) => return with_rule(Outcome::NoToken, None, None),
            Err(e) => return with_rule(Outcome::BadToken(e), None, None),
        };
        let deadline = started + self.idp_timeout;
        let hit = match self.cache.get(token, client, deadline).await {
            Ok(hit) => hit,
            // The IdP's verdict on this one token (e.g. unsupported_token_type), not a failure of the service.
            Err(e @ IdpError::TokenRefused { .. }) => {
                log::info!("token refused: {e}");
                return with_rule(Outcome::Denied(Denial::NotActive), None, None);
            }
            Err(e) => {
                log::error!("cannot verify a token, answering 503: {e}");
                return with_rule(Outcome::Unavailable(e), None, None);
            }
        };
        let identity = hit.info.active.then(|| hit.info.clone());
        let outcome = match decide(&hit.info, &requirements, self.clock.now_secs()) {
            Decision::Allow => Outcome::Allow(hit.info),
            Decision::Deny(d) => Outcome::Denied(d),
        };
        with_rule(outcome, Some(hit.source), identity)
    }
}

/// The one line per check (`log.decisions`): never the token, never the query (the path has none), no header
/// beyond the fields named here. Unknown fields are left out.
impl Pipeline {
    fn log_decision(&self, door: Door, decided: &Decided<'_>, original: Option<&OriginalRequest>, started: Instant) {
        if !log::log_enabled!(target: DECISION_TARGET, log::Level::Info) {
            return;
        }
        let info = decided.identity.as_ref();
        let identity = |i: usize| info?.header_text(self.identity_headers[i]?);
        log::info!(
            target: DECISION_TARGET,
            result = decided.outcome.verdict().label(),
            reason = decided.outcome.reason(),
            rule = decided.rule.unwrap_or("(global policy)"),
            method = original.map(|o| o.method.as_str()),
            host = original.and_then(|o| o.host.as_deref()),
            path = original.map(|o| o.path.as_str()),
            sub = identity(0),
            client_id = identity(1),
            org_id = identity(2),
            source = decided.source.map(Source::label),
            door = door.label(),
            duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            "decision"
        );
    }
}
