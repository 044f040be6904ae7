//! The pool of Dify replicas (request step 6, `upstream_peer`): every address the origins resolve
//! to, each with its requests in flight (streams count until they end), its health (active checks)
//! and a passive ejection after a refused connection. A request takes the healthy replica with the
//! fewest in flight (ties taken in turn), waiting up to the connect timeout while every healthy one
//! is at `max_inflight_per_replica`. Selection is O(replicas) under no lock held across an await.

use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// One Dify replica.
#[derive(Debug)]
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Which origin of `upstream.url(s)` it belongs to.
    pub origin: usize,
    /// Its metric label, `ip:port`.
    pub label: String,
    inflight: AtomicUsize,
    healthy: AtomicBool,
    /// Unix ms until which a refused connection keeps it out.
    ejected_until: AtomicU64,
    /// Left the pool for good: its metric series are gone and must not come back.
    removed: AtomicBool,
}

impl Replica {
    /// Whether it left the pool for good (a lease may outlive that: a stream still running).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    fn new(origin: usize, addr: SocketAddr) -> Self {
        Self {
            addr,
            origin,
            label: addr.to_string(),
            inflight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        }
    }

    /// Requests in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Passed its last health check.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Healthy and not ejected at `now_ms`.
    pub fn available(&self, now_ms: u64) -> bool {
        self.healthy() && self.ejected_until.load(Ordering::Acquire) <= now_ms
    }
}

/// Why no replica was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReplica {
    /// None is healthy (or none resolved).
    NoneHealthy,
    /// Every healthy one is at its cap.
    Saturated,
}

/// The replica to take among `replicas` at `now_ms`: available, not in `exclude`, under `cap`
/// (0 = none), fewest in flight; ties go to the first at or after `turn`. Pure.
pub fn choose(
    replicas: &[Arc<Replica>],
    exclude: &[SocketAddr],
    cap: usize,
    now_ms: u64,
    turn: usize,
) -> Result<Arc<Replica>, NoReplica> {
    let n = replicas.len();
    let mut best: Option<&Arc<Replica>> = None;
    let mut any = false;
    for i in 0..n {
        let r = &replicas[(turn + i) % n];
        if !r.available(now_ms) || exclude.contains(&r.addr) {
            continue;
        }
        any = true;
        if cap > 0 && r.inflight() >= cap {
            continue;
        }
        if best.is_none_or(|b| r.inflight() < b.inflight()) {
            best = Some(r);
        }
    }
    match best {
        Some(r) => Ok(r.clone()),
        None if any => Err(NoReplica::Saturated),
        None => Err(NoReplica::NoneHealthy),
    }
}

/// Told of a replica's health or in-flight count (metrics).
pub trait PoolObserver: Send + Sync {
    /// `replica` is now healthy or not.
    fn health(&self, replica: &Replica, healthy: bool);
    /// `replica` has this many in flight.
    fn inflight(&self, replica: &Replica, n: usize);
    /// `replica` left the pool for good (its address no longer resolves).
    fn removed(&self, replica: &Replica);
}

impl PoolObserver for crate::telemetry::Metrics {
    fn health(&self, replica: &Replica, healthy: bool) {
        if !replica.is_removed() {
            self.upstream_healthy(&replica.label, healthy);
        }
    }

    fn inflight(&self, replica: &Replica, n: usize) {
        if !replica.is_removed() {
            self.upstream_inflight(&replica.label, n);
        }
    }

    fn removed(&self, replica: &Replica) {
        self.upstream_removed(&replica.label);
    }
}

/// The replicas and who waits for one.
pub struct Pool {
    replicas: ArcSwap<Vec<Arc<Replica>>>,
    cap: usize,
    turn: AtomicUsize,
    freed: tokio::sync::Notify,
    observer: Box<dyn PoolObserver>,
}

/// A request's hold on a replica: released (and a waiter woken) when dropped.
pub struct Lease {
    replica: Arc<Replica>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lease").field(&self.replica.label).finish()
    }
}

impl Lease {
    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let n = self
            .replica
            .inflight
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        self.pool.observer.inflight(&self.replica, n);
        self.pool.freed.notify_waiters();
    }
}

impl Pool {
    /// An empty pool with `cap` requests per replica at most (0 = none).
    pub fn new(cap: usize, observer: Box<dyn PoolObserver>) -> Self {
        Self {
            replicas: ArcSwap::from_pointee(Vec::new()),
            cap,
            turn: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
            observer,
        }
    }

    /// The replicas now.
    pub fn replicas(&self) -> Arc<Vec<Arc<Replica>>> {
        self.replicas.load_full()
    }

    /// Replaces origin `origin`'s addresses with `found`; known replicas keep their state.
    pub fn set_addresses(&self, origin: usize, found: &[SocketAddr]) {
        let before = self.replicas.rcu(|cur| {
            let mut next: Vec<Arc<Replica>> = cur.iter().filter(|r| r.origin != origin).cloned().collect();
            for addr in found {
                let kept = cur.iter().find(|r| r.origin == origin && r.addr == *addr);
                next.push(
                    kept.cloned()
                        .unwrap_or_else(|| Arc::new(Replica::new(origin, *addr))),
                );
            }
            next
        });
        let now = self.replicas.load();
        // Gone replicas' series go too: pods come and go, and a dead pod must not stay "healthy".
        for r in before.iter().filter(|r| !now.iter().any(|n| n.label == r.label)) {
            r.removed.store(true, Ordering::Release);
            self.observer.removed(r);
        }
        for r in now.iter() {
            self.observer.health(r, r.healthy());
            self.observer.inflight(r, r.inflight());
        }
    }

    fn take(self: &Arc<Self>, exclude: &[SocketAddr], cap: usize) -> Result<Lease, NoReplica> {
        loop {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed);
            let r = choose(&self.replicas.load(), exclude, cap, crate::clock::now_ms(), turn)?;
            // Counted only while under the cap: threads racing for the last slot cannot both win;
            // the loser chooses again.
            let counted = r.inflight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (cap == 0 || n < cap).then_some(n + 1)
            });
            if let Ok(before) = counted {
                self.observer.inflight(&r, before + 1);
                return Ok(Lease {
                    replica: r,
                    pool: self.clone(),
                });
            }
        }
    }

    /// Takes a replica for a request, waiting up to `wait` while every healthy one is full.
    pub async fn acquire(
        self: &Arc<Self>,
        exclude: &[SocketAddr],
        wait: Duration,
    ) -> Result<Lease, NoReplica> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            match self.take(exclude, self.cap) {
                Err(NoReplica::Saturated) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(NoReplica::Saturated);
                    }
                }
                other => return other,
            }
        }
    }

    /// A replica for the gateway's own calls (stops, cache fills): healthy, fewest in flight, no cap.
    pub fn any(self: &Arc<Self>) -> Result<Lease, NoReplica> {
        self.take(&[], 0)
    }

    /// Whether any replica is healthy.
    pub fn any_healthy(&self) -> bool {
        let now = crate::clock::now_ms();
        self.replicas.load().iter().any(|r| r.available(now))
    }

    /// Records a health check; returns whether the replica's health changed.
    pub fn set_health(&self, replica: &Replica, healthy: bool) -> bool {
        let changed = replica.healthy.swap(healthy, Ordering::AcqRel) != healthy;
        if healthy {
            replica.ejected_until.store(0, Ordering::Release);
            // Requests waiting for a slot may take this replica now.
            self.freed.notify_waiters();
        }
        self.observer
            .health(replica, healthy && replica.available(crate::clock::now_ms()));
        changed
    }

    /// Keeps `addr` out for `span` after a refused connection (until a health check passes).
    pub fn eject(&self, addr: SocketAddr, span: Duration) {
        if let Some(r) = self.replicas.load().iter().find(|r| r.addr == addr) {
            let until = crate::clock::now_ms().saturating_add(span.as_millis() as u64);
            r.ejected_until.store(until, Ordering::Release);
            self.observer.health(r, false);
            tracing::warn!(message = "Dify replica refused a connection: out of the pool until it passes a check.", upstream = %r.label);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn replicas(n: usize) -> Vec<Arc<Replica>> {
        (0..n)
            .map(|i| {
                Arc::new(Replica::new(
                    0,
                    SocketAddr::from(([127, 0, 0, 1], 5001 + i as u16)),
                ))
            })
            .collect()
    }

    #[test]
    fn fewest_in_flight_wins_and_ties_go_in_turn() {
        let rs = replicas(3);
        rs[0].inflight.store(2, Ordering::Relaxed);
        rs[1].inflight.store(1, Ordering::Relaxed);
        rs[2].inflight.store(1, Ordering::Relaxed);
        assert_eq!(choose(&rs, &[], 0, 0, 0).unwrap().addr.port(), 5002);
        assert_eq!(
            choose(&rs, &[], 0, 0, 2).unwrap().addr.port(),
            5003,
            "the tie goes in turn"
        );
        assert_eq!(
            choose(&rs, &[rs[1].addr], 0, 0, 0).unwrap().addr.port(),
            5003,
            "a failed one is skipped"
        );
    }

    #[test]
    fn unhealthy_ejected_and_full_replicas_are_passed_over() {
        let rs = replicas(2);
        rs[0].healthy.store(false, Ordering::Relaxed);
        rs[1].ejected_until.store(10_000, Ordering::Relaxed);
        assert_eq!(choose(&rs, &[], 0, 5_000, 0).unwrap_err(), NoReplica::NoneHealthy);
        assert_eq!(
            choose(&rs, &[], 0, 10_000, 0).unwrap().addr.port(),
            5002,
            "ejection ends"
        );
        rs[1].inflight.store(3, Ordering::Relaxed);
        assert_eq!(choose(&rs, &[], 3, 10_000, 0).unwrap_err(), NoReplica::Saturated);
        assert!(choose(&[], &[], 0, 0, 0).is_err());
    }

    #[test]
    fn a_replica_gone_from_the_name_loses_its_series_and_the_others_keep_their_state() {
        let reg = prometheus::Registry::new();
        let metrics = crate::telemetry::Metrics::register(&reg).unwrap();
        let pool = Pool::new(0, Box::new(metrics));
        let (a, b) = (
            SocketAddr::from(([10, 0, 0, 1], 5001)),
            SocketAddr::from(([10, 0, 0, 2], 5001)),
        );
        pool.set_addresses(0, &[a, b]);
        pool.replicas()[0].inflight.store(4, Ordering::Relaxed);
        let series = |reg: &prometheus::Registry| {
            let text = prometheus::TextEncoder::new()
                .encode_to_string(&reg.gather())
                .unwrap();
            text.lines()
                .filter(|l| l.starts_with("dify_gateway_upstream_healthy{"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(series(&reg).len(), 2);
        pool.set_addresses(0, &[a]);
        assert_eq!(
            series(&reg),
            vec!["dify_gateway_upstream_healthy{upstream=\"10.0.0.1:5001\"} 1"]
        );
        assert_eq!(pool.replicas()[0].inflight(), 4, "a kept replica lost its count");
    }
}
