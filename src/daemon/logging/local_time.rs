//! The zone of the access log's local time (`$time_local` of the combined
//! format, as nginx writes it): the system's, from `TZ` or else
//! `/etc/localtime`, read once when the log starts, never by a worker.
//! A line's offset is then found in memory, daylight saving included.

use std::time::{SystemTime, UNIX_EPOCH};

/// A time zone, or UTC.
#[derive(Debug, Default)]
pub struct LocalZone(Option<tz::TimeZone>);

impl LocalZone {
    /// UTC: the zone of a log with no system zone.
    pub fn utc() -> Self {
        Self(None)
    }

    /// The system's zone: `TZ` (a zone name such as `Europe/Paris`, or a
    /// POSIX rule such as `CET-1CEST,M3.5.0,M10.5.0/3`), else
    /// `/etc/localtime`. `Err`: why it could not be read (UTC is then the
    /// caller's fallback).
    pub fn system() -> Result<Self, String> {
        // As the C library reads it: `TZ` when set and not empty.
        match std::env::var("TZ") {
            Ok(tz) if !tz.is_empty() => tz::TimeZone::from_posix_tz(&tz)
                .map(|zone| Self(Some(zone)))
                .map_err(|e| format!("TZ={tz}: {e}")),
            _ => tz::TimeZone::local()
                .map(|zone| Self(Some(zone)))
                .map_err(|e| format!("/etc/localtime: {e}")),
        }
    }

    /// A zone from a POSIX rule or a zone name, as `TZ` would give it.
    #[cfg(test)]
    pub fn from_tz(rule: &str) -> Self {
        Self(Some(tz::TimeZone::from_posix_tz(rule).expect("a valid TZ")))
    }

    /// Seconds east of UTC at `at`.
    pub fn offset_at(&self, at: SystemTime) -> i32 {
        let Some(zone) = &self.0 else { return 0 };
        let unix = match at.duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        };
        zone.find_local_time_type(unix)
            .map_or(0, |local| local.ut_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn the_offset_follows_daylight_saving() {
        let paris = LocalZone::from_tz("CET-1CEST,M3.5.0,M10.5.0/3");
        // 2026-12-07 (winter) and 2026-07-01 (summer), UTC noon.
        assert_eq!(paris.offset_at(at(1_796_644_800)), 3600);
        assert_eq!(paris.offset_at(at(1_782_907_200)), 7200);
        let kolkata = LocalZone::from_tz("IST-5:30");
        assert_eq!(kolkata.offset_at(at(1_796_644_800)), 19_800);
        let new_york = LocalZone::from_tz("EST5EDT,M3.2.0,M11.1.0");
        assert_eq!(new_york.offset_at(at(1_796_644_800)), -18_000);
        assert_eq!(LocalZone::utc().offset_at(at(1_796_644_800)), 0);
    }
}
