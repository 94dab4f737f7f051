//! The Grafana dashboard: importable, every query parsed by promtool, every query filtered by the `job` and `pod`
//! variables, room reserved for the next features' panels.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::promql::selectors;
use super::{DASHBOARD, read, root, run};
use crate::helpers::tool;

/// The classic dashboard model's schemaVersion of current Grafana (13.x, as in @grafana/schema 13.2.3).
const GRAFANA_SCHEMA_VERSION: u64 = 42;

pub fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap()
}

/// Every panel, the panels inside rows (collapsed ones keep theirs) included.
pub fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// (panel title, expr) for every query of every panel.
pub fn panel_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            out.push((title, t["expr"].as_str().expect("a PromQL expr").to_string()));
        }
    }
    out
}

/// (variable name, series selector) for each query variable: Grafana's `label_values(SELECTOR, label)`.
pub fn variable_selectors(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in dash["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap().to_string();
        let query = v["query"]["query"].as_str().expect("query.query");
        assert_eq!(
            v["definition"].as_str(),
            Some(query),
            "{name}: definition and query agree"
        );
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name}: {query}"));
        let (selector, _label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("{name}: label_values needs a selector: {query}"));
        out.push((name, selector.trim().to_string()));
    }
    out
}

/// The expression with Grafana's variables replaced by values of the same shape, as Grafana sends it.
pub fn concrete(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", "1m"),
        ("$__interval", "30s"),
        ("$__range", "6h"),
        ("${job}", ".*"),
        ("$job", ".*"),
        ("${pod}", ".*"),
        ("$pod", ".*"),
    ] {
        e = e.replace(var, value);
    }
    assert!(
        !e.contains('$'),
        "a variable this test does not know (add it above): {expr}"
    );
    e
}

/// Every expression of the board (panel queries and variable selectors), with where it is, as Prometheus gets it.
pub fn expressions() -> Vec<(String, String)> {
    let dash = dashboard();
    let mut out: Vec<(String, String)> = panel_queries(&dash)
        .into_iter()
        .map(|(title, e)| (format!("panel {title:?}"), concrete(&e)))
        .collect();
    for (name, sel) in variable_selectors(&dash) {
        out.push((format!("variable {name}"), concrete(&sel)));
    }
    out
}

#[test]
fn every_dashboard_query_parses() {
    let Some(promtool) = tool("promtool") else { return };
    // promtool has no "check this expression"; a rule file with one recording rule per query is checked the same way
    // Prometheus parses queries.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for (_, expr) in expressions() {
        n += 1;
        // A JSON string is a valid YAML double-quoted scalar.
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    assert!(n >= 30, "{n} queries");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = run(&promtool, &["check", "rules", file.to_str().unwrap()], root());
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn the_dashboard_is_importable_and_every_query_follows_its_variables() {
    let dash = dashboard();
    assert_eq!(dash["schemaVersion"].as_u64(), Some(GRAFANA_SCHEMA_VERSION));
    assert_eq!(dash["uid"].as_str(), Some("tokengate"));
    assert!(dash["id"].is_null(), "an instance-specific id would clash on import");
    assert!(
        dash.get("__inputs").is_none(),
        "the data source is a variable, not an import input"
    );

    let vars: BTreeMap<&str, &Value> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    let ds = vars["datasource"];
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let datasource = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for name in ["job", "pod"] {
        let v = vars[name];
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"], datasource, "{name}");
        // "All" must also match series without the label (no `pod` outside Kubernetes): `.*` does, Grafana's
        // default (every value found, joined) would not.
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".*", "{name}");
    }

    let mut ids = BTreeSet::new();
    for p in panels(&dash) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id at {title:?}");
        let grid = &p["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{title:?}: {grid}");
        let Some(targets) = p["targets"].as_array() else {
            continue;
        };
        assert_eq!(p["datasource"], datasource, "{title:?}");
        assert!(
            !p["description"].as_str().unwrap_or_default().is_empty(),
            "{title:?}: a description"
        );
        for t in targets {
            assert_eq!(t["datasource"], datasource, "{title:?}");
            let expr = t["expr"].as_str().unwrap();
            for sel in selectors(expr) {
                for (label, var) in [("job", "$job"), ("pod", "$pod")] {
                    assert!(
                        sel.matchers
                            .iter()
                            .any(|m| m.label == label && m.op == "=~" && m.value == var),
                        "{title:?}: {} is not filtered by {label}=~\"{var}\" in {expr}",
                        sel.metric
                    );
                }
            }
        }
    }

    // Room for the next metrics: collapsed rows that query nothing yet.
    for topic in ["JWT", "Redis"] {
        let row = dash["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["type"] == "row" && p["title"].as_str().unwrap().contains(topic))
            .unwrap_or_else(|| panic!("a row for {topic}"));
        assert_eq!(row["collapsed"], true, "{topic}");
        let inner = row["panels"].as_array().unwrap();
        assert!(!inner.is_empty(), "{topic}: says what goes there");
        assert!(
            inner.iter().all(|p| p.get("targets").is_none()),
            "{topic}: no queries yet"
        );
    }

    // Each panel the issue asks for, by the metric it shows.
    let queries: Vec<String> = panel_queries(&dash).into_iter().map(|(_, e)| e).collect();
    for metric in [
        "tokengate_verify_requests_total",
        "tokengate_verify_duration_seconds_bucket",
        "tokengate_cache_lookups_total",
        "tokengate_introspection_requests_total",
        "tokengate_introspection_duration_seconds_bucket",
        "tokengate_idp_errors_total",
        "tokengate_introspection_coalesced_total",
        "tokengate_credential_reloads_total",
        "tokengate_ready",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            queries.iter().any(|q| selectors(q).iter().any(|s| s.metric == metric)),
            "no panel shows {metric}"
        );
    }
}
