//! Hashes the schedulers share: a fixed hash for keys (so every director maps
//! a key to the same server) and a quick fingerprint naming a candidate set
//! inside one process.

use std::net::{IpAddr, SocketAddr};

use crate::table::RealServer;

/// FNV-1a 64, fed in parts and finished by a multiply-xorshift. It has no
/// per-process seed on purpose: directors sharing a cluster must agree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;

    pub(crate) const fn new() -> Self {
        Self(Self::OFFSET)
    }

    pub(crate) fn write(self, bytes: &[u8]) -> Self {
        self.write_iter(bytes.iter().copied())
    }

    pub(crate) fn write_iter(self, bytes: impl IntoIterator<Item = u8>) -> Self {
        let hash = bytes
            .into_iter()
            .fold(self.0, |h, b| (h ^ u64::from(b)).wrapping_mul(Self::PRIME));
        Self(hash)
    }

    /// Ends one part, so that ("ab", "c") and ("a", "bc") hash apart.
    pub(crate) fn separate(self) -> Self {
        self.write(&[0])
    }

    /// An IP address; an IPv4-mapped IPv6 address hashes as its IPv4 self, so
    /// a client seen on a dual-stack socket maps like one seen on IPv4.
    pub(crate) fn write_ip(self, ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.write(&v4.octets()),
            IpAddr::V6(v6) => self.write(&v6.octets()),
        }
    }

    /// A socket address: its IP, then its port.
    pub(crate) fn write_socket(self, addr: SocketAddr) -> Self {
        self.write_ip(addr.ip()).write(&addr.port().to_be_bytes())
    }

    pub(crate) fn finish(self) -> u64 {
        let hash = self.0;
        // FNV's low bits mix poorly: finish with a multiply-xorshift.
        let mixed = (hash ^ (hash >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        mixed ^ (mixed >> 33)
    }
}

/// A quick 64-bit name for an ordered set of servers with their weights,
/// a word per server so that it stays cheap at every request. Not stable
/// across processes, and not collision-free: users compare the members.
pub(crate) fn fingerprint<'a>(servers: impl IntoIterator<Item = &'a RealServer>) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    servers
        .into_iter()
        .fold(0x243f_6a88_85a3_08d3, |h, server| {
            let addr = server.addr.0;
            let ip = match addr.ip() {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => {
                    let bits = u128::from(v6);
                    (bits as u64) ^ ((bits >> 64) as u64).rotate_left(23)
                }
            };
            let word = ip
                ^ (u64::from(addr.port()) << 32)
                ^ (u64::from(server.effective_weight().0) << 48);
            (h.rotate_left(5) ^ word).wrapping_mul(K)
        })
}

/// Weighted rendezvous hashing (Schindelhauer and Schomaker): the usable
/// candidate with the highest `ln(u) / weight`, `u` a stable hash of (key,
/// server) taken into (0, 1]. Each server gets keys in proportion to its
/// weight, and a server coming or going moves only its own keys. When every
/// usable weight is the same the highest hash wins directly (the same order,
/// without a logarithm per server).
pub(crate) fn weighted_rendezvous(
    key: StableHasher,
    candidates: &[std::sync::Arc<RealServer>],
    usable: &dyn Fn(&RealServer) -> bool,
) -> Option<usize> {
    let key = key.finish();
    let usable = |server: &RealServer| !server.effective_weight().is_quiescent() && usable(server);
    let mut weights = candidates
        .iter()
        .filter(|s| usable(s))
        .map(|s| s.effective_weight().0);
    let first = weights.next()?;
    let equal = weights.all(|w| w == first);
    let hashes = candidates
        .iter()
        .enumerate()
        .filter(|(_, server)| usable(server))
        .map(|(i, server)| (i, server, mix(key ^ server.seed)));
    if equal {
        return hashes.max_by_key(|(_, _, hash)| *hash).map(|(i, _, _)| i);
    }
    hashes
        .map(|(i, server, hash)| {
            (
                i,
                log2_unit(hash) / f64::from(server.effective_weight().0),
                hash,
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)))
        .map(|(i, _, _)| i)
}

/// log2 of `hash` taken as a number in (0, 1], to about 2e-4: the exponent
/// from the leading zeros and a short series for the mantissa. Scores are only
/// compared, so this keeps every share within a hair of its weight at a
/// fraction of the cost of `f64::ln` (plain arithmetic: every director
/// computes the same value).
fn log2_unit(hash: u64) -> f64 {
    let zeros = hash.leading_zeros();
    if zeros == 64 {
        return -64.0;
    }
    // hash = 2^(63 - zeros) * m, m in [1, 2): log2(hash / 2^64) = m's log - 1 - zeros.
    let m = ((hash << zeros) >> 11) as f64 / (1u64 << 52) as f64;
    // log2(m) = 2/ln(2) * atanh(s), s = (m-1)/(m+1) in [0, 1/3): three terms
    // of the series leave an error under 2e-4.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let log2_m = 2.0 / std::f64::consts::LN_2 * s * (1.0 + s2 * (1.0 / 3.0 + s2 / 5.0));
    log2_m - 1.0 - f64::from(zeros)
}

/// A server's fixed contribution to rendezvous scores (kept in
/// `RealServer::seed`, computed once per table).
pub fn server_seed(addr: SocketAddr) -> u64 {
    let ip = match addr.ip().to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    mix(mix((ip >> 64) as u64 ^ u64::from(addr.port())) ^ ip as u64)
}

/// The splitmix64 finalizer: every input bit moves every output bit.
fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/images/a.jpg` through `StableHasher`.
    const KEY: u64 = 0x7476_1c21_fc42_79c9;
    /// 192.0.2.7:80 and [2001:db8::1]:8080 through `server_seed`.
    const SEEDS: [u64; 2] = [0x96e0_c2b7_3403_7444, 0x0569_4011_16c3_3aa7];

    #[test]
    fn parts_are_separated() {
        let hash = |a: &[u8], b: &[u8]| StableHasher::new().write(a).separate().write(b).finish();
        assert_ne!(hash(b"ab", b"c"), hash(b"a", b"bc"));
    }

    #[test]
    fn log2_unit_is_close() {
        for hash in [
            1u64,
            3,
            1 << 20,
            0x8000_0000_0000_0000,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ] {
            let exact = (hash as f64 / 2f64.powi(64)).log2();
            assert!(
                (log2_unit(hash) - exact).abs() < 3e-4,
                "{hash:#x}: {} vs {exact}",
                log2_unit(hash)
            );
        }
        assert!(log2_unit(2) > log2_unit(1));
    }

    /// The values every director and every release must compute: a change
    /// here moves keys and clients to other servers when directors of two
    /// versions share a cluster, or across an upgrade (all caches cold).
    #[test]
    fn hashes_are_the_same_everywhere_and_in_every_release() {
        let key = StableHasher::new().write(b"/images/a.jpg").finish();
        let seeds = [
            server_seed("192.0.2.7:80".parse().unwrap()),
            server_seed("[2001:db8::1]:8080".parse().unwrap()),
        ];
        assert_eq!(key, KEY);
        assert_eq!(seeds, SEEDS);
    }

    #[test]
    fn mapped_ipv4_hashes_as_ipv4() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            StableHasher::new().write_ip(v4).finish(),
            StableHasher::new().write_ip(mapped).finish()
        );
    }
}
