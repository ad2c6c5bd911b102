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

/// The stable hash of `parts`, each ended by a 0 byte but the last.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = StableHasher::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher = hasher.separate();
        }
        hasher = hasher.write(part);
    }
    hasher.finish()
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
            let word = ip ^ (u64::from(addr.port()) << 32) ^ (u64::from(server.weight.0) << 48);
            (h.rotate_left(5) ^ word).wrapping_mul(K)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(
            stable_hash(&[b"a", b"bc"]),
            StableHasher::new()
                .write(b"a")
                .separate()
                .write(b"bc")
                .finish()
        );
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
