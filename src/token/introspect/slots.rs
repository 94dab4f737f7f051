//! The identity provider's slots (`idp.max_concurrent`), shared fairly: when they are all taken, waiting calls
//! are served round-robin by client, so one client flooding unknown tokens cannot make everybody else wait behind
//! its queue. Work-conserving: a lone client may use every slot.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::token::lookup::ClientKey;

#[derive(Default)]
struct State {
    in_use: usize,
    /// Waiting calls per client, oldest first.
    queues: HashMap<ClientKey, VecDeque<oneshot::Sender<()>>>,
    /// Clients with waiting calls, in the order they are served.
    turn: VecDeque<ClientKey>,
}

pub struct FairSlots {
    max: usize,
    state: Mutex<State>,
    /// `tokengate_idp_waiting`.
    waiting: prometheus::IntGauge,
}

/// A held slot, given back (to the next client in turn) when dropped.
pub struct Slot<'a> {
    slots: &'a FairSlots,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.slots.release();
    }
}

impl FairSlots {
    pub fn new(max: usize, waiting: prometheus::IntGauge) -> FairSlots {
        FairSlots {
            max: max.max(1),
            state: Mutex::new(State::default()),
            waiting,
        }
    }

    /// A slot for `client`, or `None` if none came before `deadline`.
    pub async fn acquire(&self, client: ClientKey, deadline: Instant) -> Option<Slot<'_>> {
        let mut rx = {
            let mut state = self.state.lock().ok()?;
            if state.in_use < self.max && state.turn.is_empty() {
                state.in_use += 1;
                return Some(Slot { slots: self });
            }
            let (tx, rx) = oneshot::channel();
            if state.queues.get(&client).is_none_or(VecDeque::is_empty) {
                state.turn.push_back(client);
            }
            state.queues.entry(client).or_default().push_back(tx);
            self.waiting.inc();
            rx
        };
        match tokio::time::timeout_at(deadline.into(), &mut rx).await {
            // A slot with no time left to use it is no slot: pass it on.
            Ok(Ok(())) if Instant::now() >= deadline => {
                self.release();
                None
            }
            Ok(Ok(())) => Some(Slot { slots: self }),
            Ok(Err(_)) => None,
            Err(_) => {
                // Handed a slot just as the deadline passed: pass it on rather than lose it.
                rx.close();
                if rx.try_recv().is_ok() {
                    self.release();
                } else {
                    self.forget_abandoned(client);
                }
                None
            }
        }
    }

    /// Drops the queued calls of `client` that gave up, so the queue (and `tokengate_idp_waiting`) holds only live
    /// ones.
    fn forget_abandoned(&self, client: ClientKey) {
        let Ok(mut state) = self.state.lock() else { return };
        let Some(queue) = state.queues.get_mut(&client) else {
            return;
        };
        let before = queue.len();
        queue.retain(|tx| !tx.is_closed());
        let removed = before - queue.len();
        if queue.is_empty() {
            state.queues.remove(&client);
            state.turn.retain(|c| *c != client);
        }
        self.waiting.sub(i64::try_from(removed).unwrap_or(0));
    }

    /// Gives a slot to the first waiting call of the client whose turn it is, or frees it.
    fn release(&self) {
        let Ok(mut state) = self.state.lock() else { return };
        while let Some(client) = state.turn.pop_front() {
            let Some(queue) = state.queues.get_mut(&client) else {
                continue;
            };
            let next = queue.pop_front();
            let more = !queue.is_empty();
            if more {
                state.turn.push_back(client);
            } else {
                state.queues.remove(&client);
            }
            // A waiter that gave up has dropped its receiver: try the next.
            if let Some(tx) = next {
                self.waiting.dec();
                if tx.send(()).is_ok() {
                    return;
                }
            }
        }
        state.in_use = state.in_use.saturating_sub(1);
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.queues.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Duration;

    fn client(n: u8) -> ClientKey {
        ClientKey(Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))))
    }

    fn gauge() -> prometheus::IntGauge {
        prometheus::IntGauge::new("w", "w").unwrap()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// Runs one waiting call per entry and records the order in which they got a slot.
    async fn order_of(
        slots: &Arc<FairSlots>,
        clients: &[u8],
    ) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<Vec<u8>>>) {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for &c in clients {
            let shared = slots.clone();
            let order = order.clone();
            handles.push(tokio::spawn(async move {
                let slot = shared.acquire(client(c), later()).await;
                assert!(slot.is_some());
                order.lock().unwrap().push(c);
                // Held until the test lets go of the next one.
                tokio::task::yield_now().await;
            }));
            // Let each one queue before the next, so arrival order is known.
            while slots.waiting() < handles.len() {
                tokio::task::yield_now().await;
            }
        }
        (handles, order)
    }

    #[tokio::test]
    async fn a_flooding_client_does_not_make_others_wait_behind_its_queue() {
        let slots = Arc::new(FairSlots::new(2, gauge()));
        let held = [
            slots.acquire(client(1), later()).await.unwrap(),
            slots.acquire(client(1), later()).await.unwrap(),
        ];
        // Client 1 queues 20 calls, then client 2 queues 3.
        let mut arrivals = vec![1u8; 20];
        arrivals.extend([2, 2, 2]);
        let (handles, order) = order_of(&slots, &arrivals).await;
        drop(held);
        for h in handles {
            h.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let last_of_2 = order.iter().rposition(|c| *c == 2).unwrap();
        assert!(
            last_of_2 <= 6,
            "client 2's three calls are served in turns with client 1's, not after its 20: {order:?}"
        );
        assert_eq!(order.len(), 23);
    }

    #[tokio::test]
    async fn bounded_and_work_conserving() {
        let slots = FairSlots::new(3, gauge());
        let a = slots.acquire(client(1), later()).await;
        let b = slots.acquire(client(1), later()).await;
        let c = slots.acquire(client(1), later()).await;
        assert!(
            a.is_some() && b.is_some() && c.is_some(),
            "a lone client may use every slot"
        );
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(slots.acquire(client(2), soon).await.is_none(), "none past the deadline");
        assert_eq!(
            (slots.waiting(), slots.waiting.get()),
            (0, 0),
            "a waiter that gave up leaves the queue"
        );
        drop(a);
        assert!(
            slots.acquire(client(2), later()).await.is_some(),
            "the freed slot is given on"
        );
        assert_eq!(slots.waiting(), 0);
    }
}
