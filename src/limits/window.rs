//! The time windows limits count in (request step 1, limits): the UTC minute, day and calendar
//! month of a moment, and how long until each ends. The Lua scripts compute the same from Redis's
//! clock. Pure.

/// Milliseconds in a minute and in a day.
pub const MINUTE_MS: u64 = 60_000;
/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// The UTC minute number of `now_ms`.
pub fn minute(now_ms: u64) -> u64 {
    now_ms / MINUTE_MS
}

/// The UTC day number of `now_ms`.
pub fn day(now_ms: u64) -> u64 {
    now_ms / DAY_MS
}

/// `(year, month, day)` of a day number (days since 1970-01-01), proleptic Gregorian.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The day number of `(year, month, day)`.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar month of `now_ms` as `yyyymm`.
pub fn month(now_ms: u64) -> u32 {
    let (y, m, _) = civil(day(now_ms) as i64);
    (y * 100) as u32 + m
}

/// Whole seconds (at least 1) until the window that `now_ms` is in ends.
pub fn seconds_left(now_ms: u64, window: Window) -> u64 {
    let end = match window {
        Window::Minute => (minute(now_ms) + 1) * MINUTE_MS,
        Window::Day => (day(now_ms) + 1) * DAY_MS,
        Window::Month => {
            let (y, m, _) = civil(day(now_ms) as i64);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(ny, nm, 1).max(0) as u64 * DAY_MS
        }
    };
    end.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// A window a limit counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The UTC minute (sliding, for tokens per minute: the last minute's count weighs in).
    Minute,
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

/// Tokens of the sliding minute: this minute's count plus the previous minute's, weighted by how
/// much of it still lies within the last 60 s.
pub fn sliding(now_ms: u64, current: u64, previous: u64) -> u64 {
    let into = (now_ms % MINUTE_MS) as f64 / MINUTE_MS as f64;
    current + (previous as f64 * (1.0 - into)).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_and_months_end_where_they_should() {
        for d in [-1_000_000, -1, 0, 59, 60, 365, 11_016, 20_454, 2_932_896] {
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{y}-{m}-{dd}");
        }
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_512), (2026, 2, 28));
        // 2026-11-30 22:00 UTC: the day and the month end in 2 h.
        let t = days_from_civil(2026, 11, 30) as u64 * DAY_MS + 22 * 3_600_000;
        assert_eq!(month(t), 202_611);
        assert_eq!(seconds_left(t, Window::Month), 2 * 3600);
        assert_eq!(seconds_left(t, Window::Day), 2 * 3600);
        assert_eq!(seconds_left(t + 30_500, Window::Minute), 30);
        assert_eq!(sliding(t + 15_000, 10, 100), 10 + 75);
    }
}
