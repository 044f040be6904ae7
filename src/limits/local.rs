//! The limits in process (request step 1b): every tenant's [`TenantState`] and every shared app's
//! [`ShareState`] behind locks held for microseconds. Used without Redis, and with
//! `on_redis_error = "local"` while Redis fails (then each replica enforces its part of each limit).

use super::state::{ShareState, TenantState};
use super::{Ask, Spent, Usage, Verdict};
use parking_lot::Mutex;
use std::collections::HashMap;

/// In-process limit state.
#[derive(Default)]
pub struct Local {
    tenants: Mutex<HashMap<String, TenantState>>,
    shares: Mutex<HashMap<String, ShareState>>,
}

impl Local {
    /// Decides on `ask` at `now` (ms).
    pub fn admit(&self, ask: &Ask<'_>, now: u64) -> Verdict {
        let share = ask.share.filter(|_| ask.completion);
        if let Some(s) = share
            && !self
                .shares
                .lock()
                .entry(s.app.to_string())
                .or_default()
                .admit(ask.tenant, ask.lease, s.fraction, now)
        {
            return Verdict::Refused {
                kind: super::LimitKind::Share,
                retry_after: 1,
            };
        }
        let verdict = self
            .tenants
            .lock()
            .entry(ask.tenant.to_string())
            .or_default()
            .admit(ask, now);
        if let (Some(s), Verdict::Refused { .. }) = (share, verdict)
            && let Some(app) = self.shares.lock().get_mut(s.app)
        {
            app.release(ask.lease);
        }
        verdict
    }

    /// Ends a lease.
    pub fn release(&self, tenant: &str, lease: &str, share: Option<&str>, spent: Spent, now: u64) {
        if let Some(app) = share
            && let Some(s) = self.shares.lock().get_mut(app)
        {
            s.release(lease);
        }
        if let Some(t) = self.tenants.lock().get_mut(tenant) {
            t.release(lease, spent, now);
        }
    }

    /// What `tenant` uses now.
    pub fn usage(&self, tenant: &str, rpm: Option<u64>, now: u64) -> Usage {
        self.tenants
            .lock()
            .get(tenant)
            .map(|t| t.usage(rpm, now))
            .unwrap_or_default()
    }
}
