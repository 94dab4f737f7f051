//! The command line: `serve` (default), `check`, `introspect` and `dev`, and their exit codes.

use std::collections::HashMap;
use std::io::Read;
#[cfg(feature = "dev-idp")]
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::bearer::{TokenError, parse_bearer};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, Sources};
#[cfg(feature = "dev-idp")]
use crate::dev_idp::{DevIdp, TokenSpec};
use crate::metrics::Metrics;
use crate::policy::{Decision, decide};
use crate::secret::Secret;
use crate::startup::{Application, Listeners};
use crate::token::introspect::credentials::{ClientAuthConfig, Credentials};
use crate::token::introspect::thread::IdpContext;
use crate::token::{IdpError, IdpHealth, TokenInfo};

/// Bad configuration or usage (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// `introspect`: the token would be refused.
pub const EXIT_DENIED: u8 = 1;
/// The identity provider cannot be reached or answers 5xx (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// The identity provider answers something that is not a valid introspection (EX_PROTOCOL).
pub const EXIT_PROTOCOL: u8 = 76;
/// The identity provider rejects our client authentication (EX_NOPERM).
pub const EXIT_REJECTED: u8 = 77;

#[derive(Debug, Parser)]
#[command(
    name = "tokengate",
    version,
    about = "Forward-auth sidecar: bearer tokens checked by ZITADEL introspection"
)]
pub struct Cli {
    /// Configuration file (TOML, YAML or JSON, by extension); every key can also come from TOKENGATE_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "TOKENGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration, load the key, fetch discovery and make one real introspection call.
    Check,
    /// Read one token from standard input; print its introspection and the decision /verify would take.
    Introspect,
    /// DEVELOPMENT ONLY: run an embedded ZITADEL-like identity provider and the sidecar wired to it.
    // Absent from builds without the default `dev-idp` feature: clap then reports an unknown subcommand.
    #[cfg(feature = "dev-idp")]
    Dev {
        /// Where the sidecar listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::Check => check(cli.config),
        Command::Introspect => introspect(cli.config),
        #[cfg(feature = "dev-idp")]
        Command::Dev { listen } => dev(cli.config, listen),
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tokengate: {message}");
    ExitCode::from(code)
}

/// Config and credentials, or every problem printed and exit 64.
fn load(file: Option<PathBuf>, env: Option<HashMap<String, String>>) -> Result<(Config, Credentials), ExitCode> {
    let config = config::load(&Sources { file, env }).map_err(|errors| {
        for e in &errors {
            eprintln!("tokengate: config error: {e}");
        }
        eprintln!("tokengate: {} configuration problem(s); nothing started", errors.len());
        ExitCode::from(EXIT_CONFIG)
    })?;
    let credentials =
        Credentials::load(&config.idp.auth).map_err(|e| fail(EXIT_CONFIG, format!("config error: {e}")))?;
    Ok((config, credentials))
}

#[cfg(unix)]
fn warn_if_world_readable(auth: &ClientAuthConfig) {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = auth.file() else { return };
    // Kubernetes secret volumes are symlinks into ..data; metadata follows them to the real file.
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        log::warn!(
            "{} is readable by every user on this host: make it 0600 (or 0400)",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_: &ClientAuthConfig) {}

fn serve(file: Option<PathBuf>) -> ExitCode {
    let (config, credentials) = match load(file, None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format);
    warn_if_world_readable(&config.idp.auth);
    let result = actix_web::rt::System::new().block_on(async move {
        let listeners = Listeners::bind(&config)?;
        start(config, credentials, listeners).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}

async fn start(config: Config, credentials: Credentials, listeners: Listeners) -> std::io::Result<()> {
    let (registry, metrics) = Metrics::new_registry(&IdpError::LABELS).map_err(std::io::Error::other)?;
    let app = Application::build(
        config,
        credentials,
        listeners,
        registry,
        Arc::new(metrics),
        Arc::new(SystemClock),
    )
    .map_err(std::io::Error::other)?;
    match app.metrics_addr() {
        Some(m) => log::info!("tokengate listening on {} (metrics on {m})", app.addr()),
        None => log::info!("tokengate listening on {}", app.addr()),
    }
    app.run_until_stopped().await?;
    log::info!("tokengate stopped");
    Ok(())
}

/// The IdP context for a one-shot command, on the current thread.
fn one_shot(config: &Config, credentials: Credentials) -> Result<IdpContext, ExitCode> {
    let metrics = Metrics::register(&prometheus::Registry::new(), &[]).map_err(|e| fail(1, e))?;
    let http = config
        .idp
        .http_setup()
        .map_err(|e| fail(EXIT_CONFIG, format!("config error: {e}")))?;
    let auth = config.idp.authenticator(credentials, &metrics, false);
    Ok(config.idp.context(&http, auth, Arc::new(IdpHealth::default())))
}

fn exit_for(e: &IdpError) -> u8 {
    match e {
        IdpError::CredentialsRejected { .. } => EXIT_REJECTED,
        IdpError::InvalidResponse(_)
        | IdpError::ResponseTooLarge
        | IdpError::Redirect(_)
        | IdpError::Discovery(_)
        | IdpError::TokenRefused { .. } => EXIT_PROTOCOL,
        _ => EXIT_UNAVAILABLE,
    }
}

fn check(file: Option<PathBuf>) -> ExitCode {
    let (config, credentials) = match load(file, None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format);
    warn_if_world_readable(&config.idp.auth);
    let ctx = match one_shot(&config, credentials) {
        Ok(c) => c,
        Err(code) => return code,
    };
    actix_web::rt::System::new().block_on(async move {
        let deadline = || Instant::now() + config.idp.timeout;
        let endpoints = match ctx.endpoints(deadline()).await {
            Ok(e) => e.clone(),
            Err(e) => {
                return fail(
                    exit_for(&e),
                    format!("cannot learn the endpoints from {}/.well-known/openid-configuration: {e}", config.idp.issuer.trim_end_matches('/')),
                );
            }
        };
        // A random token no IdP has issued: a correct setup gets {"active": false}.
        let probe = Secret::new(crate::token::introspect::assertion::new_jti());
        match ctx.introspect(&probe, None, deadline()).await {
            Ok(i) if !i.active => {
                let c = &config;
                println!("tokengate check: OK");
                println!("  issuer (assertion aud): {}", endpoints.issuer);
                println!("  introspection endpoint: {}", endpoints.introspection);
                println!("  client id:              {}", ctx.auth.credentials().client_id());
                println!("  auth method:            {}", ctx.auth.credentials().method());
                println!("  timeout:                {:?}, max concurrent calls {}", c.idp.timeout, c.idp.max_concurrent);
                println!("  assertion reuse:        {}", c.idp.assertion_reuse);
                println!(
                    "  cache:                  max {} entries, ttl {:?}, negative ttl {:?}, refresh ahead {}, stale-if-error {:?}",
                    c.cache.max_entries, c.cache.ttl, c.cache.negative_ttl, c.cache.refresh_ahead, c.cache.stale_if_error
                );
                println!("  rules:                  {}", c.policy.rules.len());
                println!("  roles that count:       {}", c.policy.roles.describe());
                println!("  proxy:                  {} (strict paths {})", c.server.proxy.label(), c.policy.strict_paths);
                ExitCode::SUCCESS
            }
            Ok(_) => fail(EXIT_PROTOCOL, "the identity provider calls a random token active: refusing to trust it"),
            Err(e @ IdpError::CredentialsRejected { .. }) => fail(
                EXIT_REJECTED,
                format!(
                    "{e}\n  The identity provider rejected our client authentication: the key file or client id/secret is wrong, \
                     the key was deleted or has expired, or idp.issuer ({}) is not the instance's exact URL \
                     (the assertion's aud is {}).",
                    config.idp.issuer, endpoints.issuer
                ),
            ),
            Err(e) => fail(exit_for(&e), format!("introspection failed: {e}")),
        }
    })
}

fn introspect(file: Option<PathBuf>) -> ExitCode {
    let (config, credentials) = match load(file, None) {
        Ok(x) => x,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format);
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return fail(EXIT_CONFIG, "cannot read the token from standard input");
    }
    let input = input.trim();
    if input.is_empty() {
        return fail(
            EXIT_CONFIG,
            "no token on standard input (pipe it in; argv would land in shell history)",
        );
    }
    // The token alone, or a whole `Bearer …` value, read as /verify reads it.
    let token = match parse_bearer(input) {
        Ok(t) => Secret::new(t),
        Err(TokenError::WrongScheme) => Secret::new(input),
        Err(e) => return fail(EXIT_CONFIG, format!("the token on standard input is not usable: {e}")),
    };
    let ctx = match one_shot(&config, credentials) {
        Ok(c) => c,
        Err(code) => return code,
    };
    actix_web::rt::System::new().block_on(async move {
        let i = match ctx.introspect(&token, None, Instant::now() + config.idp.timeout).await {
            Ok(i) => i,
            Err(e) => return fail(exit_for(&e), format!("introspection failed: {e}")),
        };
        let mut shown = i.claims.clone();
        shown.insert("active".into(), serde_json::Value::Bool(i.active));
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(shown)).unwrap_or_default()
        );
        let info = TokenInfo::from_introspection(&i, &config.headers, &config.policy.roles);
        match decide(&info, &config.policy.global, SystemClock.now_secs()) {
            Decision::Allow => {
                println!("decision: allow (200) under the global policy; headers:");
                for (n, v) in info.headers(&config.headers) {
                    println!("  {n}: {}", String::from_utf8_lossy(v.as_bytes()));
                }
                ExitCode::SUCCESS
            }
            Decision::Deny(d) => {
                let status = if d.is_invalid_token() {
                    "401 invalid_token"
                } else {
                    "403 insufficient_scope"
                };
                println!("decision: deny ({status}) under the global policy: {}", d.description());
                ExitCode::from(EXIT_DENIED)
            }
        }
    })
}

#[cfg(feature = "dev-idp")]
fn dev(file: Option<PathBuf>, listen: SocketAddr) -> ExitCode {
    crate::logging::init(config::LogFormat::Text);
    let result = actix_web::rt::System::new().block_on(async move {
        let (idp, server) = DevIdp::start(TcpListener::bind("127.0.0.1:0")?)?;
        actix_web::rt::spawn(server);
        let dir = tempfile::tempdir()?;
        let key = idp
            .add_api_app(dir.path(), "tokengate")
            .map_err(std::io::Error::other)?;
        let mut env: HashMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("TOKENGATE_")).collect();
        env.insert("TOKENGATE_IDP__ISSUER".into(), idp.issuer().into());
        env.insert("TOKENGATE_IDP__KEY_FILE".into(), key.display().to_string());
        env.insert("TOKENGATE_SERVER__LISTEN".into(), listen.to_string());
        for k in [
            "TOKENGATE_IDP__CLIENT_ID",
            "TOKENGATE_IDP__CLIENT_SECRET",
            "TOKENGATE_IDP__CLIENT_SECRET_FILE",
            "TOKENGATE_IDP__INTROSPECTION_ENDPOINT",
        ] {
            env.remove(k);
        }
        let (config, credentials) = match load(file, Some(env)) {
            Ok(x) => x,
            Err(_) => return Err(std::io::Error::other("invalid configuration")),
        };
        let listeners = Listeners::bind(&config)?;
        let token = idp.mint(TokenSpec::default().roles(&["admin"]));
        let jwt = idp
            .mint_jwt(TokenSpec::default().roles(&["admin"]))
            .map_err(std::io::Error::other)?;
        let sidecar = listeners.main.local_addr()?;
        println!("================================================================");
        println!(" tokengate dev: DEVELOPMENT ONLY - NOT FOR PRODUCTION");
        println!(" The identity provider below mints tokens for anyone who asks.");
        println!("================================================================");
        println!("sidecar:            http://{sidecar}/verify");
        println!("identity provider:  {} (ZITADEL look-alike)", idp.issuer());
        println!("API app key file:   {}", key.display());
        println!();
        let issuer = idp.issuer();
        println!("A valid token (sub user-1, role admin, 1 h):");
        println!("  curl -i -H 'Authorization: Bearer {token}' http://{sidecar}/verify");
        println!("The same grants as a JWT access token (RS256, as ZITADEL signs them):");
        println!("  curl -i -H 'Authorization: Bearer {jwt}' http://{sidecar}/verify");
        println!("Mint more (add &format=jwt for a JWT):");
        println!("  curl -s -X POST '{issuer}/dev/token?sub=alice&scope=openid%20read&role=admin&expires_in=600'");
        println!("  curl -s -X POST '{issuer}/dev/token?sub=alice&role=admin&format=jwt'");
        println!("Revoke:   curl -s -X POST -d token=TOKEN {issuer}/oauth/v2/revoke");
        println!("Keys:     curl -s {issuer}/oauth/v2/keys   (rotate: curl -s -X POST {issuer}/dev/keys/rotate)");
        println!("Metrics:  curl -s http://{sidecar}/metrics");
        start(config, credentials, listeners).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, e),
    }
}
