//! The cluster heals itself: active checks, the dynamic-feedback agent and
//! passive failure marks decide which real servers take work, and with what
//! weight. One checker thread serves the whole daemon (never a worker's
//! ring); its verdicts reach every core through each server's shared state.

pub mod agent_line;
mod checker;
pub mod probe;
pub mod verdict;

pub use checker::Checker;
