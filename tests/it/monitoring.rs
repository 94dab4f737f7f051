//! deploy/monitoring/: the alert rules pass promtool (`check rules`, and the unit tests in deploy/monitoring/tests),
//! and the PrometheusRule is the rule file. Submodules: `dashboard` (the Grafana board parses and follows its
//! variables), `drift` (every metric the board and the alerts use is in a real tokengate's /metrics), `component`
//! (the kustomize component builds), `promql` (reading names out of queries).

mod component;
mod dashboard;
mod drift;
mod promql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::helpers::tool;

const RULES: &str = "deploy/monitoring/rules/tokengate.rules.yml";
const PROMETHEUS_RULE: &str = "deploy/monitoring/alerts.yaml";
const UNIT_TESTS: &str = "deploy/monitoring/tests";
const DASHBOARD: &str = "deploy/monitoring/grafana-dashboard.json";
const COMPONENT: &str = "deploy/kubernetes/components/monitoring";
/// Where the alerts' runbook_url points; the README says to replace it with where the operator's copy lives.
const RUNBOOK_BASE: &str = "https://github.com/example/tokengate/blob/main/README.md#";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The same document as JSON, so that comparisons ignore key order (kustomize sorts keys).
fn json(doc: &Yaml) -> Value {
    match doc {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_string(), json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => Value::from(r.parse::<f64>().unwrap()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML {other:?}"),
    }
}

fn emit(doc: &Yaml) -> String {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(doc).unwrap();
    out
}

/// Runs a tool to completion; panics with its output unless it exits 0. Returns stdout and stderr together.
fn run(program: &Path, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(cwd).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {}: {}\n{text}",
        program.display(),
        args.join(" "),
        out.status
    );
    text
}

/// (alert name, rule) for every alerting rule of the rule file.
fn alerts() -> Vec<(String, Yaml)> {
    let doc = &yaml(RULES)[0];
    let mut out = Vec::new();
    for group in doc["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules");
            out.push((name.to_string(), rule.clone()));
        }
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

fn unit_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(UNIT_TESTS))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_rule_file_passes_promtool() {
    let Some(promtool) = tool("promtool") else { return };
    let out = run(&promtool, &["check", "rules", RULES], root());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{out}"
    );
}

#[test]
fn the_prometheusrule_is_the_rule_file() {
    let generated = run(Path::new("sh"), &["deploy/monitoring/generate-prometheusrule"], root());
    assert!(
        generated == read(PROMETHEUS_RULE),
        "{PROMETHEUS_RULE} differs from the rule file: run\n  \
         deploy/monitoring/generate-prometheusrule > deploy/monitoring/alerts.yaml"
    );
    let rule = &yaml(PROMETHEUS_RULE)[0];
    assert_eq!(rule["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(rule["metadata"]["name"].as_str(), Some("tokengate"));
    assert_eq!(
        json(&rule["spec"]),
        json(&yaml(RULES)[0]),
        "spec holds exactly the rule file"
    );

    // What the operator loads is valid on its own, whatever the generator did.
    let Some(promtool) = tool("promtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yml");
    std::fs::write(&spec, emit(&rule["spec"])).unwrap();
    let out = run(&promtool, &["check", "rules", spec.to_str().unwrap()], root());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{out}"
    );
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet() {
    let mut fires: BTreeSet<String> = BTreeSet::new();
    let mut quiet: BTreeSet<String> = BTreeSet::new();
    for file in unit_test_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
        let rule_files: Vec<&str> = doc["rule_files"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(rule_files, ["../rules/tokengate.rules.yml"], "{}", file.display());
        for test in doc["tests"].as_vec().unwrap() {
            for case in test["alert_rule_test"].as_vec().unwrap() {
                let name = case["alertname"].as_str().unwrap().to_string();
                if case["exp_alerts"].as_vec().is_some_and(|a| !a.is_empty()) {
                    fires.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    for (name, _) in alerts() {
        assert!(fires.contains(&name), "no unit test where {name} fires");
        assert!(quiet.contains(&name), "no unit test where {name} stays quiet");
    }
}

#[test]
fn promtool_unit_tests_pass() {
    let Some(promtool) = tool("promtool") else { return };
    let files = unit_test_files();
    assert!(files.len() >= alerts().len(), "{files:?}");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = run(&promtool, &args, root());
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

#[test]
fn every_alert_says_how_bad_what_happened_and_where_its_runbook_is() {
    let readme = read("README.md");
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    let runbook = readme.find("\n## Runbook\n").expect("a Runbook section in the README");
    for (name, rule) in alerts() {
        assert!(name.starts_with("Tokengate"), "{name}");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key].as_str().is_some_and(|s| s.len() > 10),
                "{name}: {key}"
            );
        }
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let want = format!("{RUNBOOK_BASE}{}", anchor(&name));
        assert_eq!(url, want, "{name}: runbook_url");
        assert!(anchors.contains(&anchor(&name)), "README has no heading {name}");
        let at = readme
            .find(&format!("\n### {name}\n"))
            .unwrap_or_else(|| panic!("README: ### {name}"));
        assert!(at > runbook, "{name}'s runbook is under ## Runbook");
    }
}
