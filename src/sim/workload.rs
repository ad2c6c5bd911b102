//! Seeded synthetic request streams: Zipf popularity over files whose sizes are
//! heavy-tailed (lognormal body, Pareto tail), as measured for web servers
//! (Barford & Crovella, "Generating representative Web workloads", 1998).
//!
//! The same spec gives the same [`Workload`] on every machine: the generator is
//! our own integer PRNG, and floating point only turns its output into sizes
//! and ranks (a last-ulp difference of a platform's `ln`/`exp`/`powf` could
//! only move a value that falls exactly on a boundary).

use super::{Request, Workload};

/// Parameters of a synthetic stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Seed of every random choice; the same spec gives the same stream.
    pub seed: u64,
    /// Distinct files.
    pub files: u32,
    /// Requests in the stream.
    pub requests: usize,
    /// Zipf exponent: rank `r` is requested with probability ∝ `1 / r^alpha`.
    pub alpha: f64,
    /// Median of the lognormal body of file sizes, in bytes.
    pub size_median: f64,
    /// Sigma of the lognormal body (of the natural log of sizes).
    pub size_sigma: f64,
    /// Share of files whose size comes from the Pareto tail instead.
    pub tail_fraction: f64,
    /// Pareto scale: the smallest tail size, in bytes.
    pub tail_min: f64,
    /// Pareto shape: the smaller, the heavier the tail.
    pub tail_shape: f64,
    /// Cap on a file's size, in bytes.
    pub max_size: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            files: 20_000,
            requests: 200_000,
            alpha: 0.8,
            size_median: 8_000.0,
            size_sigma: 1.0,
            tail_fraction: 0.07,
            tail_min: 100_000.0,
            tail_shape: 1.2,
            max_size: 20 << 20,
        }
    }
}

/// The stream of `spec`: file `i` has path `/f/{i}.html` and a size drawn once;
/// each request picks a file by Zipf popularity and sends the whole file.
///
/// Which file gets which popularity rank is a seeded shuffle, so popularity is
/// not correlated with the file index. Sizes, ranks and picks use separate
/// streams of the seed: a longer stream starts with the requests of a shorter
/// one over the same files. With no files there is no request.
pub fn synthetic(spec: &SyntheticSpec) -> Workload {
    let paths = (0..spec.files).map(|i| format!("/f/{i}.html")).collect();
    let sizes = file_sizes(spec, &mut SplitMix64::new(substream(spec.seed, 1)));
    let file_of_rank = shuffled(spec.files, &mut SplitMix64::new(substream(spec.seed, 2)));
    let zipf = Zipf::new(spec.files, spec.alpha);
    let mut picks = SplitMix64::new(substream(spec.seed, 3));
    let requests = if spec.files == 0 {
        Vec::new()
    } else {
        (0..spec.requests)
            .map(|_| {
                let file = file_of_rank[zipf.sample(&mut picks)];
                Request {
                    file,
                    size: sizes[file as usize],
                }
            })
            .collect()
    };
    Workload { paths, requests }
}

/// One size per file: Pareto for a `tail_fraction` of files, lognormal for the
/// rest; at least one byte, at most `max_size`.
fn file_sizes(spec: &SyntheticSpec, rng: &mut SplitMix64) -> Vec<u64> {
    (0..spec.files)
        .map(|_| {
            let bytes = if rng.unit() < spec.tail_fraction {
                // Inverse CDF of Pareto: `tail_min / U^(1/shape)`, U in (0, 1].
                spec.tail_min / rng.open_unit().powf(1.0 / spec.tail_shape)
            } else {
                spec.size_median * (spec.size_sigma * rng.normal()).exp()
            };
            // `as` saturates (NaN gives 0), so odd specs still give 1..=max_size.
            (bytes.round() as u64).clamp(1, spec.max_size.max(1))
        })
        .collect()
}

/// A Fisher–Yates permutation of `0..n`.
fn shuffled(n: u32, rng: &mut SplitMix64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// Zipf ranks by inverse CDF: a cumulative table and a binary search.
struct Zipf {
    /// `cumulative[r]` is the sum of `1 / (k + 1)^alpha` for `k <= r`.
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(ranks: u32, alpha: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=ranks)
            .map(|rank| {
                total += 1.0 / f64::from(rank).powf(alpha);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// A rank, 0-based (0 is the most popular); the table must not be empty.
    fn sample(&self, rng: &mut SplitMix64) -> usize {
        let total = self.cumulative[self.cumulative.len() - 1];
        let target = rng.unit() * total;
        let rank = self.cumulative.partition_point(|&c| c <= target);
        // Rounding can leave `target` at `total`; that is the last rank.
        rank.min(self.cumulative.len() - 1)
    }
}

/// The seed of independent stream `k` of `seed`.
fn substream(seed: u64, k: u64) -> u64 {
    SplitMix64::new(seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough to
/// drive a simulation; fixed here so that streams never change under us.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), on a grid of 2^-53.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the log of or divide by.
    fn open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (Lemire's method).
    fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(n);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }

    /// Standard normal, by Box–Muller (one of the pair; simplicity over speed).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * self.open_unit().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            seed,
            files: 2_000,
            requests: 20_000,
            ..SyntheticSpec::default()
        }
    }

    /// The size of each file of `spec`, as `synthetic` draws them.
    fn sizes_of(spec: &SyntheticSpec) -> Vec<u64> {
        file_sizes(spec, &mut SplitMix64::new(substream(spec.seed, 1)))
    }

    #[test]
    fn same_seed_gives_the_same_workload() {
        assert_eq!(synthetic(&small(7)), synthetic(&small(7)));
    }

    #[test]
    fn different_seeds_give_different_workloads() {
        let (a, b) = (synthetic(&small(1)), synthetic(&small(2)));
        assert_eq!(a.paths, b.paths);
        assert_ne!(a.requests, b.requests);
        assert_ne!(sizes_of(&small(1)), sizes_of(&small(2)));
    }

    #[test]
    fn the_stream_is_pinned_across_machines_and_releases() {
        // Guards determinism: a change here changes every published result.
        let mut rng = SplitMix64::new(1);
        assert_eq!(rng.next_u64(), 0x910A_2DEC_8902_5CC1);
        let w = synthetic(&small(1));
        let head: Vec<(u32, u64)> = w.requests[..4].iter().map(|r| (r.file, r.size)).collect();
        assert_eq!(head, PINNED_HEAD);
    }
    const PINNED_HEAD: [(u32, u64); 4] = [(1187, 4675), (1806, 44712), (1661, 19727), (779, 4082)];

    #[test]
    fn a_longer_stream_starts_with_the_shorter_one() {
        let short = synthetic(&small(3));
        let long = synthetic(&SyntheticSpec {
            requests: 30_000,
            ..small(3)
        });
        assert_eq!(short.requests[..], long.requests[..20_000]);
    }

    #[test]
    fn paths_are_distinct_and_requests_point_at_files() {
        let w = synthetic(&small(4));
        let distinct: std::collections::BTreeSet<&String> = w.paths.iter().collect();
        assert_eq!(distinct.len(), 2_000);
        assert_eq!(w.requests.len(), 20_000);
        assert!(w.requests.iter().all(|r| (r.file as usize) < w.paths.len()));
    }

    #[test]
    fn the_most_popular_file_gets_its_zipf_share() {
        let spec = SyntheticSpec::default();
        let w = synthetic(&spec);
        let mut counts = vec![0usize; spec.files as usize];
        for r in &w.requests {
            counts[r.file as usize] += 1;
        }
        let harmonic: f64 = (1..=spec.files)
            .map(|r| 1.0 / f64::from(r).powf(spec.alpha))
            .sum();
        let expected = 1.0 / harmonic;
        let top = *counts.iter().max().unwrap() as f64 / spec.requests as f64;
        assert!(
            (top - expected).abs() <= 0.2 * expected,
            "top share {top}, Zipf {expected}"
        );
        // The shuffle: the most popular file is not simply file 0.
        let hottest = counts
            .iter()
            .enumerate()
            .max_by_key(|&(_, c)| *c)
            .unwrap()
            .0;
        assert_ne!(hottest, 0);
    }

    #[test]
    fn popularity_falls_with_rank() {
        let mut rng = SplitMix64::new(9);
        let zipf = Zipf::new(100, 0.8);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[9] && counts[9] > counts[99]);
        assert!(counts[99] > 0);
        // Rank 1 over rank 2 is 2^0.8 ≈ 1.74.
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.55..1.95).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn sizes_are_heavy_tailed_and_bounded() {
        let spec = SyntheticSpec::default();
        let mut sizes = sizes_of(&spec);
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2] as f64;
        assert!(
            (median - spec.size_median).abs() <= 0.25 * spec.size_median,
            "median {median}"
        );
        let tail = sizes.iter().filter(|&&s| s as f64 > spec.tail_min).count();
        assert!(tail > sizes.len() / 50, "{tail} files above tail_min");
        assert!(sizes[0] >= 1);
        assert!(*sizes.last().unwrap() <= spec.max_size);
    }

    #[test]
    fn sizes_stay_in_bounds_for_odd_specs() {
        let spec = SyntheticSpec {
            files: 1_000,
            size_median: 0.001,
            size_sigma: 5.0,
            tail_fraction: 0.5,
            tail_min: 1e12,
            tail_shape: 0.1,
            max_size: 1_000,
            ..SyntheticSpec::default()
        };
        let sizes = sizes_of(&spec);
        assert!(sizes.iter().all(|&s| (1..=1_000).contains(&s)));
        assert!(sizes.contains(&1) && sizes.contains(&1_000));
    }

    #[test]
    fn no_files_means_no_requests() {
        let w = synthetic(&SyntheticSpec {
            files: 0,
            ..SyntheticSpec::default()
        });
        assert_eq!(w, Workload::default());
    }

    #[test]
    fn working_set_of_the_default_spec() {
        // About 850 MB expected: mean file ≈ 0.93 × 13.2 kB (lognormal) +
        // 0.07 × 428 kB (Pareto capped at 20 MiB) ≈ 42 kB, over the ~19k files
        // requested at least once; seed 1 gives 805_016_221 bytes. The Pareto
        // tail makes it vary by seed.
        let bytes = synthetic(&SyntheticSpec::default()).working_set_bytes();
        assert!((300_000_000..2_000_000_000).contains(&bytes), "{bytes}");
    }
}
