//! Configuration: a file (TOML, YAML or JSON) layered under `TOKENGATE_*` environment variables, turned into typed,
//! validated settings. Every problem is collected and reported at once, each naming its key and env variable. One
//! file per section (its raw form and its validation); the settings types belong to the modules that use them.

mod cache;
mod collect;
mod headers;
mod idp;
mod log;
mod policy;
mod server;
mod token;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use self::collect::Collector;
pub use self::log::{DecisionLog, LogConfig, LogFormat};
pub use self::policy::PolicyConfig;
pub use self::server::{ProxyMode, ServerConfig};
use crate::bearer::TokenSources;
use crate::token::HeaderRule;
use crate::token::introspect::IdpSettings;
use crate::token::lookup::CacheSettings;

/// One configuration problem, tied to the key the operator has to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The environment variable that overrides `key` (`idp.issuer` → `TOKENGATE_IDP__ISSUER`).
    pub fn env_var(&self) -> String {
        env_var_for(&self.key)
    }
}

pub fn env_var_for(key: &str) -> String {
    format!("TOKENGATE_{}", key.replace('.', "__").to_uppercase())
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else if self.key.starts_with("rules") {
            // Rules come only from the file: an env variable name would mislead.
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "{} ({}): {}", self.key, self.env_var(), self.message)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub idp: IdpSettings,
    pub policy: PolicyConfig,
    pub cache: CacheSettings,
    pub token: TokenSources,
    pub headers: Vec<HeaderRule>,
    pub log: LogConfig,
}

// ---- raw, permissive shapes: everything is read as text so that every bad value can be reported at once ----

type Extra = HashMap<String, serde::de::IgnoredAny>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    server: server::RawServer,
    idp: idp::RawIdp,
    policy: policy::RawPolicy,
    cache: cache::RawCache,
    token: token::RawToken,
    headers: BTreeMap<String, String>,
    log: log::RawLog,
    rules: Vec<policy::RawRule>,
    #[serde(flatten)]
    extra: Extra,
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["policy.audience", "policy.required_scopes", "policy.required_roles"];

/// Where the configuration comes from: a file and the process environment, or given maps in tests.
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Option<HashMap<String, String>>,
}

/// Reads and validates the configuration; on failure returns every problem found.
pub fn load(sources: &Sources) -> Result<Config, Vec<ConfigError>> {
    let mut builder = config::Config::builder();
    if let Some(path) = &sources.file {
        if !path.exists() {
            return Err(vec![ConfigError::new(
                "",
                format!("config file {} does not exist", path.display()),
            )]);
        }
        builder = builder.add_source(config::File::from(path.as_path()).required(true));
    }
    let mut env = config::Environment::with_prefix("TOKENGATE")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS {
        env = env.with_list_parse_key(key);
    }
    // Only `TOKENGATE_<SECTION>__<KEY>` is configuration. Kubernetes sets `TOKENGATE_PORT`,
    // `TOKENGATE_SERVICE_HOST`, … for a Service named tokengate; those must not stop the sidecar.
    let vars: HashMap<String, String> = match &sources.env {
        Some(map) => map.clone(),
        None => std::env::vars().collect(),
    };
    let config_vars = vars
        .into_iter()
        .filter(|(k, _)| k.strip_prefix("TOKENGATE_").is_some_and(|rest| rest.contains("__")))
        .collect();
    env = env.source(Some(config_vars));
    builder = builder.add_source(env);
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| vec![ConfigError::new("", format!("cannot read configuration: {e}"))])?;
    validate(raw)
}

/// `"3s"`, `"500ms"`, `"1m 30s"`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).ok()
}

fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut c = Collector(Vec::new());
    c.unknown("", &raw.extra);
    c.unknown("server", &raw.server.extra);
    c.unknown("idp", &raw.idp.extra);
    c.unknown("policy", &raw.policy.extra);
    c.unknown("cache", &raw.cache.extra);
    c.unknown("token", &raw.token.extra);
    c.unknown("log", &raw.log.extra);
    let server = server::validate(&mut c, raw.server);
    let idp = idp::validate(&mut c, raw.idp);
    let policy = policy::validate(&mut c, raw.policy, raw.rules);
    let cache = cache::validate(&mut c, raw.cache);
    let token = token::validate(&mut c, raw.token);
    let headers = headers::validate(&mut c, raw.headers);
    let log = log::validate(&mut c, raw.log);
    match idp {
        Some(idp) if c.0.is_empty() => Ok(Config {
            server,
            idp,
            policy,
            cache,
            token,
            headers,
            log,
        }),
        // A missing required value always records its error.
        _ => Err(c.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::info::DEFAULT_HEADERS;
    use crate::token::introspect::credentials::ClientAuthConfig;
    use std::path::Path;

    fn env(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            file: None,
            env: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        }
    }

    #[test]
    fn env_alone_is_enough_and_defaults_apply() {
        let cfg = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://zitadel.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/etc/key.json"),
            ("TOKENGATE_SERVER__LISTEN", "127.0.0.1:9000"),
            ("TOKENGATE_POLICY__REQUIRED_SCOPES", "read,write"),
        ]))
        .expect("valid");
        assert_eq!(cfg.server.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.idp.timeout, Duration::from_secs(3));
        assert_eq!(cfg.cache.ttl, Duration::from_secs(60));
        assert_eq!(cfg.cache.negative_ttl, Duration::from_secs(5));
        assert_eq!(cfg.idp.max_concurrent, 64);
        assert!(matches!(cfg.idp.auth, ClientAuthConfig::KeyFile(ref p) if p == Path::new("/etc/key.json")));
        assert_eq!(cfg.policy.global.scopes, vec!["read".to_string(), "write".to_string()]);
        assert_eq!(cfg.headers.len(), DEFAULT_HEADERS.len());
    }

    #[test]
    fn grpc_listen_is_off_by_default_and_needs_the_grpc_feature() {
        let base = [
            ("TOKENGATE_IDP__ISSUER", "https://zitadel.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/etc/key.json"),
        ];
        assert_eq!(load(&env(&base)).expect("valid").server.grpc_listen, None);
        let mut with = base.to_vec();
        with.push(("TOKENGATE_SERVER__GRPC_LISTEN", "127.0.0.1:8081"));
        let loaded = load(&env(&with));
        if cfg!(feature = "grpc") {
            assert_eq!(
                loaded.expect("valid").server.grpc_listen,
                Some("127.0.0.1:8081".parse().unwrap())
            );
        } else {
            let errs = loaded.unwrap_err();
            assert!(
                errs[0]
                    .to_string()
                    .starts_with("server.grpc_listen (TOKENGATE_SERVER__GRPC_LISTEN): this build")
            );
        }
        with.pop();
        with.push(("TOKENGATE_SERVER__GRPC_LISTEN", "nowhere"));
        assert_eq!(load(&env(&with)).unwrap_err()[0].key, "server.grpc_listen");
    }

    #[test]
    fn every_problem_is_reported_with_key_and_env_var() {
        let errs = load(&env(&[
            ("TOKENGATE_SERVER__LISTEN", "not-an-address"),
            ("TOKENGATE_IDP__TIMEOUT", "soon"),
            ("TOKENGATE_CACHE__REFRESH_AHEAD", "1.5"),
            ("TOKENGATE_LOG__FORMAT", "xml"),
            ("TOKENGATE_IDP__BOGUS", "1"),
        ]))
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for expected in [
            "server.listen (TOKENGATE_SERVER__LISTEN)",
            "idp.issuer (TOKENGATE_IDP__ISSUER): required",
            "idp.key_file (TOKENGATE_IDP__KEY_FILE)",
            "idp.timeout (TOKENGATE_IDP__TIMEOUT)",
            "cache.refresh_ahead (TOKENGATE_CACHE__REFRESH_AHEAD)",
            "log.format (TOKENGATE_LOG__FORMAT)",
            "idp.bogus (TOKENGATE_IDP__BOGUS): unknown key",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(expected)),
                "missing {expected:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn scopes_that_could_not_be_echoed_are_config_errors() {
        let errs = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://z.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/k.json"),
            ("TOKENGATE_POLICY__REQUIRED_SCOPES", "read,wr\"ite"),
        ]))
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "policy.required_scopes");
    }

    #[test]
    fn variables_that_are_not_config_keys_are_ignored() {
        let cfg = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://z.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/k.json"),
            ("TOKENGATE_PORT", "tcp://10.0.0.7:8080"),
            ("TOKENGATE_SERVICE_HOST", "10.0.0.7"),
            ("TOKENGATE_PORT_8080_TCP_ADDR", "10.0.0.7"),
            ("OTHER__THING", "x"),
        ]));
        assert!(cfg.is_ok(), "{cfg:?}");
    }

    #[test]
    fn key_file_and_client_secret_are_exclusive() {
        let errs = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://z.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/k.json"),
            ("TOKENGATE_IDP__CLIENT_ID", "id"),
            ("TOKENGATE_IDP__CLIENT_SECRET", "s3cr3t-value"),
        ]))
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.key == "idp.key_file" && e.message.contains("not both"))
        );
        assert!(!format!("{errs:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn basic_auth_config_keeps_secret_redacted() {
        let cfg = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://z.example.com"),
            ("TOKENGATE_IDP__CLIENT_ID", "api@project"),
            ("TOKENGATE_IDP__CLIENT_SECRET", "s3cr3t-value"),
        ]))
        .expect("valid");
        assert!(matches!(cfg.idp.auth, ClientAuthConfig::Basic { ref client_id, .. } if client_id == "api@project"));
        assert!(!format!("{cfg:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn file_layers_under_env_and_rules_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokengate.toml");
        std::fs::write(
            &path,
            r#"
[server]
listen = "127.0.0.1:7000"
[idp]
issuer = "https://file.example.com"
key_file = "/k.json"
[headers]
"X-Auth-Request-Email" = ""
"X-Tenant" = "urn:zitadel:iam:user:resourceowner:name"
[[rules]]
name = "bad-glob"
paths = ["/api/[admin"]
[[rules]]
name = "public"
paths = ["/public/**"]
anonymous = true
"#,
        )
        .unwrap();
        let mut sources = env(&[("TOKENGATE_SERVER__LISTEN", "127.0.0.1:7001")]);
        sources.file = Some(path.clone());
        let errs = load(&sources).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].key.contains("bad-glob"), "{errs:?}");

        let text = std::fs::read_to_string(&path).unwrap().replace("[admin", "admin");
        std::fs::write(&path, text).unwrap();
        let cfg = load(&sources).expect("valid");
        assert_eq!(
            cfg.server.listen,
            "127.0.0.1:7001".parse().unwrap(),
            "env wins over file"
        );
        assert_eq!(cfg.idp.issuer, "https://file.example.com");
        assert_eq!(cfg.policy.rules.len(), 2);
        let names: Vec<&str> = cfg.headers.iter().map(|h| h.name.as_str()).collect();
        assert!(
            !names.contains(&"x-auth-request-email"),
            "empty value switches a default off"
        );
        assert!(names.contains(&"x-tenant"));
    }

    #[test]
    fn a_missing_ca_file_is_a_config_error() {
        let errs = load(&env(&[
            ("TOKENGATE_IDP__ISSUER", "https://z.example.com"),
            ("TOKENGATE_IDP__KEY_FILE", "/k.json"),
            ("TOKENGATE_IDP__CA_FILE", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "idp.ca_file");
    }

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("soon"), None);
    }
}
