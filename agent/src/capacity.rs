//! How much of this server is free: the 1-minute load average against the
//! number of CPUs, as a share of the configured weight.

use std::num::NonZeroUsize;

/// The free share, in percent: `100 * (1 - load1 / cpus)`, rounded, never
/// below `floor` (a busy server is weighted down, not drained) nor above
/// 100 (an idle one asks for its configured weight, no more). A load that
/// is not a number counts as saturation.
pub fn free_percent(load1: f64, cpus: NonZeroUsize, floor: u32) -> u32 {
    let floor = floor.min(100);
    let free = 100.0 * (1.0 - load1 / cpus.get() as f64);
    if free.is_nan() {
        return floor;
    }
    // In 0..=100 after the clamp, so the cast is exact.
    (free.round().clamp(0.0, 100.0) as u32).max(floor)
}

/// The 1-minute load from the text of /proc/loadavg (`0.52 0.58 0.59 1/467 12345`).
pub fn load1(loadavg: &str) -> Result<f64, String> {
    let first = loadavg.split_whitespace().next().unwrap_or_default();
    match first.parse::<f64>() {
        Ok(load) if load.is_finite() && load >= 0.0 => Ok(load),
        _ => Err(format!("/proc/loadavg starts with `{first}`, not a load")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
    }

    #[test]
    fn free_share_by_load() {
        // (1-minute load, CPUs, floor, share sent)
        let cases = [
            (0.0, 4, 10, 100), // idle: all of it
            (1.0, 4, 10, 75),
            (2.0, 4, 10, 50),
            (0.5, 1, 0, 50),
            (0.333, 1, 0, 67), // rounded
            (3.8, 4, 10, 10),  // 5% free: the floor
            (4.0, 4, 10, 10),  // load = cpus: the floor
            (40.0, 4, 10, 10), // overloaded: the floor, not less
            (40.0, 4, 0, 0),   // floor 0: drained by weight
            (f64::INFINITY, 4, 10, 10),
            (f64::NAN, 4, 10, 10),
        ];
        for (load, n, floor, share) in cases {
            assert_eq!(free_percent(load, cpus(n), floor), share, "{load} on {n}");
        }
    }

    #[test]
    fn the_floor_stops_at_100() {
        assert_eq!(free_percent(3.0, cpus(4), 100), 100);
        assert_eq!(free_percent(3.0, cpus(4), 250), 100);
    }

    #[test]
    fn reads_proc_loadavg() {
        assert_eq!(load1("0.52 0.58 0.59 1/467 12345\n"), Ok(0.52));
        assert_eq!(load1("12.00 1 1 1/1 1"), Ok(12.0));
        for bad in ["", "\n", "abc 1 1", "-1 0 0", "nan 0 0", "inf 0 0"] {
            assert!(load1(bad).is_err(), "{bad:?}");
        }
    }
}
