//! Configuration: a file (TOML, YAML or JSON) layered under `TOKENGATE_*` environment variables, turned into typed,
//! validated settings. Every problem is collected and reported at once, each naming its key and env variable.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::policy::{Requirements, Rule, RuleAction};

/// A value that must never be printed: its `Debug` and `Display` say `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The only way to read the value; grep for it to audit where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One configuration problem, tied to the key the operator has to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
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
    pub idp: IdpConfig,
    pub policy: PolicyConfig,
    pub cache: CacheConfig,
    pub token: TokenConfig,
    pub headers: Vec<HeaderRule>,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown_timeout: Duration,
    pub proxy: ProxyMode,
}

/// Which proxy sends the checks (`server.proxy`): which headers describe the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Read every known source; all present must agree.
    Auto,
    Nginx,
    IngressNginx,
    Envoy,
    Traefik,
    Caddy,
}

impl ProxyMode {
    pub const ALL: [ProxyMode; 6] = [
        ProxyMode::Auto,
        ProxyMode::Nginx,
        ProxyMode::IngressNginx,
        ProxyMode::Envoy,
        ProxyMode::Traefik,
        ProxyMode::Caddy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ProxyMode::Auto => "auto",
            ProxyMode::Nginx => "nginx",
            ProxyMode::IngressNginx => "ingress-nginx",
            ProxyMode::Envoy => "envoy",
            ProxyMode::Traefik => "traefik",
            ProxyMode::Caddy => "caddy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Exactly as configured: ZITADEL compares the assertion's `aud` to it byte for byte.
    pub issuer: String,
    pub introspection_endpoint: Option<Url>,
    pub auth: ClientAuthConfig,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub max_concurrent: usize,
    pub assertion_reuse: bool,
    pub max_response_bytes: usize,
    /// How often the key or secret file is checked for changes; zero leaves it to SIGHUP.
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub enum ClientAuthConfig {
    /// ZITADEL's JWT profile: a client assertion signed with the API application's key.
    KeyFile(PathBuf),
    /// HTTP Basic with client id and secret.
    Basic { client_id: String, secret: SecretSource },
}

impl ClientAuthConfig {
    /// The file the credentials come from, if any: re-read on change, and checked for loose permissions.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ClientAuthConfig::KeyFile(p) => Some(p),
            ClientAuthConfig::Basic {
                secret: SecretSource::File(p),
                ..
            } => Some(p),
            ClientAuthConfig::Basic { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    pub global: Requirements,
    pub deny_unmatched: bool,
    pub rules: Vec<Rule>,
    /// `policy.strict_paths`: refuse paths servers could read differently instead of repairing them.
    pub strict_paths: bool,
    /// Which role claims count (`policy.project_id`, `policy.org_id`).
    pub roles: crate::introspection::RoleScope,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub max_entries: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub refresh_ahead: f64,
    pub stale_if_error: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct TokenConfig {
    pub cookie: Option<String>,
    pub header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// Where an upstream identity header takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    /// The first of these claims that is present.
    Claims(Vec<String>),
    /// Role names from ZITADEL's project-roles claims.
    Roles,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    pub name: actix_web::http::header::HeaderName,
    pub source: ClaimSource,
}

/// The pseudo-claim naming ZITADEL's role claims in `[headers]`.
pub const ROLES_PSEUDO_CLAIM: &str = "tokengate:roles";

pub const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("X-Auth-Request-User", "sub"),
    ("X-Auth-Request-Preferred-Username", "preferred_username|username"),
    ("X-Auth-Request-Email", "email"),
    ("X-Auth-Request-Client-Id", "client_id"),
    ("X-Auth-Request-Scopes", "scope"),
    ("X-Auth-Request-Roles", ROLES_PSEUDO_CLAIM),
    ("X-Auth-Request-Org-Id", "urn:zitadel:iam:user:resourceowner:id"),
];

// ---- raw, permissive shapes: everything is read as text so that every bad value can be reported at once ----

type Extra = HashMap<String, serde::de::IgnoredAny>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfig {
    server: RawServer,
    idp: RawIdp,
    policy: RawPolicy,
    cache: RawCache,
    token: RawToken,
    headers: BTreeMap<String, String>,
    log: RawLog,
    rules: Vec<RawRule>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: Option<String>,
    workers: Option<String>,
    metrics_listen: Option<String>,
    shutdown_timeout: Option<String>,
    proxy: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawIdp {
    issuer: Option<String>,
    introspection_endpoint: Option<String>,
    key_file: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    timeout: Option<String>,
    ca_file: Option<String>,
    max_concurrent: Option<String>,
    assertion_reuse: Option<String>,
    max_response_bytes: Option<String>,
    reload_interval: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPolicy {
    audience: Vec<String>,
    required_scopes: Vec<String>,
    required_roles: Vec<String>,
    deny_unmatched: Option<String>,
    strict_paths: Option<String>,
    case_sensitive_paths: Option<String>,
    project_id: Option<String>,
    org_id: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCache {
    max_entries: Option<String>,
    ttl: Option<String>,
    negative_ttl: Option<String>,
    refresh_ahead: Option<String>,
    stale_if_error: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawToken {
    cookie: Option<String>,
    header: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLog {
    format: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRule {
    name: Option<String>,
    hosts: Vec<String>,
    methods: Vec<String>,
    paths: Vec<String>,
    anonymous: Option<String>,
    required_scopes: Vec<String>,
    required_roles: Vec<String>,
    audience: Vec<String>,
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

struct Collector(Vec<ConfigError>);

impl Collector {
    fn err(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigError::new(key, message));
    }
    fn unknown(&mut self, section: &str, extra: &Extra) {
        let mut names: Vec<&String> = extra.keys().collect();
        names.sort();
        for name in names {
            // TOKENGATE_CONFIG names the file and reaches us through the environment source.
            if section.is_empty() && name == "config" {
                continue;
            }
            let key = if section.is_empty() {
                name.clone()
            } else {
                format!("{section}.{name}")
            };
            self.err(&key, "unknown key");
        }
    }
    fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(text) => parse_duration(text).unwrap_or_else(|| {
                self.err(key, format!("{text:?} is not a duration (e.g. \"3s\", \"500ms\")"));
                default
            }),
        }
    }
    fn number<T: std::str::FromStr>(&mut self, key: &str, raw: Option<&str>, default: T) -> T {
        match raw {
            None => default,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                self.err(key, format!("{text:?} is not a valid number"));
                default
            }),
        }
    }
    fn boolean(&mut self, key: &str, raw: Option<&str>) -> bool {
        self.boolean_or(key, raw, false)
    }
    fn boolean_or(&mut self, key: &str, raw: Option<&str>, default: bool) -> bool {
        match raw.map(|s| s.trim().to_ascii_lowercase()) {
            None => default,
            Some(s) if s == "true" => true,
            Some(s) if s == "false" => false,
            Some(s) => {
                self.err(key, format!("{s:?} is not true or false"));
                default
            }
        }
    }
    fn addr(&mut self, key: &str, raw: &str) -> Option<SocketAddr> {
        raw.trim()
            .parse()
            .map_err(|_| self.err(key, format!("{raw:?} is not an address like 0.0.0.0:8080")))
            .ok()
    }
    fn url(&mut self, key: &str, raw: &str) -> Option<Url> {
        match Url::parse(raw.trim()) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            Ok(_) => {
                self.err(key, "must be an http:// or https:// URL");
                None
            }
            Err(e) => {
                self.err(key, format!("{raw:?} is not a URL: {e}"));
                None
            }
        }
    }
}

/// `"3s"`, `"500ms"`, `"1m 30s"`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).ok()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn clean_list(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
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

    let default_listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    let listen = match non_empty(raw.server.listen) {
        Some(s) => c.addr("server.listen", &s).unwrap_or(default_listen),
        None => default_listen,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = c.number("server.workers", raw.server.workers.as_deref(), cpus);
    if workers == 0 {
        c.err("server.workers", "must be at least 1");
    }
    let metrics_listen = non_empty(raw.server.metrics_listen).and_then(|s| c.addr("server.metrics_listen", &s));
    let shutdown_timeout = c.duration(
        "server.shutdown_timeout",
        raw.server.shutdown_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let proxy = match non_empty(raw.server.proxy).map(|s| s.to_ascii_lowercase()) {
        None => ProxyMode::Auto,
        Some(p) => ProxyMode::ALL.into_iter().find(|m| m.label() == p).unwrap_or_else(|| {
            c.err(
                "server.proxy",
                format!("{p:?} is not one of auto, nginx, ingress-nginx, envoy, traefik, caddy"),
            );
            ProxyMode::Auto
        }),
    };

    let issuer = match non_empty(raw.idp.issuer) {
        Some(s) => c.url("idp.issuer", &s).map(|_| s),
        None => {
            c.err(
                "idp.issuer",
                "required: the ZITADEL instance URL, e.g. https://my-instance.zitadel.cloud",
            );
            None
        }
    };
    let introspection_endpoint =
        non_empty(raw.idp.introspection_endpoint).and_then(|s| c.url("idp.introspection_endpoint", &s));
    let key_file = non_empty(raw.idp.key_file);
    let client_id = non_empty(raw.idp.client_id);
    let client_secret = non_empty(raw.idp.client_secret);
    let client_secret_file = non_empty(raw.idp.client_secret_file);
    let auth = match (key_file, client_id, client_secret, client_secret_file) {
        (Some(path), None, None, None) => Some(ClientAuthConfig::KeyFile(PathBuf::from(path))),
        (None, Some(id), Some(secret), None) => Some(ClientAuthConfig::Basic {
            client_id: id,
            secret: SecretSource::Inline(Secret::new(secret)),
        }),
        (None, Some(id), None, Some(path)) => Some(ClientAuthConfig::Basic {
            client_id: id,
            secret: SecretSource::File(PathBuf::from(path)),
        }),
        (None, None, None, None) => {
            c.err(
                "idp.key_file",
                "no client authentication: set idp.key_file (the API application's JSON key) or idp.client_id with idp.client_secret / idp.client_secret_file",
            );
            None
        }
        (Some(_), _, _, _) => {
            c.err(
                "idp.key_file",
                "use either idp.key_file or idp.client_id/idp.client_secret, not both",
            );
            None
        }
        (None, None, _, _) => {
            c.err(
                "idp.client_id",
                "required with idp.client_secret / idp.client_secret_file",
            );
            None
        }
        (None, Some(_), Some(_), Some(_)) => {
            c.err(
                "idp.client_secret",
                "set idp.client_secret or idp.client_secret_file, not both",
            );
            None
        }
        (None, Some(_), None, None) => {
            c.err(
                "idp.client_secret",
                "idp.client_id needs idp.client_secret or idp.client_secret_file",
            );
            None
        }
    };
    let timeout = c.duration("idp.timeout", raw.idp.timeout.as_deref(), Duration::from_secs(3));
    if timeout.is_zero() {
        c.err("idp.timeout", "must be greater than zero");
    }
    let ca_file = non_empty(raw.idp.ca_file).map(PathBuf::from);
    if let Some(path) = &ca_file
        && !path.is_file()
    {
        c.err("idp.ca_file", format!("{} is not a readable file", path.display()));
    }
    let max_concurrent = c.number("idp.max_concurrent", raw.idp.max_concurrent.as_deref(), 64usize);
    if max_concurrent == 0 {
        c.err("idp.max_concurrent", "must be at least 1");
    }
    let assertion_reuse = c.boolean("idp.assertion_reuse", raw.idp.assertion_reuse.as_deref());
    let max_response_bytes = c.number(
        "idp.max_response_bytes",
        raw.idp.max_response_bytes.as_deref(),
        64 * 1024usize,
    );
    let reload_interval = c.duration(
        "idp.reload_interval",
        raw.idp.reload_interval.as_deref(),
        Duration::from_secs(2),
    );

    let scope_check = |c: &mut Collector, key: &str, scopes: &[String]| {
        for bad in scopes.iter().filter(|s| !crate::policy::is_scope_token(s)) {
            c.err(
                key,
                format!("{bad:?} is not a scope (RFC 6749: printable ASCII without space, '\"' or '\\')"),
            );
        }
    };
    scope_check(&mut c, "policy.required_scopes", &raw.policy.required_scopes);
    for (i, r) in raw.rules.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
        scope_check(
            &mut c,
            &format!("rules[{i}] ({name}).required_scopes"),
            &r.required_scopes,
        );
    }
    let global = Requirements::new(
        clean_list(raw.policy.audience),
        clean_list(raw.policy.required_scopes),
        clean_list(raw.policy.required_roles),
    );
    let deny_unmatched = c.boolean("policy.deny_unmatched", raw.policy.deny_unmatched.as_deref());
    let strict_paths = c.boolean_or("policy.strict_paths", raw.policy.strict_paths.as_deref(), true);
    let case_sensitive_paths = c.boolean(
        "policy.case_sensitive_paths",
        raw.policy.case_sensitive_paths.as_deref(),
    );
    let mut id = |key: &str, raw: Option<String>| {
        let v = non_empty(raw)?;
        // ZITADEL ids are decimal; anything else would never match a claim and silently drop every role.
        if v.bytes().all(|b| b.is_ascii_digit()) {
            Some(v)
        } else {
            c.err(key, format!("{v:?} is not a ZITADEL id (digits only)"));
            None
        }
    };
    let roles = crate::introspection::RoleScope {
        project_id: id("policy.project_id", raw.policy.project_id),
        org_id: id("policy.org_id", raw.policy.org_id),
    };
    let mut rules = Vec::new();
    for (i, r) in raw.rules.into_iter().enumerate() {
        if let Some(rule) = validate_rule(&mut c, i, r, case_sensitive_paths) {
            rules.push(rule);
        }
    }

    let max_entries = c.number("cache.max_entries", raw.cache.max_entries.as_deref(), 100_000u64);
    let ttl = c.duration("cache.ttl", raw.cache.ttl.as_deref(), Duration::from_secs(60));
    let negative_ttl = c.duration(
        "cache.negative_ttl",
        raw.cache.negative_ttl.as_deref(),
        Duration::from_secs(5),
    );
    let refresh_ahead = c.number("cache.refresh_ahead", raw.cache.refresh_ahead.as_deref(), 0.8f64);
    if !(0.0..1.0).contains(&refresh_ahead) {
        c.err("cache.refresh_ahead", "must be at least 0 (off) and below 1");
    }
    let stale_if_error = c.duration(
        "cache.stale_if_error",
        raw.cache.stale_if_error.as_deref(),
        Duration::ZERO,
    );

    let token = TokenConfig {
        cookie: non_empty(raw.token.cookie),
        header: non_empty(raw.token.header),
    };
    if let Some(h) = &token.header
        && actix_web::http::header::HeaderName::try_from(h.as_str()).is_err()
    {
        c.err("token.header", format!("{h:?} is not a valid header name"));
    }

    let headers = validate_headers(&mut c, raw.headers);

    let format = match non_empty(raw.log.format).map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.err("log.format", format!("{other:?} is not text or json"));
            LogFormat::Text
        }
    };

    if !c.0.is_empty() {
        return Err(c.0);
    }
    let (Some(issuer), Some(auth)) = (issuer, auth) else {
        // Unreachable in practice: both record an error when absent.
        return Err(vec![ConfigError::new("idp", "incomplete identity-provider settings")]);
    };
    Ok(Config {
        server: ServerConfig {
            listen,
            workers,
            metrics_listen,
            shutdown_timeout,
            proxy,
        },
        idp: IdpConfig {
            issuer,
            introspection_endpoint,
            auth,
            timeout,
            ca_file,
            max_concurrent,
            assertion_reuse,
            max_response_bytes,
            reload_interval,
        },
        policy: PolicyConfig {
            global,
            deny_unmatched,
            rules,
            strict_paths,
            roles,
        },
        cache: CacheConfig {
            max_entries,
            ttl,
            negative_ttl,
            refresh_ahead,
            stale_if_error,
        },
        token,
        headers,
        log: LogConfig { format },
    })
}

fn validate_rule(c: &mut Collector, index: usize, r: RawRule, case_sensitive_paths: bool) -> Option<Rule> {
    let name = non_empty(r.name).unwrap_or_else(|| format!("#{}", index + 1));
    let key = format!("rules[{index}] ({name})");
    let mut names: Vec<&String> = r.extra.keys().collect();
    names.sort();
    for extra in names {
        c.err(&format!("{key}.{extra}"), "unknown key");
    }
    let anonymous = c.boolean(&format!("{key}.anonymous"), r.anonymous.as_deref());
    let requirements = Requirements::new(
        clean_list(r.audience),
        clean_list(r.required_scopes),
        clean_list(r.required_roles),
    );
    if anonymous && !requirements.is_empty() {
        c.err(&key, "an anonymous rule cannot also have requirements");
    }
    let action = if anonymous {
        RuleAction::Anonymous
    } else {
        RuleAction::Require(requirements)
    };
    match Rule::new(
        name,
        &clean_list(r.hosts),
        &clean_list(r.methods),
        &clean_list(r.paths),
        action,
        case_sensitive_paths,
    ) {
        Ok(rule) => Some(rule),
        Err(e) => {
            c.err(&key, e.to_string());
            None
        }
    }
}

fn validate_headers(c: &mut Collector, table: BTreeMap<String, String>) -> Vec<HeaderRule> {
    let mut merged: BTreeMap<String, (String, String)> = DEFAULT_HEADERS
        .iter()
        .map(|(n, s)| (n.to_ascii_lowercase(), ((*n).to_string(), (*s).to_string())))
        .collect();
    for (name, source) in table {
        merged.insert(name.to_ascii_lowercase(), (name, source));
    }
    let mut out = Vec::new();
    for (display, source) in merged.into_values() {
        let source = source.trim();
        // An empty source switches a default header off.
        if source.is_empty() {
            continue;
        }
        let key = format!("headers.{display}");
        let Ok(name) = actix_web::http::header::HeaderName::try_from(display.as_str()) else {
            c.err(&key, "not a valid header name");
            continue;
        };
        let source = if source == ROLES_PSEUDO_CLAIM {
            ClaimSource::Roles
        } else {
            ClaimSource::Claims(
                source
                    .split('|')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        };
        out.push(HeaderRule { name, source });
    }
    out
}

/// Reads a secret file, trimming the trailing newline editors and `kubectl create secret` leave behind.
pub fn read_secret_file(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests {
    use super::*;

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
