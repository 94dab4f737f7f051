//! The board and the alerts cannot drift from the code: every metric name and label value they use is in a real
//! tokengate's /metrics, scraped over HTTP after checks of every result.

use std::collections::{BTreeMap, BTreeSet};

use tokengate::dev_idp::{Faults, TokenSpec};

use super::promql::{Selector, exposition_series, selectors};
use crate::helpers::*;

/// Series Prometheus adds to every target itself: no exporter serves them.
const FROM_PROMETHEUS: &[&str] = &["up"];

/// Metrics the board and the alerts use before tokengate exports them. Delete an entry when its metric lands: the
/// drift test fails while a listed name is exported or no longer used, so this list cannot go stale.
const NOT_YET_EXPORTED: &[&str] = &[];

/// Labels that come from the scrape target (Prometheus, the ServiceMonitor), not from tokengate.
const TARGET_LABELS: &[&str] = &["job", "instance", "pod", "namespace"];

/// What a selector needs from the exposition, as problems (empty when it is all there).
fn missing(sel: &Selector, exported: &BTreeMap<String, Vec<Vec<(String, String)>>>) -> Vec<String> {
    let Some(series) = exported.get(&sel.metric) else {
        return vec![format!("{} is not exported", sel.metric)];
    };
    let mut problems = Vec::new();
    for m in sel
        .matchers
        .iter()
        .filter(|m| !TARGET_LABELS.contains(&m.label.as_str()))
    {
        let values: BTreeSet<&str> = series
            .iter()
            .flat_map(|labels| labels.iter().filter(|(l, _)| *l == m.label).map(|(_, v)| v.as_str()))
            .collect();
        if values.is_empty() {
            problems.push(format!("{} has no label {}", sel.metric, m.label));
            continue;
        }
        // Equality and simple alternations (`hit|stale`) name values that must exist; other regexes are not used.
        let wanted: Vec<&str> = match m.op.as_str() {
            "=" | "!=" => vec![m.value.as_str()],
            "=~" | "!~" => {
                assert!(
                    m.value
                        .split('|')
                        .all(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
                    "{}: only literal alternations are checked; extend this test for {:?}",
                    sel.metric,
                    m.value
                );
                m.value.split('|').collect()
            }
            op => panic!("matcher op {op}"),
        };
        for v in wanted {
            if !values.contains(v) {
                problems.push(format!(
                    "{}{{{}=\"{v}\"}} is not exported (has {values:?})",
                    sel.metric, m.label
                ));
            }
        }
    }
    problems
}

#[actix_web::test]
async fn every_metric_the_board_and_alerts_use_is_exported() {
    // A real tokengate scraped over HTTP, after checks of every result the board and alerts select on, so that
    // labelled series exist however the code registers them.
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().set("policy.required_roles", "admin")).await;
    let good = idp.mint(admin());
    assert_eq!(app.verify(&good).await.status, 200);
    assert_eq!(app.verify(&good).await.status, 200, "a cache hit");
    assert_eq!(app.get("/verify", &[]).await.status, 401);
    assert_eq!(
        app.verify(&idp.mint(TokenSpec::default().roles(&["viewer"])))
            .await
            .status,
        403
    );
    idp.idp.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    });
    assert_eq!(app.verify(&idp.mint(admin())).await.status, 503);
    let scrape = app.get("/metrics", &[]).await;
    assert_eq!(scrape.status, 200);

    let mut exported: BTreeMap<String, Vec<Vec<(String, String)>>> = BTreeMap::new();
    for (name, labels) in exposition_series(&scrape.body) {
        exported.entry(name).or_default().push(labels);
    }
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    let alerts = super::alerts()
        .into_iter()
        .map(|(name, rule)| (format!("alert {name}"), rule["expr"].as_str().unwrap().to_string()));
    for (at, expr) in super::dashboard::expressions().into_iter().chain(alerts) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{at}: no series in {expr}");
        for sel in found {
            assert!(
                !sel.metric.is_empty(),
                "{at}: a selector without a metric name in {expr}"
            );
            used.insert(sel.metric.clone());
            if FROM_PROMETHEUS.contains(&sel.metric.as_str()) || NOT_YET_EXPORTED.contains(&sel.metric.as_str()) {
                continue;
            }
            problems.extend(missing(&sel, &exported).into_iter().map(|p| format!("{at}: {p}")));
        }
    }
    assert!(
        problems.is_empty(),
        "the board or the alerts drifted from /metrics:\n{}",
        problems.join("\n")
    );
    // Not vacuous: the reader found the families the board is about.
    for name in [
        "tokengate_verify_requests_total",
        "tokengate_idp_errors_total",
        "tokengate_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "{name} not found in the board or alerts: {used:?}");
    }
    for name in NOT_YET_EXPORTED {
        assert!(
            !exported.contains_key(*name),
            "{name} is exported now: delete it from NOT_YET_EXPORTED"
        );
        assert!(
            used.contains(*name),
            "{name} is no longer used: delete it from NOT_YET_EXPORTED"
        );
    }
}
