//! The `Date` field of the answers the proxy writes itself (RFC 9110 6.6.1),
//! in IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. Formatted at most once a
//! second per thread (a worker is a thread), with no allocation.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// An IMF-fixdate, always 29 bytes.
pub type HttpDate = [u8; 29];

/// The date of `unix_seconds` (seconds since 1970-01-01 00:00:00 UTC).
pub fn imf_fixdate(unix_seconds: u64) -> HttpDate {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put_two(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    // Four digits until the year 10000; later years are clamped, not wrapped.
    let year = year.min(9999);
    put_two(&mut out[12..14], year / 100);
    put_two(&mut out[14..16], year % 100);
    put_two(&mut out[17..19], second_of_day / 3600);
    put_two(&mut out[20..22], second_of_day / 60 % 60);
    put_two(&mut out[23..25], second_of_day % 60);
    out
}

/// The current date, formatted again only when the second has changed.
pub fn now() -> HttpDate {
    thread_local! {
        static CACHED: Cell<(u64, HttpDate)> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with(|cached| {
        let (at, date) = cached.get();
        if at == seconds {
            return date;
        }
        let date = imf_fixdate(seconds);
        cached.set((seconds, date));
        date
    })
}

fn put_two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1-12) and day (1-31) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seconds: u64) -> String {
        String::from_utf8(imf_fixdate(seconds).to_vec()).expect("ascii")
    }

    #[test]
    fn known_dates() {
        assert_eq!(text(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(text(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(text(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(text(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(text(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn every_day_of_a_leap_cycle_reads_back() {
        // Each day's date is one day after the previous one's.
        let mut previous = text(0);
        for day in 1..(4 * 366) {
            let now = text(day * 86_400 + 3_723);
            assert!(now.ends_with("01:02:03 GMT"), "{now}");
            assert_ne!(now[5..16], previous[5..16], "day {day}");
            previous = now;
        }
    }

    #[test]
    fn now_is_a_date_of_this_century() {
        let date = String::from_utf8(now().to_vec()).expect("ascii");
        assert!(date.ends_with(" GMT") && date[12..14] == *"20", "{date}");
    }
}
