//! Key rotation without restart: the key file (or `idp.client_secret_file`) is re-read every
//! `idp.reload_interval` and on SIGHUP, following symlinks (Kubernetes swaps `..data`); a changed file is tested
//! with one introspection of a random token and used only if the IdP accepts it.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::assertion::new_jti;
use super::credentials::{Auth, ClientAuthConfig, Credentials};
use super::thread::IdpContext;
use crate::secret::Secret;
use crate::token::IdpError;

/// Watches the credentials file until the thread ends.
pub async fn watch(
    ctx: Rc<IdpContext>,
    config: ClientAuthConfig,
    interval: Duration,
    reloads: prometheus::IntCounterVec,
) {
    let Some(path) = config.file().map(Path::to_path_buf) else {
        return;
    };
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| log::warn!("cannot listen for SIGHUP: {e}"))
        .ok();
    let mut tick = (!interval.is_zero()).then(|| tokio::time::interval(interval));
    let last_seen = Cell::new(None);
    loop {
        tokio::select! {
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {}
            _ = async { match hangup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                log::info!("SIGHUP: re-reading {}", path.display());
            }
        }
        reload(&ctx, &config, &path, &last_seen, &reloads).await;
    }
}

async fn reload(
    ctx: &IdpContext,
    config: &ClientAuthConfig,
    path: &Path,
    last_seen: &Cell<Option<[u8; 32]>>,
    reloads: &prometheus::IntCounterVec,
) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            log::warn!(
                "cannot re-read {}: {}; keeping the credentials in use",
                path.display(),
                e.kind()
            );
            return;
        }
    };
    let raw: [u8; 32] = Sha256::digest(&bytes).into();
    if last_seen.get() == Some(raw) {
        return;
    }
    let reject = |why: &dyn std::fmt::Display| {
        log::error!(
            "{}: new credentials rejected, keeping the ones in use: {why}",
            path.display()
        );
        reloads.with_label_values(&["rejected"]).inc();
        last_seen.set(Some(raw));
    };
    let candidate = match Credentials::from_bytes(config, &bytes) {
        Ok(c) => c,
        Err(e) => return reject(&e),
    };
    if candidate.fingerprint() == ctx.auth.credentials().fingerprint() {
        last_seen.set(Some(raw));
        return;
    }
    let deadline = Instant::now() + ctx.timeout;
    let endpoints = match ctx.endpoints(deadline).await {
        Ok(e) => e.clone(),
        Err(e) => return log::warn!("cannot test the new credentials in {} yet: {e}", path.display()),
    };
    let auth = Arc::new(Auth::new(&candidate, &endpoints.issuer, ctx.auth.assertion_reuse()));
    let test = match auth.sign(ctx.auth.signed_counter()) {
        Ok(client_auth) => {
            super::exchange::introspect(&ctx.http, &endpoints, &client_auth, &Secret::new(new_jti()), deadline).await
        }
        Err(e) => Err(e),
    };
    match test {
        Ok(i) if !i.active => {
            log::info!(
                "{}: new credentials in use (client id {})",
                path.display(),
                candidate.client_id()
            );
            ctx.auth.replace(candidate, auth);
            last_seen.set(Some(raw));
            reloads.with_label_values(&["applied"]).inc();
        }
        Ok(_) => reject(&"the identity provider calls a random token active"),
        Err(e @ (IdpError::CredentialsRejected { .. } | IdpError::Signing(_))) => reject(&e),
        // Not a verdict on the new credentials: try again on the next change check.
        Err(e) => log::warn!("cannot test the new credentials in {} yet: {e}", path.display()),
    }
}
