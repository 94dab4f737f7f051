//! deploy/: the manifests and proxy configs parse, and carry the fields the README and the other files rely on.
//! (nginx and Caddy configs are exercised for real in `e2e`; the test command also schema-validates Kubernetes.)

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)).unwrap()
}

fn docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const IDENTITY_HEADERS: &[&str] = &[
    "X-Auth-Request-User",
    "X-Auth-Request-Preferred-Username",
    "X-Auth-Request-Email",
    "X-Auth-Request-Client-Id",
    "X-Auth-Request-Scopes",
    "X-Auth-Request-Roles",
    "X-Auth-Request-Org-Id",
];

fn all_strings(y: &Yaml, out: &mut Vec<String>) {
    match y {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
        Yaml::Hash(h) => h.iter().for_each(|(k, v)| {
            all_strings(k, out);
            all_strings(v, out);
        }),
        _ => {}
    }
}

#[test]
fn kustomization_lists_existing_files() {
    let k = &docs("kubernetes/kustomization.yaml")[0];
    let resources = k["resources"].as_vec().unwrap();
    assert!(resources.len() >= 5);
    for r in resources {
        let name = r.as_str().unwrap();
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/kubernetes")
                .join(name)
                .is_file(),
            "{name}"
        );
    }
}

#[test]
fn sidecar_deployment_is_hardened_and_probed() {
    let d = &docs("kubernetes/deployment.yaml")[0];
    assert_eq!(d["kind"].as_str(), Some("Deployment"));
    let pod = &d["spec"]["template"]["spec"];
    let containers = pod["containers"].as_vec().unwrap();
    let names: Vec<&str> = containers.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in ["app", "nginx", "tokengate"] {
        assert!(names.contains(&want), "{names:?}");
    }
    for c in containers {
        let name = c["name"].as_str().unwrap();
        for kind in ["requests", "limits"] {
            assert!(!c["resources"][kind]["memory"].is_badvalue(), "{name} {kind}.memory");
            assert!(
                !c["resources"][kind]["cpu"].is_badvalue() || kind == "limits",
                "{name} {kind}.cpu"
            );
        }
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "{name}");
        let non_root = sc["runAsNonRoot"]
            .as_bool()
            .or(pod["securityContext"]["runAsNonRoot"].as_bool());
        assert_eq!(non_root, Some(true), "{name}");
    }
    let tg = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("tokengate"))
        .unwrap();
    assert_eq!(tg["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(tg["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    let mounts: Vec<&str> = tg["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("/etc/tokengate/secret")),
        "{mounts:?}"
    );
    let args: Vec<String> = tg["args"]
        .as_vec()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("serve"));
}

#[test]
fn the_configmap_config_loads_with_tokengate_itself() {
    let maps = docs("kubernetes/configmap.yaml");
    let config_toml = maps
        .iter()
        .find_map(|m| m["data"]["config.toml"].as_str().map(str::to_string))
        .expect("a ConfigMap with config.toml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &config_toml).unwrap();
    let cfg = tokengate::config::load(&tokengate::config::Sources {
        file: Some(path),
        env: Some(Default::default()),
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        matches!(cfg.idp.auth, tokengate::config::ClientAuthConfig::KeyFile(ref p) if p.starts_with("/etc/tokengate/secret"))
    );
    assert!(!cfg.policy.rules.is_empty());
    let nginx = maps.iter().find_map(|m| {
        let data = m["data"].as_hash()?;
        data.values()
            .filter_map(Yaml::as_str)
            .find(|t| t.contains("auth_request"))
            .map(str::to_string)
    });
    let nginx = nginx.expect("a ConfigMap with the nginx server block");
    assert!(nginx.contains("proxy_pass http://127.0.0.1:8080/verify"));
}

#[test]
fn service_and_monitor_expose_metrics() {
    let svc = &docs("kubernetes/service.yaml")[0];
    let ports = svc["spec"]["ports"].as_vec().unwrap();
    assert!(ports.iter().any(|p| p["name"].as_str() == Some("metrics")));
    let mon = &docs("kubernetes/servicemonitor.yaml")[0];
    let mut strings = Vec::new();
    all_strings(mon, &mut strings);
    assert!(strings.iter().any(|s| s == "/metrics"));
    assert!(strings.iter().any(|s| s == "metrics"));
}

#[test]
fn envoy_ext_authz_is_fail_closed_with_a_miss_sized_timeout() {
    let mut strings = Vec::new();
    let doc = &docs("envoy/envoy.yaml")[0];
    all_strings(doc, &mut strings);
    let text = read("envoy/envoy.yaml");
    assert!(strings.iter().any(|s| s == "/verify"), "path_prefix");
    assert!(text.contains("failure_mode_allow: false"));
    assert!(text.contains("status_on_error"));
    assert!(!text.contains("timeout: 0.2s") && !text.contains("timeout: 200ms"));
    let lower = text.to_ascii_lowercase();
    for h in IDENTITY_HEADERS {
        assert!(lower.contains(&h.to_ascii_lowercase()), "{h}");
    }
    assert!(lower.contains("www-authenticate"));
}

#[test]
fn traefik_forward_auth_copies_every_identity_header() {
    let text = read("traefik/dynamic.yml");
    docs("traefik/dynamic.yml");
    docs("traefik/traefik.yml");
    assert!(text.contains("http://127.0.0.1:8080/verify"));
    assert!(text.contains("authResponseHeaders"));
    for h in IDENTITY_HEADERS {
        assert!(text.contains(h), "{h}");
    }
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let text = read("docker/Dockerfile");
    assert!(text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2);
    assert!(text.lines().any(|l| l.starts_with("USER ") && !l.contains("root")));
    assert!(text.contains("cargo build --release"));
}
