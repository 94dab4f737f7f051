//! Test harness: the development IdP (our ZITADEL double) and tokengate, both on loopback port 0.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokengate::clock::{Clock, ManualClock, SystemClock};
use tokengate::config::{self, Sources};
use tokengate::dev_idp::{DevIdp, TokenSpec};
use tokengate::metrics::Metrics;
use tokengate::startup::{Application, Listeners, Stopper};
use tokengate::token::IdpError;
use tokengate::token::cache::MemoryCache;
use tokengate::token::introspect::credentials::Credentials;

pub struct TestIdp {
    pub idp: DevIdp,
    pub dir: tempfile::TempDir,
    pub key_file: PathBuf,
    handle: ServerHandle,
}

impl TestIdp {
    pub async fn start() -> TestIdp {
        let (idp, server) = DevIdp::start(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let dir = tempfile::tempdir().unwrap();
        let key_file = idp.add_api_app(dir.path(), "tokengate").unwrap();
        TestIdp {
            idp,
            dir,
            key_file,
            handle,
        }
    }

    pub fn mint(&self, spec: TokenSpec) -> String {
        self.idp.mint(spec)
    }

    /// A JWT access token signed by the double's active key (RS256 unless rotated to another algorithm).
    pub fn mint_jwt(&self, spec: TokenSpec) -> String {
        self.idp.mint_jwt(spec).unwrap()
    }

    /// Stops the IdP and waits until its port refuses connections, so that "the IdP is down" is true when this
    /// returns (a loaded machine can otherwise still serve a request from a worker that is winding down).
    pub async fn stop(&self) {
        // A worker still winding down may answer one more request on a kept-alive connection: make that answer
        // an outage too, so "down" never reads as "this token is inactive".
        self.idp.set_faults(tokengate::dev_idp::Faults {
            status: Some(503),
            ..Default::default()
        });
        self.handle.stop(false).await;
        let addr = self.idp.issuer().trim_start_matches("http://").to_string();
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_err() {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the IdP at {addr} still accepts connections after stop");
    }
}

/// How to start tokengate for one test.
pub struct Setup {
    pub env: Vec<(String, String)>,
    pub file: Option<String>,
    pub clock: Option<Arc<ManualClock>>,
    pub separate_metrics: bool,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            env: vec![],
            file: None,
            clock: None,
            separate_metrics: false,
        }
    }

    /// `key` as in the config file, e.g. `policy.required_roles`.
    pub fn set(mut self, key: &str, value: &str) -> Setup {
        self.env.push((config::env_var_for(key), value.to_string()));
        self
    }

    pub fn file(mut self, toml: &str) -> Setup {
        self.file = Some(toml.to_string());
        self
    }

    pub fn separate_metrics(mut self) -> Setup {
        self.separate_metrics = true;
        self
    }

    pub fn clock(mut self, clock: Arc<ManualClock>) -> Setup {
        self.clock = Some(clock);
        self
    }
}

pub struct TestApp {
    pub url: String,
    pub metrics_url: Option<String>,
    /// `http://127.0.0.1:PORT` of the gRPC door, when `server.grpc_listen` is set (`127.0.0.1:0` in tests).
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub grpc_url: Option<String>,
    /// Stops every door, as SIGTERM does.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub stopper: Stopper,
    /// `Application::run_until_stopped`: ends once every door has drained.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    pub running: Option<actix_web::rt::task::JoinHandle<std::io::Result<()>>>,
    pub http: awc::Client,
    pub registry: prometheus::Registry,
    pub cache: Arc<MemoryCache>,
    _dir: tempfile::TempDir,
}

pub fn base_env(idp: &TestIdp) -> HashMap<String, String> {
    HashMap::from([
        ("TOKENGATE_IDP__ISSUER".to_string(), idp.idp.issuer().to_string()),
        (
            "TOKENGATE_IDP__KEY_FILE".to_string(),
            idp.key_file.display().to_string(),
        ),
        ("TOKENGATE_IDP__TIMEOUT".to_string(), "2s".to_string()),
        ("TOKENGATE_SERVER__WORKERS".to_string(), "2".to_string()),
        ("TOKENGATE_SERVER__LISTEN".to_string(), "127.0.0.1:0".to_string()),
    ])
}

pub async fn spawn_app(idp: &TestIdp, setup: Setup) -> TestApp {
    try_spawn_app(idp, setup).await.unwrap()
}

pub async fn try_spawn_app(idp: &TestIdp, setup: Setup) -> Result<TestApp, String> {
    let mut env = base_env(idp);
    for (k, v) in setup.env {
        if v.is_empty() {
            env.remove(&k);
        } else {
            env.insert(k, v);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = setup.file.map(|text| {
        let p = dir.path().join("tokengate.toml");
        std::fs::write(&p, text).unwrap();
        p
    });
    let cfg = config::load(&Sources { file, env: Some(env) })
        .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))?;
    let credentials = Credentials::load(&cfg.idp.auth).map_err(|e| e.to_string())?;
    let (registry, metrics) = Metrics::new_registry(&IdpError::LABELS).unwrap();
    let metrics = Arc::new(metrics);
    let clock: Arc<dyn Clock> = match setup.clock {
        Some(c) => c,
        None => Arc::new(SystemClock),
    };
    let listeners = Listeners {
        main: TcpListener::bind("127.0.0.1:0").unwrap(),
        metrics: setup
            .separate_metrics
            .then(|| TcpListener::bind("127.0.0.1:0").unwrap()),
        grpc: cfg.server.grpc_listen.map(|a| TcpListener::bind(a).unwrap()),
    };
    let app =
        Application::build(cfg, credentials, listeners, registry.clone(), metrics, clock).map_err(|e| e.to_string())?;
    let url = format!("http://{}", app.addr());
    let metrics_url = app.metrics_addr().map(|a| format!("http://{a}"));
    let cache = app.pipeline.cache().clone();
    let grpc_url = app.grpc_addr().map(|a| format!("http://{a}"));
    let stopper = app.stopper();
    let running = Some(actix_web::rt::spawn(app.run_until_stopped()));
    let http = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    Ok(TestApp {
        url,
        metrics_url,
        grpc_url,
        stopper,
        running,
        http,
        registry,
        cache,
        _dir: dir,
    })
}

pub struct Answer {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl TestApp {
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("GET", path, headers).await
    }

    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.append_header((*k, *v));
        }
        let mut resp = req.send().await.unwrap();
        let body = resp.body().limit(1 << 20).await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Polls /readyz for up to 5 s.
    pub async fn wait_ready(&self) -> bool {
        for _ in 0..100 {
            if self.get("/readyz", &[]).await.status == 200 {
                return true;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn verify(&self, token: &str) -> Answer {
        self.get("/verify", &[("Authorization", &format!("Bearer {token}"))])
            .await
    }

    /// A metric sample's value from this app's registry, e.g. `("tokengate_verify_requests_total", &[("result", "allowed")])`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&tokengate::metrics::render(&self.registry), name, labels)
    }
}

/// The sum of every series of `name` that carries all of `labels` (e.g. both doors when `door` is not given).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        if metric == name && want.iter().all(|w| label_text.contains(w.as_str())) {
            sum += value.parse().unwrap_or(f64::NAN);
        }
    }
    sum
}

/// Polls `f` for up to `secs` seconds; for effects that happen in the background.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 20 {
        if f() {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new())
}

pub fn admin() -> TokenSpec {
    TokenSpec::default().roles(&["admin"])
}

/// A loopback port with nothing listening.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Tools the README's test command installs (nginx, caddy, promtool, traefik, envoy). Under that command
/// (`REQUIRE_TEST_TOOLS=1`) a missing tool fails the test; a bare `cargo test` skips with a note.
/// Looked up on PATH, in the system directories, then in `target/test-tools/`, where scripts/test links the
/// tools it installs from PyPI (Traefik, Envoy), so a bare `cargo test` finds them too once scripts/test has run.
pub fn tool(name: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let found = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            ["/usr/sbin", "/usr/bin", "/sbin"]
                .iter()
                .map(PathBuf::from)
                .chain([target.join("test-tools")])
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        if std::env::var("REQUIRE_TEST_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{name} is required by this test: run the README's test command, which installs it");
        }
        eprintln!("SKIPPED: {name} is not installed (the README's test command installs it)");
    }
    found
}

/// Every log line of this test binary, from the first call on (tests share it; assert with `contains`).
pub fn logs() -> &'static std::sync::Mutex<Vec<String>> {
    use std::sync::{Mutex, OnceLock};
    struct Capture;
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if let Some(lines) = LINES.get()
                && let Ok(mut l) = lines.lock()
            {
                // Key-values as ` key=value` (null ones left out), as the text log format prints them.
                struct Kvs(String);
                impl<'kvs> log::kv::VisitSource<'kvs> for Kvs {
                    fn visit_pair(
                        &mut self,
                        k: log::kv::Key<'kvs>,
                        v: log::kv::Value<'kvs>,
                    ) -> Result<(), log::kv::Error> {
                        let text = v.to_string();
                        if text != "None" && text != "()" {
                            self.0.push_str(&format!(" {k}={text}"));
                        }
                        Ok(())
                    }
                }
                let mut kvs = Kvs(String::new());
                let _ = record.key_values().visit(&mut kvs);
                l.push(format!(
                    "{} {} {}{}",
                    record.level(),
                    record.target(),
                    record.args(),
                    kvs.0
                ));
            }
        }
        fn flush(&self) {}
    }
    let lines = LINES.get_or_init(|| Mutex::new(Vec::new()));
    if log::set_boxed_logger(Box::new(Capture)).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    lines
}

pub fn logged(needle: &str) -> bool {
    logs().lock().unwrap().iter().any(|l| l.contains(needle))
}
