//! Client assertions signed ahead on a thread of their own, so that a cache miss takes a ready assertion instead
//! of paying an RSA signature (about 1 ms of CPU) on its way to the IdP. Each still has its own fresh `jti`;
//! one that waited too long is dropped rather than sent.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::assertion::AssertionSigner;
use crate::clock::{Clock, SystemClock};
use crate::secret::Secret;

/// An assertion lives 5 minutes and ZITADEL wants `exp` more than a second away; two minutes old is the most a
/// pre-signed one may be, which leaves every IdP plenty of margin.
const MAX_AGE_SECS: u64 = 120;

struct Signed {
    assertion: Secret,
    iat: u64,
    generation: u64,
}

struct Pool {
    ready: VecDeque<Signed>,
    signer: Option<Arc<AssertionSigner>>,
    /// Bumped when the key changes: assertions of an older generation are never handed out.
    generation: u64,
    stopped: bool,
}

struct Shared {
    pool: Mutex<Pool>,
    wake: Condvar,
    target: usize,
}

/// Keeps up to `target` assertions signed. Stops its thread when dropped.
pub struct Presigner {
    shared: Arc<Shared>,
}

impl Presigner {
    pub fn start(target: usize, signed: prometheus::IntCounter) -> Presigner {
        let shared = Arc::new(Shared {
            pool: Mutex::new(Pool {
                ready: VecDeque::with_capacity(target),
                signer: None,
                generation: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
            target,
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("tokengate-presign".into())
            .spawn(move || fill(&worker, &signed));
        if let Err(e) = spawned {
            // Without the thread every miss signs for itself, as with `target` 0.
            log::warn!("cannot start the assertion pre-signing thread ({e}); signing on demand");
        }
        Presigner { shared }
    }

    /// Signs with this signer from now on.
    pub fn use_signer(&self, signer: Arc<AssertionSigner>) {
        if let Ok(mut pool) = self.shared.pool.lock() {
            pool.signer = Some(signer);
            pool.generation += 1;
            pool.ready.clear();
        }
        self.shared.wake.notify_all();
    }

    /// A ready assertion of the current key, young enough; `None` when the pool is empty (the caller signs).
    pub fn take(&self) -> Option<Secret> {
        let now = SystemClock.now_secs();
        let mut pool = self.shared.pool.lock().ok()?;
        let generation = pool.generation;
        let found = loop {
            match pool.ready.pop_front() {
                None => break None,
                Some(s) if s.generation == generation && s.iat + MAX_AGE_SECS > now => break Some(s.assertion),
                Some(_) => {}
            }
        };
        drop(pool);
        self.shared.wake.notify_one();
        found
    }

    #[cfg(test)]
    fn ready(&self) -> usize {
        self.shared.pool.lock().map(|p| p.ready.len()).unwrap_or(0)
    }
}

impl Drop for Presigner {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.shared.pool.lock() {
            pool.stopped = true;
        }
        self.shared.wake.notify_all();
    }
}

/// The pre-signing thread: keep the pool full, and replace assertions before they grow too old.
fn fill(shared: &Shared, signed: &prometheus::IntCounter) {
    loop {
        let (signer, generation) = {
            let Ok(mut pool) = shared.pool.lock() else { return };
            loop {
                if pool.stopped {
                    return;
                }
                let now = SystemClock.now_secs();
                let current = pool.generation;
                pool.ready
                    .retain(|s| s.generation == current && s.iat + MAX_AGE_SECS / 2 > now);
                if pool.ready.len() < shared.target
                    && let Some(s) = &pool.signer
                {
                    break (s.clone(), pool.generation);
                }
                pool = match shared.wake.wait_timeout(pool, Duration::from_secs(10)) {
                    Ok((p, _)) => p,
                    Err(_) => return,
                };
            }
        };
        let now = SystemClock.now_secs();
        match signer.assertion(now) {
            Ok((assertion, _)) => {
                signed.inc();
                if let Ok(mut pool) = shared.pool.lock()
                    && pool.generation == generation
                {
                    pool.ready.push_back(Signed {
                        assertion,
                        iat: now,
                        generation,
                    });
                }
            }
            Err(e) => {
                log::error!("cannot pre-sign a client assertion: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::introspect::keyfile::KeyFile;
    use crate::token::introspect::keyfile::tests::fixture;

    fn signer() -> Arc<AssertionSigner> {
        let key = KeyFile::parse(&fixture(serde_json::json!({}))).unwrap();
        Arc::new(AssertionSigner::new(&key, "https://issuer.example.com".into(), false))
    }

    fn wait_for(p: &Presigner, n: usize) -> bool {
        (0..500).any(|_| {
            if p.ready() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
            false
        })
    }

    #[test]
    fn fills_to_the_target_and_hands_out_distinct_assertions() {
        let counter = prometheus::IntCounter::new("x", "x").unwrap();
        let p = Presigner::start(4, counter.clone());
        assert!(p.take().is_none(), "nothing before a signer is known");
        p.use_signer(signer());
        assert!(wait_for(&p, 4));
        let a = p.take().unwrap();
        let b = p.take().unwrap();
        assert_ne!(a.expose(), b.expose(), "a fresh jti each");
        assert!(wait_for(&p, 4), "refilled");
        assert!(counter.get() >= 6);
    }

    #[test]
    fn a_new_key_discards_what_the_old_one_signed() {
        let p = Presigner::start(3, prometheus::IntCounter::new("x", "x").unwrap());
        let first = signer();
        p.use_signer(first);
        assert!(wait_for(&p, 3));
        let second = signer();
        p.use_signer(second.clone());
        let pool = p.shared.pool.lock().unwrap();
        assert!(pool.ready.iter().all(|s| s.generation == pool.generation));
    }
}
