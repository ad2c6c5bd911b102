//! A cluster simulator for cache-locality experiments: the real schedulers of
//! this crate (not copies) distribute a request stream over simulated back-end
//! nodes, each with an LRU cache and a disk, under the LARD paper's cost model.
//!
//! - `workload`: seeded synthetic streams (Zipf popularity, heavy-tailed sizes).
//! - `trace`: replay of real access logs (Common/Combined Log Format, `path size`).
//! - `cluster`: the event loop and its report per scheduler.

pub mod cluster;
mod lru;
pub mod trace;
pub mod workload;

/// One request of a stream: which file, and how many bytes it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Index into [`Workload::paths`].
    pub file: u32,
    pub size: u64,
}

/// A request stream and the request targets of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The target (path) of each file, as the schedulers see it.
    pub paths: Vec<String>,
    pub requests: Vec<Request>,
}

impl Workload {
    /// Bytes of all distinct files requested (the working set).
    pub fn working_set_bytes(&self) -> u64 {
        let mut sizes = vec![0u64; self.paths.len()];
        for request in &self.requests {
            let size = &mut sizes[request.file as usize];
            *size = (*size).max(request.size);
        }
        sizes.iter().sum()
    }
}
