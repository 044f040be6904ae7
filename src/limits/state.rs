//! One tenant's limit state and the decisions on it (request step 1, limits), in process: what the
//! gateway enforces without Redis, or with `on_redis_error = "local"` while Redis fails. The Lua
//! scripts in [`super::script`] make the same decisions on Redis. Pure (time is passed in).
//!
//! - requests per minute: GCRA with a burst of the whole minute's quota;
//! - concurrent requests: one lease per completion in flight;
//! - tokens per minute (sliding) and per day: Dify's reported usage, plus what completions in flight
//!   reserved (`max_tokens_per_request`) until they report theirs;
//! - cost per calendar month: Dify's reported cost; refused once it is reached.

use super::window::{MINUTE_MS, Window, day, minute, month, seconds_left, sliding};
use super::{Ask, LimitKind, Remaining, Spent, Verdict};
use std::collections::HashMap;

/// A lease whose release never came is given up after this long (longer than any completion Dify
/// runs: its own limit is 1,200 s).
pub const LOST_AFTER_MS: u64 = 3_600_000;

/// What one tenant has used.
#[derive(Debug, Default, Clone)]
pub struct TenantState {
    /// GCRA's theoretical arrival time, ms.
    tat: f64,
    /// Completions in flight: what each reserved, and when it is given up for lost (a release that
    /// never came).
    leases: HashMap<String, (u64, u64)>,
    /// The sum of the reservations.
    reserved: u64,
    /// `(minute, tokens)` of the last two minutes.
    minutes: [(u64, u64); 2],
    /// `(day, tokens)`.
    today: (u64, u64),
    /// `(yyyymm, cost)`.
    this_month: (u32, f64),
}

impl TenantState {
    fn tokens_this_minute(&self, now: u64) -> (u64, u64) {
        let m = minute(now);
        let of = |want: u64| {
            self.minutes
                .iter()
                .find(|(k, _)| *k == want)
                .map_or(0, |(_, v)| *v)
        };
        (of(m), of(m.wrapping_sub(1)))
    }

    fn tokens_today(&self, now: u64) -> u64 {
        if self.today.0 == day(now) { self.today.1 } else { 0 }
    }

    fn cost_this_month(&self, now: u64) -> f64 {
        if self.this_month.0 == month(now) {
            self.this_month.1
        } else {
            0.0
        }
    }

    /// Drops leases past their deadline, and what they reserved.
    fn purge(&mut self, now: u64) {
        let before = self.leases.len();
        let mut freed = 0;
        self.leases.retain(|_, (reserve, deadline)| {
            let keep = *deadline > now;
            if !keep {
                freed += *reserve;
            }
            keep
        });
        if self.leases.len() != before {
            self.reserved = self.reserved.saturating_sub(freed);
        }
    }

    /// Decides on `ask` at `now` (ms); admitted asks are counted (and completions leased).
    pub fn admit(&mut self, ask: &Ask<'_>, now: u64) -> Verdict {
        self.purge(now);
        let l = ask.limits;
        let mut rem = Remaining::default();
        let refuse = |kind, retry_after| Verdict::Refused { kind, retry_after };
        let mut tat = self.tat;
        if let Some(quota) = l.requests_per_minute {
            let t = MINUTE_MS as f64 / quota as f64;
            let next = tat.max(now as f64) + t;
            let ahead = next - now as f64;
            if ahead > MINUTE_MS as f64 {
                return refuse(
                    LimitKind::Requests,
                    ((ahead - MINUTE_MS as f64) / 1000.0).ceil().max(1.0) as u64,
                );
            }
            rem.requests = Some(((MINUTE_MS as f64 - ahead) / t).floor().max(0.0) as u64);
            tat = next;
        }
        if ask.completion {
            let need = ask.reserve.max(1);
            if let Some(quota) = l.concurrent_requests {
                let held = self.leases.len() as u64;
                if held >= quota {
                    return refuse(LimitKind::Concurrency, 1);
                }
                rem.concurrency = Some(quota - held - 1);
            }
            if let Some(quota) = l.tokens_per_minute {
                let (cur, prev) = self.tokens_this_minute(now);
                let used = sliding(now, cur, prev).saturating_add(self.reserved);
                // A reservation larger than the quota still lets one completion through at a time.
                if used.saturating_add(need.min(quota)) > quota {
                    return refuse(LimitKind::TokensPerMinute, seconds_left(now, Window::Minute));
                }
                rem.tokens_per_minute = Some(quota.saturating_sub(used).saturating_sub(ask.reserve));
            }
            if let Some(quota) = l.tokens_per_day {
                let used = self.tokens_today(now).saturating_add(self.reserved);
                if used.saturating_add(need.min(quota)) > quota {
                    return refuse(LimitKind::TokensPerDay, seconds_left(now, Window::Day));
                }
                rem.tokens_per_day = Some(quota.saturating_sub(used).saturating_sub(ask.reserve));
            }
            if let Some(quota) = l.cost_per_month {
                let used = self.cost_this_month(now);
                if used >= quota {
                    return refuse(LimitKind::CostPerMonth, seconds_left(now, Window::Month));
                }
                rem.cost_per_month = Some(quota - used);
            }
            self.leases.insert(
                ask.lease.to_string(),
                (ask.reserve, now.saturating_add(LOST_AFTER_MS)),
            );
            self.reserved = self.reserved.saturating_add(ask.reserve);
        }
        self.tat = tat;
        Verdict::Admitted(rem)
    }

    /// Ends the lease `lease`: its reservation goes, what it `spent` counts.
    pub fn release(&mut self, lease: &str, spent: Spent, now: u64) {
        if let Some((r, _)) = self.leases.remove(lease) {
            self.reserved = self.reserved.saturating_sub(r);
        }
        if spent.tokens > 0 {
            let m = minute(now);
            let (cur, prev) = self.tokens_this_minute(now);
            self.minutes = [(m, cur.saturating_add(spent.tokens)), (m.wrapping_sub(1), prev)];
            self.today = (day(now), self.tokens_today(now).saturating_add(spent.tokens));
        }
        if spent.cost > 0.0 && spent.cost.is_finite() {
            self.this_month = (month(now), self.cost_this_month(now) + spent.cost);
        }
    }

    /// What is used now in each window (for the usage endpoint).
    pub fn usage(&self, quota_rpm: Option<u64>, now: u64) -> super::Usage {
        let requests = quota_rpm.map_or(0, |q| {
            let t = MINUTE_MS as f64 / q as f64;
            ((self.tat - now as f64).max(0.0) / t).ceil() as u64
        });
        let (cur, prev) = self.tokens_this_minute(now);
        super::Usage {
            requests_per_minute: requests,
            concurrent_requests: self.leases.values().filter(|(_, d)| *d > now).count() as u64,
            tokens_per_minute: sliding(now, cur, prev).saturating_add(self.reserved),
            tokens_per_day: self.tokens_today(now).saturating_add(self.reserved),
            cost_per_month: self.cost_this_month(now),
        }
    }
}

/// The completions of one shared Dify app in flight, by lease, with their tenants.
#[derive(Debug, Default, Clone)]
pub struct ShareState {
    leases: HashMap<String, (String, u64)>,
}

impl ShareState {
    /// Whether `tenant` may start one more completion on the app with share `share` (0–1]: always
    /// while no other tenant has one in flight; else while it holds fewer than `share` of them (at
    /// least one). Admitted: the lease is taken.
    pub fn admit(&mut self, tenant: &str, lease: &str, share: f64, now: u64) -> bool {
        self.leases.retain(|_, (_, deadline)| *deadline > now);
        let total = self.leases.len();
        let mine = self.leases.values().filter(|(t, _)| t == tenant).count();
        if total > mine && mine >= fair_cap(share, total) {
            return false;
        }
        let deadline = now.saturating_add(LOST_AFTER_MS);
        self.leases
            .insert(lease.to_string(), (tenant.to_string(), deadline));
        true
    }

    /// Ends a lease.
    pub fn release(&mut self, lease: &str) {
        self.leases.remove(lease);
    }
}

/// The most completions a tenant with `share` may hold among `total` in flight on a contended app
/// (rounded up, so that tenants holding their shares can all still grow).
pub fn fair_cap(share: f64, total: usize) -> usize {
    ((share * (total + 1) as f64).ceil() as usize).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admit::limits::Limits;

    const T0: u64 = 1_796_083_200_000; // 2026-12-01 00:00:00 UTC

    fn ask<'a>(limits: &'a Limits, completion: bool, reserve: u64, lease: &'a str) -> Ask<'a> {
        Ask {
            tenant: "acme",
            limits,
            completion,
            reserve,
            lease,
            share: None,
        }
    }

    fn admitted(v: &Verdict) -> bool {
        matches!(v, Verdict::Admitted(_))
    }

    #[test]
    fn requests_per_minute_allow_the_quota_then_one_per_interval() {
        let l = Limits {
            requests_per_minute: Some(6),
            ..Limits::default()
        };
        let mut s = TenantState::default();
        for i in 0..6 {
            let v = s.admit(&ask(&l, false, 0, ""), T0);
            assert!(admitted(&v), "request {i}");
        }
        match s.admit(&ask(&l, false, 0, ""), T0) {
            Verdict::Refused { kind, retry_after } => {
                assert_eq!((kind, retry_after), (LimitKind::Requests, 10))
            }
            v => panic!("{v:?}"),
        }
        assert!(
            admitted(&s.admit(&ask(&l, false, 0, ""), T0 + 10_000)),
            "one more after 10 s"
        );
        assert!(!admitted(&s.admit(&ask(&l, false, 0, ""), T0 + 10_000)));
    }

    #[test]
    fn leases_reservations_and_usage_decide_completions() {
        let l = Limits {
            concurrent_requests: Some(2),
            tokens_per_minute: Some(1000),
            tokens_per_day: Some(1500),
            cost_per_month: Some(1.0),
            ..Limits::default()
        };
        let mut s = TenantState::default();
        assert!(admitted(&s.admit(&ask(&l, true, 400, "a"), T0)));
        assert!(admitted(&s.admit(&ask(&l, true, 400, "b"), T0)));
        let third = s.admit(&ask(&l, true, 0, "c"), T0);
        assert!(
            matches!(
                third,
                Verdict::Refused {
                    kind: LimitKind::Concurrency,
                    ..
                }
            ),
            "{third:?}"
        );
        // a reported 100 tokens instead of its 400: room again for a reservation of 400.
        s.release(
            "a",
            Spent {
                tokens: 100,
                cost: 0.4,
            },
            T0 + 1000,
        );
        assert!(admitted(&s.admit(&ask(&l, true, 400, "c"), T0 + 1000)));
        s.release(
            "b",
            Spent {
                tokens: 500,
                cost: 0.7,
            },
            T0 + 2000,
        );
        // 600 used + 400 reserved = the minute's 1000: nothing more this minute.
        let v = s.admit(&ask(&l, true, 1, "d"), T0 + 2000);
        assert!(
            matches!(
                v,
                Verdict::Refused {
                    kind: LimitKind::TokensPerMinute,
                    retry_after: 58
                }
            ),
            "{v:?}"
        );
        // Cost 1.1 of 1.0 spent: refused until the month ends.
        s.release("c", Spent { tokens: 0, cost: 0.0 }, T0 + 120_000);
        let v = s.admit(&ask(&l, true, 0, "e"), T0 + 120_000);
        assert!(
            matches!(
                v,
                Verdict::Refused {
                    kind: LimitKind::CostPerMonth,
                    ..
                }
            ),
            "{v:?}"
        );
        let u = s.usage(None, T0 + 120_000);
        assert_eq!((u.concurrent_requests, u.tokens_per_day), (0, 600));
        assert!((u.cost_per_month - 1.1).abs() < 1e-9);
        // Non-completions are not held back by token or cost limits.
        assert!(admitted(&s.admit(&ask(&l, false, 0, ""), T0 + 120_000)));
    }

    #[test]
    fn a_shared_app_is_shared_only_under_contention() {
        let mut s = ShareState::default();
        for i in 0..5 {
            assert!(
                s.admit("acme", &format!("a{i}"), 0.5, T0),
                "alone, acme takes what it wants"
            );
        }
        assert!(s.admit("globex", "g0", 0.5, T0), "globex gets in");
        assert!(
            !s.admit("acme", "a5", 0.5, T0),
            "acme holds 5 of 6, more than half"
        );
        for i in 0..3 {
            s.release(&format!("a{i}"));
        }
        assert!(!s.admit("acme", "a6", 0.5, T0), "3 of 4 would be more than half");
        s.release("a3");
        assert!(s.admit("acme", "a6", 0.5, T0), "2 of 3: its share, rounded up");
        // Two tenants at their shares both grow.
        assert!(
            s.admit("globex", "g1", 0.5, T0)
                && s.admit("acme", "a7", 0.5, T0)
                && s.admit("globex", "g2", 0.5, T0)
        );
        assert_eq!(fair_cap(0.1, 0), 1);
    }
}
