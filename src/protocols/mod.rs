//! The protocol modules: plain, synchronous parsing and serialization, with no
//! I/O. A service's `protocol` picks one; the relay has a session loop for each
//! (`relay::http`, `relay::rtsp`), since they share no per-message shape: HTTP
//! is request/response with pooled server connections, RTSP a two-way stream
//! pinned to one server connection with a shared session table.

pub mod http;
pub mod rtsp;
