//! The identity provider's thread. awc (a fixed dependency) is not `Send`, so every HTTP exchange with the IdP —
//! discovery, introspection, key sets — runs on one thread with a single-threaded runtime; callers on any thread
//! hand it work and await the answer through a channel, so their futures stay `Send` (tonic needs that).
//! It only does I/O: client assertions are signed elsewhere (see `signer`), so it is never the bottleneck.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::credentials::{Authenticator, ClientAuth};
use super::discovery::{EndpointCell, Endpoints};
use super::exchange;
use super::http::IdpHttp;
use crate::secret::Secret;
use crate::token::{IdpError, IdpHealth, Introspection};

/// What runs on the IdP thread sees this.
pub struct IdpContext {
    pub http: IdpHttp,
    pub endpoints: EndpointCell,
    pub auth: Arc<Authenticator>,
    pub health: Arc<IdpHealth>,
    /// `idp.timeout`: the budget of work the thread starts on its own (warm-up, reload tests).
    pub timeout: Duration,
}

impl IdpContext {
    /// The endpoints (discovery once); learning them also gives the assertions their audience.
    pub async fn endpoints(&self, deadline: Instant) -> Result<&Endpoints, IdpError> {
        let e = self.endpoints.get(&self.http, deadline).await?;
        self.auth.set_issuer(&e.issuer);
        self.health.endpoints_known();
        Ok(e)
    }

    /// One introspection. `auth` was taken on the caller's thread when the issuer was already known; otherwise it
    /// is made here after discovery.
    pub async fn introspect(
        &self,
        token: &Secret,
        auth: Option<ClientAuth>,
        deadline: Instant,
    ) -> Result<Introspection, IdpError> {
        let endpoints = self.endpoints(deadline).await?;
        let auth = match auth {
            Some(a) => a,
            None => self.auth.client_auth().unwrap_or(Err(IdpError::WorkerGone))?,
        };
        exchange::introspect(&self.http, endpoints, &auth, token, deadline).await
    }

    /// Learns the endpoints ahead of the first check, retrying with backoff until it works.
    pub async fn warm_up(self: Rc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.endpoints(Instant::now() + self.timeout).await {
                Ok(_) => return,
                Err(e) => {
                    log::error!("cannot learn the identity provider's endpoints, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

type Task = Box<dyn FnOnce(Rc<IdpContext>) -> LocalBoxFuture<'static, ()> + Send>;

/// A handle on the IdP thread; clones share it. The thread ends when every handle is gone.
#[derive(Clone)]
pub struct IdpThread {
    tasks: mpsc::UnboundedSender<Task>,
}

impl IdpThread {
    /// Starts the thread; `make` builds the (non-`Send`) context there.
    pub fn start<F>(make: F) -> std::io::Result<IdpThread>
    where
        F: FnOnce() -> IdpContext + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
        std::thread::Builder::new()
            .name("tokengate-idp".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let ctx = Rc::new(make());
                    while let Some(task) = rx.recv().await {
                        actix_web::rt::spawn(task(ctx.clone()));
                    }
                });
            })?;
        Ok(IdpThread { tasks: tx })
    }

    /// Runs `f` on the IdP thread, in the background.
    pub fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Rc<IdpContext>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let task: Task = Box::new(move |ctx| f(ctx).boxed_local());
        if self.tasks.send(task).is_err() {
            log::error!("the identity provider's thread is gone");
        }
    }

    /// Runs `f` on the IdP thread and waits for its answer.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, IdpError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<IdpContext>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, IdpError>> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.spawn(move |ctx| async move {
            let _ = tx.send(f(ctx).await);
        });
        rx.await.unwrap_or(Err(IdpError::WorkerGone))
    }
}
