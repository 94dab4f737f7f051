//! deploy/: the manifests and proxy configs parse, and carry the fields the README and the other files rely on.
//! (The nginx, Caddy, Traefik and Envoy configs are also exercised for real in `e2e`; Istio's and Kubernetes' only
//! here.)
//! Issue 8: every example sets the matching `server.proxy` in the tokengate config it shows (and that config loads),
//! strips client identity headers in every spelling (underscores too), and passes the raw path.

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
        matches!(cfg.idp.auth, tokengate::token::introspect::credentials::ClientAuthConfig::KeyFile(ref p) if p.starts_with("/etc/tokengate/secret"))
    );
    assert!(!cfg.policy.rules.is_empty());
    assert_eq!(
        cfg.server.proxy,
        tokengate::config::ProxyMode::Nginx,
        "the pod's proxy is nginx"
    );
    let nginx = maps.iter().find_map(|m| {
        let data = m["data"].as_hash()?;
        data.values()
            .filter_map(Yaml::as_str)
            .find(|t| t.contains("auth_request"))
            .map(str::to_string)
    });
    let nginx = nginx.expect("a ConfigMap with the nginx server block");
    assert!(nginx.contains("proxy_pass http://127.0.0.1:8080/verify"));
    assert!(
        nginx == read("nginx/tokengate.conf"),
        "the ConfigMap's nginx server block is deploy/nginx/tokengate.conf: copy it over after editing"
    );
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
    assert!(
        text.contains("--no-default-features") && !text.contains("dev-idp"),
        "the image ships without the development identity provider"
    );
}

/// Lines of `text` that are not comments (`#` to the end of the line), trimmed, without empty ones.
fn code_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The tokengate config a proxy example shows in its header comment: the comment lines indented by three spaces
/// (and bare `#` lines between them) after "Its config for this file:", without their `#   ` prefix.
fn shown_tokengate_config(rel: &str) -> String {
    let text = read(rel);
    let start = text
        .find("Its config for this file:")
        .unwrap_or_else(|| panic!("{rel} shows no tokengate config"));
    let mut toml = String::new();
    for line in text[start..].lines().skip(1) {
        match line.strip_prefix('#') {
            Some("") => toml.push('\n'),
            Some(rest) if rest.starts_with("   ") => {
                toml.push_str(&rest[3..]);
                toml.push('\n');
            }
            _ => break,
        }
    }
    toml
}

/// A tokengate config from deploy/, loaded by tokengate itself (with a placeholder issuer and key file if it has
/// none), so an unknown key or a bad rule fails the test.
fn load_config(rel: &str, toml: &str) -> tokengate::config::Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let env = [
        ("TOKENGATE_IDP__ISSUER", "https://example.zitadel.cloud"),
        ("TOKENGATE_IDP__KEY_FILE", "/etc/tokengate/key.json"),
    ]
    .into_iter()
    .filter(|(k, _)| !toml.contains(&k.trim_start_matches("TOKENGATE_IDP__").to_ascii_lowercase()))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    tokengate::config::load(&tokengate::config::Sources {
        file: Some(path),
        env: Some(env),
    })
    .unwrap_or_else(|e| panic!("{rel}: {e:?}\n{toml}"))
}

#[test]
fn every_proxy_example_shows_a_tokengate_config_with_its_server_proxy() {
    for (rel, proxy) in [
        ("nginx/tokengate.conf", "nginx"),
        ("caddy/Caddyfile", "caddy"),
        ("traefik/dynamic.yml", "traefik"),
        ("envoy/envoy.yaml", "envoy"),
        #[cfg(feature = "grpc")]
        ("envoy/envoy-grpc.yaml", "envoy"),
    ] {
        let toml = shown_tokengate_config(rel);
        assert!(
            toml.contains(&format!("[server]\nproxy = \"{proxy}\"\n")),
            "{rel}: server.proxy = \"{proxy}\" in\n{toml}"
        );
        // It loads with tokengate itself (an unknown key or a bad rule is an error).
        let cfg = load_config(rel, &toml);
        assert_eq!(cfg.server.proxy.label(), proxy, "{rel}");
        assert!(!cfg.policy.rules.is_empty(), "{rel}");
    }
}

#[test]
fn nginx_drops_underscore_headers_and_covers_the_admin_root_in_any_case() {
    let lines = code_lines(&read("nginx/tokengate.conf"));
    for want in ["underscores_in_headers off;", "ignore_invalid_headers on;"] {
        assert!(lines.iter().any(|l| l == want), "{want}");
    }
    assert!(
        lines.iter().any(|l| l == "location ~* ^/admin(?:/|$) {"),
        "a case-insensitive admin location that covers /admin"
    );
    assert!(!lines.iter().any(|l| l.starts_with("location /admin")));
    assert!(
        lines
            .iter()
            .any(|l| l == "proxy_set_header X-Original-URI    $request_uri;")
    );
}

#[test]
fn caddy_strips_identity_headers_in_every_spelling() {
    let text = read("caddy/Caddyfile");
    let lines = code_lines(&text);
    // Caddy deletes every header starting with the text before a trailing `*` (case-insensitively): together
    // these cover each mix of `-` and `_` before "Request".
    let deletions: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("request_header -"))
        .collect();
    for first in ['-', '_'] {
        for second in ['-', '_'] {
            let want = format!("X{first}Auth{second}Request*");
            assert!(
                deletions.contains(&want.as_str()),
                "request_header -{want}: {deletions:?}"
            );
        }
    }
    // At the top of the site block, before any handle (request_header sorts first anyway).
    let first_delete = lines.iter().position(|l| l.starts_with("request_header -")).unwrap();
    let first_handle = lines.iter().position(|l| l.starts_with("handle")).unwrap();
    assert!(first_delete < first_handle);
    // The admin matcher covers the area's root (Caddy's path matcher ignores case by itself).
    assert!(lines.iter().any(|l| l == "@admin path /admin /admin/*"), "{lines:?}");
    for h in IDENTITY_HEADERS {
        assert!(text.matches(h).count() >= 2, "copy_headers {h} in both blocks");
    }
}

#[test]
fn traefik_deletes_aliasing_headers_and_matches_the_admin_area_case_insensitively() {
    let stat = &docs("traefik/traefik.yml")[0];
    let http = &stat["entryPoints"]["web"]["http"];
    assert_eq!(http["aliasHeadersStrategy"].as_str(), Some("delete"));
    let encoded = http["encodedCharacters"].as_hash().expect("encodedCharacters");
    assert_eq!(encoded.len(), 7, "every encodedCharacters option is set");
    assert!(encoded.values().all(|v| v.as_bool() == Some(false)), "{encoded:?}");
    let dynamic = &docs("traefik/dynamic.yml")[0];
    let admin = dynamic["http"]["routers"]["app-admin"]["rule"].as_str().unwrap();
    assert_eq!(admin, "PathRegexp(`(?i)^/admin(/|$)`)");
    for mw in ["tokengate", "tokengate-admin"] {
        let fa = &dynamic["http"]["middlewares"][mw]["forwardAuth"];
        assert_eq!(fa["trustForwardHeader"].as_bool(), Some(false), "{mw}");
        let copied: Vec<&str> = fa["authResponseHeaders"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert_eq!(copied, IDENTITY_HEADERS, "{mw}");
    }
}

/// The HTTP connection manager's typed_config in deploy/envoy.
fn envoy_hcm(doc: &Yaml) -> &Yaml {
    let listener = &doc["static_resources"]["listeners"][0];
    let filter = &listener["filter_chains"][0]["filters"][0];
    assert_eq!(
        filter["name"].as_str(),
        Some("envoy.filters.network.http_connection_manager")
    );
    &filter["typed_config"]
}

#[test]
fn envoy_passes_the_raw_path_and_drops_client_identity_headers() {
    for file in ["envoy/envoy.yaml", "envoy/envoy-grpc.yaml"] {
        envoy_hardening(file);
    }
}

/// The same path and identity-header hardening in both Envoy examples.
fn envoy_hardening(file: &str) {
    let doc = &docs(file)[0];
    let hcm = envoy_hcm(doc);
    assert_eq!(hcm["normalize_path"].as_bool(), Some(false));
    assert_eq!(hcm["merge_slashes"].as_bool(), Some(false));
    assert_eq!(hcm["path_with_escaped_slashes_action"].as_str(), Some("KEEP_UNCHANGED"));
    let underscores = hcm["common_http_protocol_options"]["headers_with_underscores_action"].as_str();
    assert!(
        matches!(underscores, Some("DROP_HEADER" | "REJECT_REQUEST")),
        "{underscores:?}"
    );
    let filters = hcm["http_filters"].as_vec().unwrap();
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    let mutation = names
        .iter()
        .position(|n| *n == "envoy.filters.http.header_mutation")
        .expect("header_mutation");
    let ext_authz = names
        .iter()
        .position(|n| *n == "envoy.filters.http.ext_authz")
        .expect("ext_authz");
    assert!(
        mutation < ext_authz,
        "{file}: client identity headers are removed before the check"
    );
    let removed: Vec<&str> = filters[mutation]["typed_config"]["mutations"]["request_mutations"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|m| m["remove"].as_str())
        .collect();
    for h in IDENTITY_HEADERS {
        assert!(removed.contains(&h.to_ascii_lowercase().as_str()), "{file}: {h}");
    }
}

/// The ext_authz filter's typed_config in an Envoy example.
fn envoy_ext_authz(doc: &Yaml) -> &Yaml {
    let filters = envoy_hcm(doc)["http_filters"].as_vec().unwrap();
    let f = filters
        .iter()
        .find(|f| f["name"].as_str() == Some("envoy.filters.http.ext_authz"))
        .expect("an ext_authz filter");
    &f["typed_config"]
}

/// An Envoy duration such as `3.5s`, in milliseconds.
fn envoy_duration_ms(text: &str) -> u64 {
    let secs: f64 = text.strip_suffix('s').unwrap().parse().unwrap();
    (secs * 1000.0) as u64
}

#[test]
fn envoy_grpc_is_v3_fail_closed_over_http2_with_a_miss_sized_timeout() {
    let doc = &docs("envoy/envoy-grpc.yaml")[0];
    let authz = envoy_ext_authz(doc);
    assert!(authz["http_service"].is_badvalue(), "gRPC mode, not HTTP");
    assert_eq!(authz["transport_api_version"].as_str(), Some("V3"));
    assert_eq!(authz["failure_mode_allow"].as_bool(), Some(false));
    assert_eq!(authz["status_on_error"]["code"].as_str(), Some("ServiceUnavailable"));
    assert_eq!(authz["include_peer_certificate"].as_bool(), Some(false));
    assert!(authz["with_request_body"].is_badvalue(), "no request body to tokengate");
    let grpc = &authz["grpc_service"];
    // Above the idp.timeout of the tokengate config the file shows, so tokengate answers a slow IdP itself.
    let timeout = envoy_duration_ms(grpc["timeout"].as_str().expect("grpc_service.timeout"));
    #[cfg(feature = "grpc")]
    let cfg = load_config(
        "envoy/envoy-grpc.yaml",
        &shown_tokengate_config("envoy/envoy-grpc.yaml"),
    );
    #[cfg(feature = "grpc")]
    assert!(u128::from(timeout) > cfg.idp.timeout.as_millis(), "{timeout} ms");
    assert!(timeout > 3000, "{timeout} ms: above the default idp.timeout too");
    // The cluster it names speaks HTTP/2 (prior knowledge), through the current typed option.
    let cluster_name = grpc["envoy_grpc"]["cluster_name"].as_str().unwrap();
    let clusters = doc["static_resources"]["clusters"].as_vec().unwrap();
    let cluster = clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(cluster_name))
        .unwrap_or_else(|| panic!("no cluster {cluster_name}"));
    let options =
        &cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
    assert!(
        options["explicit_http_config"]["http2_protocol_options"]
            .as_hash()
            .is_some()
    );
    assert!(
        cluster["http2_protocol_options"].is_badvalue(),
        "the deprecated cluster field"
    );
    let port = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        ["port_value"]
        .as_i64();
    #[cfg(feature = "grpc")]
    assert_eq!(
        cfg.server.grpc_listen.map(|a| i64::from(a.port())),
        port,
        "the cluster's port is the grpc_listen of the tokengate config the file shows"
    );
    assert!(port.is_some());
}

#[test]
fn envoy_grpc_admin_route_adds_a_role_through_context_extensions() {
    let doc = &docs("envoy/envoy-grpc.yaml")[0];
    let hosts = envoy_hcm(doc)["route_config"]["virtual_hosts"].as_vec().unwrap();
    let routes = hosts[0]["routes"].as_vec().unwrap();
    let admin = routes
        .iter()
        .find(|r| r["match"]["path_separated_prefix"].as_str() == Some("/admin"))
        .expect("an admin route covering /admin and /admin/...");
    assert_eq!(admin["match"]["case_sensitive"].as_bool(), Some(false));
    let per_route = &admin["typed_per_filter_config"]["envoy.filters.http.ext_authz"];
    assert_eq!(
        per_route["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute")
    );
    let ext = per_route["check_settings"]["context_extensions"].as_hash().unwrap();
    assert_eq!(ext.len(), 1, "{ext:?}");
    assert_eq!(
        per_route["check_settings"]["context_extensions"]["role"].as_str(),
        Some("admin")
    );
    // The admin route comes before the catch-all, or it never matches.
    let catch_all = routes
        .iter()
        .position(|r| r["match"]["prefix"].as_str() == Some("/"))
        .unwrap();
    let admin_at = routes
        .iter()
        .position(|r| r["match"]["path_separated_prefix"].as_str() == Some("/admin"))
        .unwrap();
    assert!(admin_at < catch_all);
}

#[test]
fn istio_registers_a_fail_closed_grpc_provider_used_by_a_custom_policy() {
    let mesh = &docs("istio/mesh-config.yaml")[0];
    let providers = mesh["spec"]["meshConfig"]["extensionProviders"].as_vec().unwrap();
    let provider = providers
        .iter()
        .find(|p| !p["envoyExtAuthzGrpc"].is_badvalue())
        .expect("an envoyExtAuthzGrpc provider");
    let grpc = &provider["envoyExtAuthzGrpc"];
    assert_eq!(grpc["failOpen"].as_bool(), Some(false));
    assert!(envoy_duration_ms(grpc["timeout"].as_str().unwrap()) > 3000);
    let name = provider["name"].as_str().unwrap();

    let policy = &docs("istio/authorization-policy.yaml")[0];
    assert_eq!(policy["kind"].as_str(), Some("AuthorizationPolicy"));
    assert_eq!(policy["spec"]["action"].as_str(), Some("CUSTOM"));
    assert_eq!(policy["spec"]["provider"]["name"].as_str(), Some(name));
    let rules = policy["spec"]["rules"]
        .as_vec()
        .expect("rules: CUSTOM without rules matches nothing");
    assert!(!rules.is_empty());
    let selected = policy["spec"]["selector"]["matchLabels"].as_hash().unwrap();

    // The provider's service and port are tokengate's Service and its gRPC port.
    let objects = docs("istio/tokengate.yaml");
    let kind = |k: &str| objects.iter().find(|o| o["kind"].as_str() == Some(k)).unwrap();
    let svc = kind("Service");
    let ns = svc["metadata"]["namespace"].as_str().unwrap();
    assert_eq!(
        grpc["service"].as_str(),
        Some(format!("{}.{ns}.svc.cluster.local", svc["metadata"]["name"].as_str().unwrap()).as_str())
    );
    let port = svc["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["port"].as_i64() == grpc["port"].as_i64())
        .expect("the provider's port on the Service");
    assert_eq!(port["appProtocol"].as_str(), Some("grpc"));
    assert!(
        port["name"].as_str().unwrap().starts_with("grpc"),
        "Istio's protocol by port name"
    );

    let deployment = kind("Deployment");
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"].as_hash().unwrap();
    assert!(
        selected.iter().any(|(k, v)| pod_labels.get(k) != Some(v)),
        "the CUSTOM policy must not select tokengate's own pods"
    );
    let tg = &deployment["spec"]["template"]["spec"]["containers"][0];
    let container_port = tg["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == port["targetPort"].as_str())
        .expect("the Service's grpc targetPort names a container port");
    let grpc_port = container_port["containerPort"].as_i64().unwrap();
    assert_eq!(tg["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(tg["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    let config = kind("ConfigMap")["data"]["config.toml"].as_str().unwrap();
    assert!(
        config.contains(&format!("grpc_listen = \"0.0.0.0:{grpc_port}\"")),
        "tokengate listens for gRPC on the container port"
    );
    // The config loads with tokengate itself, and the provider's timeout is above its idp.timeout.
    #[cfg(feature = "grpc")]
    {
        let cfg = load_config("istio/tokengate.yaml", config);
        assert_eq!(cfg.server.grpc_listen.map(|a| i64::from(a.port())), Some(grpc_port));
        assert!(u128::from(envoy_duration_ms(grpc["timeout"].as_str().unwrap())) > cfg.idp.timeout.as_millis());
    }
}

#[test]
fn grpc_probes_patch_swaps_readiness_to_the_grpc_health_service() {
    let patch = &docs("istio/grpc-probes.yaml")[0];
    let objects = docs("istio/tokengate.yaml");
    let deployment = objects
        .iter()
        .find(|o| o["kind"].as_str() == Some("Deployment"))
        .unwrap();
    assert_eq!(patch["metadata"]["name"], deployment["metadata"]["name"]);
    assert_eq!(patch["metadata"]["namespace"], deployment["metadata"]["namespace"]);
    let c = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"].as_str(), Some("tokengate"));
    let probe = &c["readinessProbe"];
    assert!(
        probe["httpGet"].is_null(),
        "the HTTP handler is removed (one handler per probe)"
    );
    let tg = &deployment["spec"]["template"]["spec"]["containers"][0];
    let grpc_port = tg["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("grpc"))
        .unwrap()["containerPort"]
        .as_i64();
    assert_eq!(probe["grpc"]["port"].as_i64(), grpc_port);
    assert!(c["livenessProbe"].is_badvalue(), "liveness stays on /healthz");
    // Listed, commented out, in the kustomization; every listed resource exists.
    let k = read("istio/kustomization.yaml");
    assert!(k.contains("#   - path: grpc-probes.yaml"));
    for r in docs("istio/kustomization.yaml")[0]["resources"].as_vec().unwrap() {
        let name = r.as_str().unwrap();
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/istio")
                .join(name)
                .is_file(),
            "{name}"
        );
    }
}

#[test]
fn istio_base_builds_and_the_grpc_probe_patch_replaces_the_http_readiness_probe() {
    let Some(kubectl) = crate::helpers::tool("kubectl") else {
        return;
    };
    let build = |dir: &Path| {
        let out = std::process::Command::new(&kubectl)
            .args(["kustomize", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let docs = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
        let tokengate = docs
            .iter()
            .find(|d| d["kind"].as_str() == Some("Deployment"))
            .expect("the Deployment")["spec"]["template"]["spec"]["containers"][0]
            .clone();
        assert!(docs.iter().any(|d| d["kind"].as_str() == Some("AuthorizationPolicy")));
        tokengate
    };
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/istio");
    let plain = build(&base);
    assert_eq!(plain["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert!(plain["readinessProbe"]["grpc"].is_badvalue());
    // The same base with the commented patch switched on, as the kustomization's comment says.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&base).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let k = read("istio/kustomization.yaml").replace("# patches:\n#   - path:", "patches:\n  - path:");
    assert!(k.contains("patches:\n  - path: grpc-probes.yaml"));
    std::fs::write(dir.path().join("kustomization.yaml"), k).unwrap();
    let patched = build(dir.path());
    let probe = &patched["readinessProbe"];
    assert!(probe["httpGet"].is_badvalue(), "one handler per probe: {probe:?}");
    assert_eq!(probe["grpc"]["port"].as_i64(), Some(8081));
    assert_eq!(patched["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
}
