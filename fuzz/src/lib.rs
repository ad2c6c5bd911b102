//! What the fuzz targets share: the limits they parse with, how an input is
//! cut into reads, and the contract every incremental head parser keeps
//! (the relay re-parses its buffer after each read, so a parse must not
//! depend on where reads ended).

use tcpvs::fuzzing::check_incremental_contract;
use tcpvs::protocols::http::Limits;

/// The limits of the head parsers under test: small, so that the fuzzer's
/// inputs soon reach both.
pub const LIMITS: Limits = Limits {
    max_head_bytes: 512,
    max_headers: 16,
};

/// The limits of the peer that reads what we write (a head we forward gains
/// Host, X-Forwarded-* and framing fields): not what is under test there.
pub const PEER_LIMITS: Limits = Limits {
    max_head_bytes: 1 << 20,
    max_headers: 1 << 10,
};

/// Read sizes for `seed`: an endless, deterministic sequence of 1 to 64
/// bytes, mostly small (where boundaries fall inside lines and CRLFs).
fn reads(seed: u8) -> impl Iterator<Item = usize> {
    // xorshift32: enough to scatter the cuts, and the same on every run.
    let mut state = u32::from(seed) | 0x9e37_0000;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = match state % 8 {
            0..=4 => state >> 8 & 0x3,
            5 | 6 => state >> 8 & 0xf,
            _ => state >> 8 & 0x3f,
        };
        size as usize + 1
    })
}

/// The sizes of the reads in which a connection's bytes arrive.
pub type Reads = Box<dyn Iterator<Item = usize>>;

/// For an input whose first byte picks read sizes: feeds the rest to `feed`
/// in one read, then in the reads that byte picks, checks that both give
/// the same, and returns the rest and what it gave. The fuzzer mutates that
/// byte like any other, so it explores read patterns and contents together,
/// while a seed file stays readable text after its first byte.
pub fn same_in_any_reads<T>(data: &[u8], feed: impl Fn(&[u8], Reads) -> T) -> Option<(&[u8], T)>
where
    T: PartialEq + std::fmt::Debug,
{
    let (&seed, wire) = data.split_first()?;
    let whole = feed(wire, Box::new(std::iter::repeat(usize::MAX)));
    let in_reads = feed(wire, Box::new(reads(seed)));
    assert_eq!(in_reads, whole, "the read sizes changed the outcome");
    Some((wire, whole))
}

/// Checks `parse` on `buf` against the contract of the head parsers (as
/// the unit tests do: `tcpvs::fuzzing::check_incremental_contract`), and
/// returns its verdict on `buf`. Every prefix is parsed, so only the bytes a
/// head can fill, and a few past them, are checked.
pub fn check_head_parser<T, E>(
    buf: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<Option<(T, usize)>, E>
where
    T: PartialEq + std::fmt::Debug,
    E: PartialEq + std::fmt::Debug,
{
    check_incremental_contract(&buf[..buf.len().min(LIMITS.max_head_bytes + 8)], &parse);
    parse(buf)
}
