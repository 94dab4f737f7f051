//! End to end through real nginx and Caddy (Debian packages), with configs generated from deploy/ by substituting
//! ports only: the double, tokengate, a recording upstream and the proxy, all on loopback.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokengate::dev_idp::TokenSpec;

use crate::helpers::*;

/// What the upstream application saw: (path, headers).
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn recording_upstream() -> (u16, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |req: HttpRequest, seen: web::Data<Seen>| async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                seen.lock().unwrap().push((req.path().to_string(), headers));
                HttpResponse::Ok().body("upstream")
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (port, seen)
}

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn deploy_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)).unwrap()
}

/// The deploy/ text with our ports in place of the documented ones; nothing else changes.
fn substitute(text: &str, tokengate: u16, upstream: u16) -> String {
    text.replace("127.0.0.1:8080", &format!("127.0.0.1:{tokengate}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

async fn start_nginx(nginx: PathBuf, tokengate: u16, upstream: u16) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let server = substitute(&deploy_file("nginx/tokengate.conf"), tokengate, upstream)
        .replace("listen 8000;", &format!("listen 127.0.0.1:{port};"));
    std::fs::write(dir.path().join("tokengate.conf"), server).unwrap();
    let d = dir.path().display();
    let main = format!(
        "daemon off;\nmaster_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/tokengate.conf;\n}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    Proxy { child, port, _dir: dir }
}

async fn start_caddy(caddy: PathBuf, tokengate: u16, upstream: u16) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let text = substitute(&deploy_file("caddy/Caddyfile"), tokengate, upstream)
        .replace("\n:8001 {", &format!("\nhttp://127.0.0.1:{port} {{"));
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, text).unwrap();
    let child = Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    Proxy { child, port, _dir: dir }
}

const RULES: &str = r#"
[[rules]]
name = "public"
paths = ["/public/**"]
anonymous = true
"#;

async fn through(proxy: &Proxy, http: &awc::Client, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = http.get(format!("http://127.0.0.1:{}{path}", proxy.port));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req.send().await.unwrap();
    let body = resp.body().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn seen_header(seen: &Seen, name: &str) -> Option<String> {
    let seen = seen.lock().unwrap();
    let (_, headers) = seen.last()?;
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The scenarios every proxy must pass; `idp_down_status` is what the proxy's config answers then.
async fn scenarios(proxy: &Proxy, idp: &TestIdp, seen: &Seen, idp_down_status: u16) {
    let http = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
    let good = idp.mint(TokenSpec {
        sub: "alice".into(),
        ..TokenSpec::default().roles(&["viewer"])
    });
    let admin_token = idp.mint(TokenSpec {
        sub: "root".into(),
        ..admin()
    });
    let bearer = |t: &str| format!("Bearer {t}");

    let a = through(proxy, &http, "/app/x", &[]).await;
    assert_eq!(a.status, 401, "no token");
    assert!(
        a.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")),
        "client sees the challenge"
    );
    assert!(seen.lock().unwrap().is_empty(), "the upstream is never called on 401");

    let a = through(
        proxy,
        &http,
        "/app/x",
        &[("Authorization", &bearer(&good)), ("X-Auth-Request-User", "mallory")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, "upstream");
    assert_eq!(
        seen_header(seen, "x-auth-request-user").as_deref(),
        Some("alice"),
        "spoofed identity replaced"
    );
    assert_eq!(seen_header(seen, "x-auth-request-roles").as_deref(), Some("viewer"));

    let calls = seen.lock().unwrap().len();
    let a = through(proxy, &http, "/admin/panel", &[("Authorization", &bearer(&good))]).await;
    assert_eq!(a.status, 403, "missing role");
    assert!(
        a.header("www-authenticate")
            .is_some_and(|h| h.contains("insufficient_scope"))
    );
    assert_eq!(seen.lock().unwrap().len(), calls, "the upstream is never called on 403");
    let a = through(
        proxy,
        &http,
        "/admin/panel",
        &[("Authorization", &bearer(&admin_token))],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(seen_header(seen, "x-auth-request-user").as_deref(), Some("root"));

    let a = through(proxy, &http, "/public/style.css", &[("X-Auth-Request-User", "mallory")]).await;
    assert_eq!(a.status, 200, "anonymous route without a token");
    assert_ne!(seen_header(seen, "x-auth-request-user").as_deref(), Some("mallory"));
    let calls = seen.lock().unwrap().len();
    let a = through(proxy, &http, "/public/../app/secret", &[]).await;
    assert_ne!(a.status, 200, "dot segments never reach an anonymous rule");
    let a = through(
        proxy,
        &http,
        "/app/secret",
        &[("X-Forwarded-Uri", "/public/x"), ("X-Original-URI", "/public/x")],
    )
    .await;
    assert_ne!(a.status, 200, "a client cannot name its own original URI");
    assert_eq!(seen.lock().unwrap().len(), calls);

    idp.stop().await;
    let fresh = "never-seen-token";
    let a = through(proxy, &http, "/app/x", &[("Authorization", &bearer(fresh))]).await;
    assert_eq!(a.status, idp_down_status, "IdP down");
    assert_eq!(
        seen.lock().unwrap().len(),
        calls,
        "the upstream is never called when the IdP is down"
    );
}

#[actix_web::test]
async fn nginx_auth_request_end_to_end() {
    let Some(nginx) = tool("nginx") else { return };
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES).set("cache.negative_ttl", "0s")).await;
    let (upstream, seen) = recording_upstream().await;
    let tg_port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = start_nginx(nginx, tg_port, upstream).await;
    // deploy/nginx maps nginx's 500 for a failed auth sub-request to 503 with Retry-After.
    scenarios(&proxy, &idp, &seen, 503).await;
}

#[actix_web::test]
async fn caddy_forward_auth_end_to_end() {
    let Some(caddy) = tool("caddy") else { return };
    let idp = TestIdp::start().await;
    let app = spawn_app(&idp, Setup::new().file(RULES).set("cache.negative_ttl", "0s")).await;
    let (upstream, seen) = recording_upstream().await;
    let tg_port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = start_caddy(caddy, tg_port, upstream).await;
    scenarios(&proxy, &idp, &seen, 503).await;
}
