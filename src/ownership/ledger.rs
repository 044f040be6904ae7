//! The in-process record of one kind of id (written in the response steps, read in request steps 3
//! and 7): a bounded map from id to owner where each entry stands for exactly its time to live.
//! Entries go in two generations per shard; the older one is dropped whole once the newer has been
//! filling for a time to live, or has reached its share of the capacity. A write is one hash, one
//! short lock and one key allocation: a cache with per-entry admission and eviction cost eight
//! allocations and ~2,000 instructions per id on every completion.

use super::Owner;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shards: writers on different ids rarely meet on one lock.
const SHARDS: usize = 16;

struct Entry {
    owner: Arc<Owner>,
    expires: Instant,
}

#[derive(Default)]
struct Generations {
    current: HashMap<Box<str>, Entry>,
    previous: HashMap<Box<str>, Entry>,
    /// When `current` started filling.
    started: Option<Instant>,
}

/// Owners of one kind of id.
pub struct Ledger {
    ttl: Duration,
    /// Entries one shard's current generation holds at most.
    per_generation: usize,
    hasher: RandomState,
    shards: [Mutex<Generations>; SHARDS],
}

impl Ledger {
    /// A ledger keeping each id for `ttl`: the newest `capacity` ids at least (about evenly spread
    /// over the shards), at most twice that in memory.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            per_generation: (capacity / SHARDS).max(1),
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(Generations::default())),
        }
    }

    fn shard(&self, id: &str) -> &Mutex<Generations> {
        let i = self.hasher.hash_one(id) as usize % SHARDS;
        &self.shards[i]
    }

    /// Records `id` as `owner`'s at `now`.
    pub fn insert(&self, id: &str, owner: Arc<Owner>, now: Instant) {
        let mut g = self.shard(id).lock();
        let started = *g.started.get_or_insert(now);
        if now.saturating_duration_since(started) >= self.ttl || g.current.len() >= self.per_generation {
            // Everything in `previous` is past its time, or the oldest half gives way to the new.
            // The new generation starts at the size the last one reached (no rehash as it fills).
            let size = g.current.len();
            g.previous = std::mem::replace(&mut g.current, HashMap::with_capacity(size));
            g.started = Some(now);
        }
        // A stale copy in `previous` is shadowed by this one and goes with its generation.
        let expires = now + self.ttl;
        g.current.insert(id.into(), Entry { owner, expires });
    }

    /// The owner of `id` at `now`, while its time to live lasts.
    pub fn get(&self, id: &str, now: Instant) -> Option<Arc<Owner>> {
        let g = self.shard(id).lock();
        let e = g.current.get(id).or_else(|| g.previous.get(id))?;
        (now < e.expires).then(|| e.owner.clone())
    }

    /// Forgets `id`.
    pub fn remove(&self, id: &str) {
        let mut g = self.shard(id).lock();
        g.current.remove(id);
        g.previous.remove(id);
    }

    /// Ids held in memory (expired ones included until their generation goes).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock();
                g.current.len() + g.previous.len()
            })
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn owner(tenant: &str) -> Arc<Owner> {
        Arc::new(Owner {
            tenant: tenant.into(),
            app: "writer".into(),
            user: None,
        })
    }

    #[test]
    fn an_id_stands_for_exactly_its_time_to_live() {
        let l = Ledger::new(Duration::from_secs(60), 1000);
        let t0 = Instant::now();
        l.insert("task-1", owner("acme"), t0);
        assert_eq!(l.get("task-1", t0).unwrap().tenant, "acme");
        assert!(l.get("task-1", t0 + Duration::from_secs(59)).is_some());
        assert!(l.get("task-1", t0 + Duration::from_secs(60)).is_none());
        assert!(l.get("task-2", t0).is_none());
        // Written again later, it stands from then.
        l.insert("task-1", owner("globex"), t0 + Duration::from_secs(50));
        let later = l.get("task-1", t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(later.tenant, "globex");
        l.remove("task-1");
        assert!(l.get("task-1", t0 + Duration::from_secs(51)).is_none());
    }

    #[test]
    fn old_generations_go_whole_so_memory_follows_the_time_to_live() {
        let ttl = Duration::from_secs(10);
        let l = Ledger::new(ttl, 1_000_000);
        let t0 = Instant::now();
        for i in 0..1000 {
            l.insert(&format!("m-{i}"), owner("acme"), t0);
        }
        // Two time-to-lives later, any write to a shard drops what was there before.
        let t2 = t0 + ttl * 2;
        for i in 0..1000 {
            l.insert(&format!("n-{i}"), owner("acme"), t2);
        }
        assert!(l.get("m-1", t2).is_none());
        assert_eq!(
            l.held(),
            1000 + 1000,
            "the old ones wait in `previous` one more round"
        );
        let t4 = t0 + ttl * 4;
        for i in 0..1000 {
            l.insert(&format!("o-{i}"), owner("acme"), t4);
        }
        assert_eq!(l.held(), 2000, "the first thousand are gone");
        assert!(l.get("o-999", t4).is_some());
    }

    #[test]
    fn capacity_bounds_memory_and_recent_ids_survive() {
        let l = Ledger::new(Duration::from_secs(3600), 3200);
        let t0 = Instant::now();
        for i in 0..100_000 {
            l.insert(&format!("id-{i}"), owner("acme"), t0);
        }
        assert!(l.held() <= 6400, "held {}", l.held());
        // Each shard keeps at least its newest share (200): the newest 1,600 survive.
        for i in (100_000 - 1600)..100_000 {
            assert!(l.get(&format!("id-{i}"), t0).is_some(), "id-{i}");
        }
    }
}
