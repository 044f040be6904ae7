//! The limits on Redis (request step 1b, and the lease renewal beside it): Lua scripts that decide
//! on every limit of a tenant in one atomic call on Redis's own clock (`TIME`), with the same rules
//! as [`super::state`]. Every key of a tenant shares one hash tag (`dgw:l:{tenant}:...`), and every
//! key of a shared app another (`dgw:s:{app}:...`), so the scripts run on Redis Cluster too.

use super::{Ask, LimitKind, Remaining, Spent, Usage, Verdict};
use crate::redis::RedisTier;
use redis::{Script, Value};
use std::time::Duration;

/// Helpers every script starts with: the clock, calendar months, and dropping expired leases (and
/// what they reserved).
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end
local function days_from_civil(y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5)
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
local function month_of(now)
  local y, m = civil(math.floor(now / 86400000))
  return y * 100 + m, y, m
end
local function secs_left(now, window_end)
  return math.max(1, math.ceil((window_end - now) / 1000))
end
local function purge(p, now)
  local gone = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now)
  local total = 0
  for _, id in ipairs(gone) do
    total = total + tonumber(redis.call('HGET', p .. 'resv', id) or '0')
    redis.call('HDEL', p .. 'resv', id)
  end
  redis.call('ZREMRANGEBYSCORE', p .. 'leases', '-inf', now)
  if total > 0 then redis.call('DECRBY', p .. 'resv_total', total) end
end
local function keep(p, ttl)
  for _, k in ipairs({'leases', 'resv', 'resv_total'}) do redis.call('PEXPIRE', p .. k, ttl * 2) end
end
";

/// Decides on one request. KEYS[1] = the tenant's prefix; ARGV = requests_per_minute,
/// concurrent_requests, tokens_per_minute, tokens_per_day (0 = none), cost_per_month ("0" = none),
/// completion (1/0), lease id, reserve, lease ttl (ms). Returns {admitted, refused kind (1-5),
/// retry after (s), then what remains of each limit (-1 = none; cost as a string)}.
const ADMIT: &str = r"
local p = KEYS[1]
local rpm, conc, tpm, tpd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local completion, lease, reserve, ttl = ARGV[6] == '1', ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local now = now_ms()
purge(p, now)
local rem = {-1, -1, -1, -1}
local cost_rem = '-1'
local tat = nil
if rpm > 0 then
  local t = 60000 / rpm
  local next = math.max(tonumber(redis.call('GET', p .. 'rpm') or '0'), now) + t
  if next - now > 60000 then return {0, 1, math.max(1, math.ceil((next - now - 60000) / 1000))} end
  rem[1] = math.floor((60000 - (next - now)) / t)
  tat = next
end
if completion then
  local need = math.max(reserve, 1)
  local reserved = tonumber(redis.call('GET', p .. 'resv_total') or '0')
  if conc > 0 then
    local held = redis.call('ZCARD', p .. 'leases')
    if held >= conc then return {0, 2, 1} end
    rem[2] = conc - held - 1
  end
  if tpm > 0 then
    local m = math.floor(now / 60000)
    local cur = tonumber(redis.call('GET', p .. 'tpm:' .. m) or '0')
    local prev = tonumber(redis.call('GET', p .. 'tpm:' .. (m - 1)) or '0')
    local used = cur + math.floor(prev * (1 - (now - m * 60000) / 60000)) + reserved
    if used + math.min(need, tpm) > tpm then return {0, 3, secs_left(now, (m + 1) * 60000)} end
    rem[3] = math.max(0, tpm - used - reserve)
  end
  if tpd > 0 then
    local d = math.floor(now / 86400000)
    local used = tonumber(redis.call('GET', p .. 'tpd:' .. d) or '0') + reserved
    if used + math.min(need, tpd) > tpd then return {0, 4, secs_left(now, (d + 1) * 86400000)} end
    rem[4] = math.max(0, tpd - used - reserve)
  end
  if cost > 0 then
    local key, y, m = month_of(now)
    local used = tonumber(redis.call('GET', p .. 'cost:' .. key) or '0')
    if used >= cost then
      if m == 12 then y, m = y + 1, 1 else m = m + 1 end
      return {0, 5, secs_left(now, days_from_civil(y, m) * 86400000)}
    end
    cost_rem = tostring(cost - used)
  end
  redis.call('ZADD', p .. 'leases', now + ttl, lease)
  if reserve > 0 then
    redis.call('HSET', p .. 'resv', lease, reserve)
    redis.call('INCRBY', p .. 'resv_total', reserve)
  end
  keep(p, ttl)
end
if tat then redis.call('SET', p .. 'rpm', tat, 'PX', 61000) end
return {1, 0, 0, rem[1], rem[2], rem[3], rem[4], cost_rem}
";

/// Ends a lease and counts what the completion spent, once (a retried release counts nothing).
/// KEYS[1] = prefix; ARGV = lease id, tokens, cost (a decimal string).
const RELEASE: &str = r"
local p = KEYS[1]
local lease, tokens, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
-- Once per lease, however often a release is retried.
if not redis.call('SET', p .. 'done:' .. lease, '1', 'NX', 'PX', 3600000) then return 0 end
local r = tonumber(redis.call('HGET', p .. 'resv', lease) or '0')
redis.call('ZREM', p .. 'leases', lease)
if r > 0 then
  redis.call('HDEL', p .. 'resv', lease)
  redis.call('DECRBY', p .. 'resv_total', r)
end
if tokens > 0 then
  local m = math.floor(now / 60000)
  redis.call('INCRBY', p .. 'tpm:' .. m, tokens)
  redis.call('PEXPIRE', p .. 'tpm:' .. m, 130000)
  local d = math.floor(now / 86400000)
  redis.call('INCRBY', p .. 'tpd:' .. d, tokens)
  redis.call('EXPIRE', p .. 'tpd:' .. d, 2 * 86400)
end
if cost > 0 then
  local key = month_of(now)
  redis.call('INCRBYFLOAT', p .. 'cost:' .. key, ARGV[3])
  redis.call('EXPIRE', p .. 'cost:' .. key, 40 * 86400)
end
return 1
";

/// Keeps leases alive. KEYS[1] = prefix; ARGV = ttl (ms), lease ids.
const RENEW: &str = r"
local p = KEYS[1]
local ttl = tonumber(ARGV[1])
local now = now_ms()
for i = 2, #ARGV do redis.call('ZADD', p .. 'leases', 'XX', now + ttl, ARGV[i]) end
keep(p, ttl)
return 1
";

/// What a tenant uses now. KEYS[1] = prefix; ARGV = requests_per_minute (0 = none). Returns
/// {requests, leases, tokens this minute, tokens today, cost this month (string)}.
const USAGE: &str = r"
local p = KEYS[1]
local rpm = tonumber(ARGV[1])
local now = now_ms()
purge(p, now)
local requests = 0
if rpm > 0 then
  local tat = tonumber(redis.call('GET', p .. 'rpm') or '0')
  requests = math.max(0, math.ceil((tat - now) / (60000 / rpm)))
end
local reserved = tonumber(redis.call('GET', p .. 'resv_total') or '0')
local m = math.floor(now / 60000)
local cur = tonumber(redis.call('GET', p .. 'tpm:' .. m) or '0')
local prev = tonumber(redis.call('GET', p .. 'tpm:' .. (m - 1)) or '0')
local tpm = cur + math.floor(prev * (1 - (now - m * 60000) / 60000)) + reserved
local tpd = tonumber(redis.call('GET', p .. 'tpd:' .. math.floor(now / 86400000)) or '0') + reserved
local cost = redis.call('GET', p .. 'cost:' .. month_of(now)) or '0'
return {requests, redis.call('ZCARD', p .. 'leases'), tpm, tpd, cost}
";

/// A tenant's share of a shared app. KEYS[1] = the app's prefix; ARGV = tenant, lease, share,
/// ttl (ms). Returns 1 (taken) or 0.
const SHARE: &str = r"
local p = KEYS[1]
local tenant, lease, share, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', p .. 'leases', '-inf', now)
local members = redis.call('ZRANGE', p .. 'leases', 0, -1)
local mine = 0
local tag = tenant .. '\0'
for _, m in ipairs(members) do
  if string.sub(m, 1, #tag) == tag then mine = mine + 1 end
end
if #members > mine and mine >= math.max(1, math.ceil(share * (#members + 1))) then return 0 end
redis.call('ZADD', p .. 'leases', now + ttl, tag .. lease)
redis.call('PEXPIRE', p .. 'leases', ttl * 2)
return 1
";

/// Ends (ARGV[1] = '-') or renews (ARGV[1] = ttl) share leases `tenant\0lease` (ARGV[2..]).
const SHARE_END: &str = r"
local p = KEYS[1]
local now = now_ms()
for i = 2, #ARGV do
  if ARGV[1] == '-' then redis.call('ZREM', p .. 'leases', ARGV[i])
  else redis.call('ZADD', p .. 'leases', 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
end
if ARGV[1] ~= '-' then redis.call('PEXPIRE', p .. 'leases', tonumber(ARGV[1]) * 2) end
return 1
";

/// The scripts, loaded once.
pub struct Scripts {
    admit: Script,
    release: Script,
    renew: Script,
    usage: Script,
    share: Script,
    share_end: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        let with = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            admit: with(ADMIT),
            release: with(RELEASE),
            renew: with(RENEW),
            usage: with(USAGE),
            share: with(SHARE),
            share_end: with(SHARE_END),
        }
    }
}

/// The key prefix of a tenant's limits (a hash tag of its own; characters that could break the tag
/// are escaped).
pub fn tenant_prefix(tenant: &str) -> String {
    let mut tag = String::with_capacity(tenant.len());
    for c in tenant.chars() {
        if c.is_ascii_alphanumeric() || "._-".contains(c) {
            tag.push(c);
        } else {
            tag.push_str(&format!("%{:02X}", u32::from(c)));
        }
    }
    format!("dgw:l:{{{tag}}}:")
}

/// The key prefix of a shared app's leases.
pub fn share_prefix(app: &str) -> String {
    format!("dgw:s:{{{app}}}:")
}

/// The member a tenant's share lease is kept under.
pub fn share_member(tenant: &str, lease: &str) -> String {
    format!("{tenant}\0{lease}")
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn kind_of(i: i64) -> LimitKind {
    match i {
        1 => LimitKind::Requests,
        2 => LimitKind::Concurrency,
        3 => LimitKind::TokensPerMinute,
        4 => LimitKind::TokensPerDay,
        _ => LimitKind::CostPerMonth,
    }
}

/// Reads the admit script's answer.
fn verdict(v: &Value) -> Option<Verdict> {
    let Value::Array(items) = v else { return None };
    let at = |i: usize| items.get(i).and_then(int);
    if at(0)? == 0 {
        return Some(Verdict::Refused {
            kind: kind_of(at(1)?),
            retry_after: at(2)?.max(1) as u64,
        });
    }
    let some = |i: usize| at(i).filter(|n| *n >= 0).map(|n| n as u64);
    let cost = items.get(7).and_then(float).filter(|c| *c >= 0.0);
    Some(Verdict::Admitted(Remaining {
        requests: some(3),
        concurrency: some(4),
        tokens_per_minute: some(5),
        tokens_per_day: some(6),
        cost_per_month: cost,
    }))
}

/// The limits on one Redis.
pub struct RedisLimits<'a> {
    /// The connection, its timeout and breaker.
    pub redis: &'a RedisTier,
    /// The scripts.
    pub scripts: &'a Scripts,
    /// Lease lifetime without renewal.
    pub ttl: Duration,
}

impl RedisLimits<'_> {
    /// Decides on `ask`; `None` when Redis did not answer in time.
    pub async fn admit(&self, ask: &Ask<'_>) -> Option<Verdict> {
        if let Some(share) = ask.share
            && ask.completion
        {
            let args = vec![
                ask.tenant.to_string(),
                ask.lease.to_string(),
                share.fraction.to_string(),
                self.ttl.as_millis().to_string(),
            ];
            let taken = self
                .redis
                .eval("limit", &self.scripts.share, &share_prefix(share.app), args)
                .await?;
            if int(&taken)? == 0 {
                return Some(Verdict::Refused {
                    kind: LimitKind::Share,
                    retry_after: 1,
                });
            }
        }
        let l = ask.limits;
        let n = |v: Option<u64>| v.unwrap_or(0).to_string();
        let args = vec![
            n(l.requests_per_minute),
            n(l.concurrent_requests),
            n(l.tokens_per_minute),
            n(l.tokens_per_day),
            l.cost_per_month.unwrap_or(0.0).to_string(),
            if ask.completion { "1" } else { "0" }.to_string(),
            ask.lease.to_string(),
            ask.reserve.to_string(),
            self.ttl.as_millis().to_string(),
        ];
        let answer = self
            .redis
            .eval("limit", &self.scripts.admit, &tenant_prefix(ask.tenant), args)
            .await;
        let decided = answer.as_ref().and_then(verdict);
        if let Some(share) = ask.share.filter(|_| ask.completion)
            && !matches!(decided, Some(Verdict::Admitted(_)))
        {
            // Refused (or unknown) after the share was taken: give it back.
            self.end_shares(share.app, "-", vec![share_member(ask.tenant, ask.lease)])
                .await;
        }
        decided
    }

    /// Ends a completion's lease and counts what it spent; false when Redis did not answer.
    pub async fn release(&self, tenant: &str, lease: &str, share: Option<&str>, spent: Spent) -> bool {
        if let Some(app) = share {
            self.end_shares(app, "-", vec![share_member(tenant, lease)]).await;
        }
        let args = vec![
            lease.to_string(),
            spent.tokens.to_string(),
            spent.cost.to_string(),
        ];
        self.redis
            .eval("limit", &self.scripts.release, &tenant_prefix(tenant), args)
            .await
            .is_some()
    }

    /// Renews a tenant's leases.
    pub async fn renew(&self, tenant: &str, leases: Vec<String>) -> bool {
        let mut args = vec![self.ttl.as_millis().to_string()];
        args.extend(leases);
        self.redis
            .eval("limit", &self.scripts.renew, &tenant_prefix(tenant), args)
            .await
            .is_some()
    }

    /// Ends (`how` = `-`) or renews (`how` = ttl ms) share leases of one app.
    pub async fn end_shares(&self, app: &str, how: &str, members: Vec<String>) -> bool {
        let mut args = vec![how.to_string()];
        args.extend(members);
        self.redis
            .eval("limit", &self.scripts.share_end, &share_prefix(app), args)
            .await
            .is_some()
    }

    /// What `tenant` uses now.
    pub async fn usage(&self, tenant: &str, rpm: Option<u64>) -> Option<Usage> {
        let args = vec![rpm.unwrap_or(0).to_string()];
        let v = self
            .redis
            .eval("limit", &self.scripts.usage, &tenant_prefix(tenant), args)
            .await?;
        let Value::Array(items) = v else { return None };
        let at = |i: usize| items.get(i).and_then(int).map(|n| n.max(0) as u64);
        Some(Usage {
            requests_per_minute: at(0)?,
            concurrent_requests: at(1)?,
            tokens_per_minute: at(2)?,
            tokens_per_day: at(3)?,
            cost_per_month: items.get(4).and_then(float)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_one_hash_tag_per_tenant() {
        assert_eq!(tenant_prefix("acme"), "dgw:l:{acme}:");
        assert_eq!(tenant_prefix("a}b{c"), "dgw:l:{a%7Db%7Bc}:");
        assert_eq!(share_prefix("0a1b"), "dgw:s:{0a1b}:");
        let admitted = Value::Array(vec![
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
            Value::Int(5),
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(-1),
            Value::BulkString(b"0.25".to_vec()),
        ]);
        let Some(Verdict::Admitted(r)) = verdict(&admitted) else {
            panic!()
        };
        assert_eq!(
            (r.requests, r.concurrency, r.cost_per_month),
            (Some(5), None, Some(0.25))
        );
        let refused = Value::Array(vec![Value::Int(0), Value::Int(3), Value::Int(42)]);
        assert_eq!(
            verdict(&refused),
            Some(Verdict::Refused {
                kind: LimitKind::TokensPerMinute,
                retry_after: 42
            })
        );
    }
}
