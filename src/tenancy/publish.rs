//! Publishes a new [`Snapshot`] whenever one of its two sources changes (beside the request flow):
//! the configuration file (start-up, SIGHUP) and the store (every change any replica makes). Each
//! rebuild merges both ([`build`]) and swaps the snapshot whole; requests in flight keep theirs.

use super::build::{Declared, build};
use crate::admit::snapshot::{SharedSnapshot, Snapshot};
use crate::store::model::StoreData;
use crate::store::{Store, StoreError};
use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use std::sync::Arc;

/// Called with each snapshot before it is published (metric series of new tenants' apps).
pub type OnPublish = Box<dyn Fn(&Snapshot) + Send + Sync>;

/// The two sources of the snapshot and the snapshot itself.
pub struct Tenancy {
    declared: ArcSwap<Declared>,
    stored: ArcSwapOption<StoreData>,
    shared: Arc<SharedSnapshot>,
    on_publish: OnPublish,
    /// Rebuilds one at a time; holds the warnings of the last one (each is logged once).
    rebuilding: Mutex<Vec<String>>,
}

impl Tenancy {
    /// Publishes the first snapshot from the file and, when it could be read, the store.
    pub fn new(declared: Declared, stored: Option<StoreData>, on_publish: OnPublish) -> Self {
        let built = build(&declared, stored.as_ref());
        let t = Self {
            declared: ArcSwap::from_pointee(declared),
            stored: ArcSwapOption::from(stored.map(Arc::new)),
            shared: Arc::new(SharedSnapshot::new(Snapshot::empty())),
            on_publish,
            rebuilding: Mutex::new(Vec::new()),
        };
        t.publish(built.snapshot, built.warnings, &mut t.rebuilding.lock());
        t
    }

    /// The snapshot admission loads.
    pub fn shared(&self) -> &Arc<SharedSnapshot> {
        &self.shared
    }

    /// The snapshot in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.shared.load()
    }

    /// What the store held at its last read.
    pub fn stored(&self) -> Option<Arc<StoreData>> {
        self.stored.load_full()
    }

    /// Whether the store has been read at least once.
    pub fn has_store_data(&self) -> bool {
        self.stored.load().is_some()
    }

    /// A reloaded configuration file replaces what it declares.
    pub fn set_declared(&self, declared: Declared) {
        let mut last = self.rebuilding.lock();
        self.declared.store(Arc::new(declared));
        self.rebuild(&mut last);
    }

    /// A fresh read of the store; one older than what is in force (a slow read overtaken by a
    /// newer one) is dropped. Returns whether it was applied.
    pub fn set_stored(&self, data: StoreData) -> bool {
        let mut last = self.rebuilding.lock();
        if let Some(cur) = self.stored.load().as_ref()
            && (cur.version > data.version || **cur == data)
        {
            return false;
        }
        self.stored.store(Some(Arc::new(data)));
        self.rebuild(&mut last);
        true
    }

    /// Reads the store and publishes what it holds; `Ok(true)` when that changed the snapshot.
    pub async fn refresh(&self, store: &Store) -> Result<bool, StoreError> {
        let data = store.load().await?;
        Ok(self.set_stored(data))
    }

    fn rebuild(&self, last: &mut Vec<String>) {
        let stored = self.stored.load_full();
        let built = build(&self.declared.load(), stored.as_deref());
        self.publish(built.snapshot, built.warnings, last);
    }

    fn publish(&self, snap: Snapshot, warnings: Vec<String>, last: &mut Vec<String>) {
        (self.on_publish)(&snap);
        for w in warnings.iter().filter(|w| !last.contains(w)) {
            tracing::warn!(message = "Tenant data needs attention.", warning = %w);
        }
        *last = warnings;
        self.shared.store(snap);
    }
}
