//! Prometheus metrics: one struct of handles registered on a registry made at start-up (never globals), so each
//! test has its own. Labels carry outcomes only: never a token, user, client or path.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    /// `{door, result}`: the door a check came through (`http`, `grpc`) and how it ended.
    pub verify_requests: IntCounterVec,
    /// `{door}`.
    pub verify_duration: HistogramVec,
    pub introspection_requests: IntCounterVec,
    pub introspection_duration: Histogram,
    pub cache_lookups: IntCounterVec,
    pub coalesced: IntCounter,
    pub cache_refreshes: IntCounter,
    pub cache_entries: IntGauge,
    /// `{mode}`: `ahead` (by the pre-signing thread) or `on_demand` (on a miss's own path).
    pub assertions_signed: IntCounterVec,
    pub rejected_header_values: IntCounter,
    pub idp_errors: IntCounterVec,
    pub credential_reloads: IntCounterVec,
    /// 1 while /readyz answers 200.
    pub ready: IntGauge,
    /// Introspections waiting for a free slot of `idp.max_concurrent`.
    pub idp_waiting: IntGauge,
    pub build_info: IntGaugeVec,
}

pub const INTROSPECTION_OUTCOMES: &[&str] = &["active", "inactive", "error"];
pub const CACHE_RESULTS: &[&str] = &["hit", "miss", "stale"];

impl Metrics {
    /// Registers every family on `registry`; `idp_error_kinds` are the labels of `tokengate_idp_errors_total`,
    /// made visible at zero from the start (the error type owns them).
    pub fn register(registry: &Registry, idp_error_kinds: &[&str]) -> Result<Metrics, prometheus::Error> {
        let verify_requests = IntCounterVec::new(
            Opts::new(
                "tokengate_verify_requests_total",
                "Checks answered, by front door and result.",
            ),
            &["door", "result"],
        )?;
        let verify_duration = HistogramVec::new(
            HistogramOpts::new(
                "tokengate_verify_duration_seconds",
                "Time to answer a check, by front door.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["door"],
        )?;
        let introspection_requests = IntCounterVec::new(
            Opts::new(
                "tokengate_introspection_requests_total",
                "Introspection calls made to the identity provider, by outcome.",
            ),
            &["outcome"],
        )?;
        let introspection_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tokengate_introspection_duration_seconds",
                "Duration of introspection calls to the identity provider.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "tokengate_cache_lookups_total",
                "Introspection-cache lookups, by result.",
            ),
            &["result"],
        )?;
        let coalesced = IntCounter::new(
            "tokengate_introspection_coalesced_total",
            "Checks that waited on another check's introspection call instead of making their own.",
        )?;
        let cache_refreshes = IntCounter::new(
            "tokengate_cache_refreshes_total",
            "Background refreshes of cache entries nearing the end of their lifetime.",
        )?;
        let cache_entries = IntGauge::new("tokengate_cache_entries", "Entries in the introspection cache.")?;
        let assertions_signed = IntCounterVec::new(
            Opts::new(
                "tokengate_assertions_signed_total",
                "Client assertions signed for the identity provider: ahead of need, or on a miss's own path.",
            ),
            &["mode"],
        )?;
        for m in ["ahead", "on_demand"] {
            assertions_signed.with_label_values(&[m]);
        }
        let rejected_header_values = IntCounter::new(
            "tokengate_rejected_header_values_total",
            "Identity-header values left out because they are not valid header values.",
        )?;
        let idp_errors = IntCounterVec::new(
            Opts::new(
                "tokengate_idp_errors_total",
                "Failed identity-provider calls, by cause.",
            ),
            &["kind"],
        )?;
        let credential_reloads = IntCounterVec::new(
            Opts::new(
                "tokengate_credential_reloads_total",
                "Changed key or secret files: applied, or rejected (unusable, or refused by the IdP) with the old kept.",
            ),
            &["result"],
        )?;
        for r in ["applied", "rejected"] {
            credential_reloads.with_label_values(&[r]);
        }
        let ready = IntGauge::new(
            "tokengate_ready",
            "1 while the service is ready (/readyz answers 200), else 0.",
        )?;
        let idp_waiting = IntGauge::new(
            "tokengate_idp_waiting",
            "Introspections waiting for a free identity-provider slot (idp.max_concurrent).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("tokengate_build_info", "Always 1; the version in a label."),
            &["version"],
        )?;
        for o in INTROSPECTION_OUTCOMES {
            introspection_requests.with_label_values(&[*o]);
        }
        for r in CACHE_RESULTS {
            cache_lookups.with_label_values(&[*r]);
        }
        for k in idp_error_kinds {
            idp_errors.with_label_values(&[*k]);
        }
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        let collectors: [Box<dyn prometheus::core::Collector>; 15] = [
            Box::new(verify_requests.clone()),
            Box::new(verify_duration.clone()),
            Box::new(introspection_requests.clone()),
            Box::new(introspection_duration.clone()),
            Box::new(cache_lookups.clone()),
            Box::new(coalesced.clone()),
            Box::new(cache_refreshes.clone()),
            Box::new(cache_entries.clone()),
            Box::new(assertions_signed.clone()),
            Box::new(rejected_header_values.clone()),
            Box::new(idp_errors.clone()),
            Box::new(credential_reloads.clone()),
            Box::new(ready.clone()),
            Box::new(idp_waiting.clone()),
            Box::new(build_info.clone()),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        Ok(Metrics {
            verify_requests,
            verify_duration,
            introspection_requests,
            introspection_duration,
            cache_lookups,
            coalesced,
            cache_refreshes,
            cache_entries,
            assertions_signed,
            rejected_header_values,
            idp_errors,
            credential_reloads,
            ready,
            idp_waiting,
            build_info,
        })
    }

    /// A registry of our metrics plus the process collector (`process_*`), as `serve` exposes it.
    pub fn new_registry(idp_error_kinds: &[&str]) -> Result<(Registry, Metrics), prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let metrics = Metrics::register(&registry, idp_error_kinds)?;
        Ok((registry, metrics))
    }
}

/// The text exposition (format 0.0.4) of a registry.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    // Encoding into a Vec only fails on metric families that violate the format, which registration prevents.
    if prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        log::error!("cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}
