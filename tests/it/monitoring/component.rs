//! The optional kustomize component: it loads only files that exist, and `kubectl kustomize` builds it with the base
//! into a PrometheusRule and a Grafana-sidecar ConfigMap holding exactly the rule file and the dashboard.

use std::process::Command;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use super::dashboard::dashboard;
use super::{COMPONENT, DASHBOARD, PROMETHEUS_RULE, RULES, json, root, yaml};
use crate::helpers::tool;

/// Paths a kustomization loads, relative to its directory: resources, components and generator files.
fn kustomize_inputs(k: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["resources", "components"] {
        for r in k[key].as_vec().into_iter().flatten() {
            out.push(r.as_str().unwrap().to_string());
        }
    }
    for generator in k["configMapGenerator"].as_vec().into_iter().flatten() {
        for f in generator["files"].as_vec().into_iter().flatten() {
            let f = f.as_str().unwrap();
            out.push(f.split_once('=').map_or(f, |(_, path)| path).to_string());
        }
    }
    out
}

#[test]
fn the_monitoring_component_loads_only_files_that_exist() {
    let component = &yaml(&format!("{COMPONENT}/kustomization.yaml"))[0];
    assert_eq!(component["kind"].as_str(), Some("Component"));
    assert_eq!(
        component["apiVersion"].as_str(),
        Some("kustomize.config.k8s.io/v1alpha1")
    );
    let mut pending = vec![(root().join(COMPONENT), component.clone())];
    let mut files = Vec::new();
    while let Some((dir, k)) = pending.pop() {
        for input in kustomize_inputs(&k) {
            let path = dir.join(&input);
            assert!(path.exists(), "{}: {input} does not exist", dir.display());
            if path.is_dir() {
                let inner = path.join("kustomization.yaml");
                let text = std::fs::read_to_string(&inner).unwrap();
                pending.push((path, YamlLoader::load_from_str(&text).unwrap().remove(0)));
            } else {
                files.push(path.canonicalize().unwrap());
            }
        }
    }
    for want in [PROMETHEUS_RULE, DASHBOARD] {
        assert!(
            files.contains(&root().join(want).canonicalize().unwrap()),
            "{want} in {files:?}"
        );
    }
}

#[test]
fn the_monitoring_component_builds_with_the_base() {
    let Some(kubectl) = tool("kubectl") else { return };
    // An overlay as an operator writes it: the base plus the component. Kustomize refuses absolute paths, so the
    // overlay reaches the repository through `..`s from its temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let up = "../".repeat(dir.path().components().count() - 1);
    let repo = root().canonicalize().unwrap();
    let repo = repo.to_str().unwrap().trim_start_matches('/');
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shop\n\
             resources:\n  - {up}{repo}/deploy/kubernetes\ncomponents:\n  - {up}{repo}/{COMPONENT}\n"
        ),
    )
    .unwrap();
    let out = Command::new(&kubectl)
        .args(["kustomize", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{kind}/{name} in the build"))
    };
    find("Deployment", "tokengate-app");
    let rule = find("PrometheusRule", "tokengate");
    assert_eq!(rule["metadata"]["namespace"].as_str(), Some("shop"));
    assert_eq!(json(&rule["spec"]), json(&yaml(RULES)[0]));
    let map = find("ConfigMap", "tokengate-dashboard");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
    let board: Value = serde_json::from_str(map["data"]["tokengate.json"].as_str().unwrap()).unwrap();
    assert_eq!(board, dashboard());
}
