//! RTSP/1.0 (RFC 2326) with no I/O: message heads (`message`), the split of a
//! connection's byte stream into messages and interleaved frames (`framing`),
//! the Session and Transport fields (`fields`), and the table of which server
//! owns which session (`sessions`). The relay (`relay::rtsp`) moves the bytes.

pub mod fields;
pub mod framing;
pub mod message;
pub mod sessions;

pub use fields::{session, tcp_transports, SessionField, DEFAULT_SESSION_TIMEOUT};
pub use framing::{Demux, Step};
pub use message::{parse_message, salvage_cseq, write_reply, Message, MessageError, StartLine};
pub use sessions::SessionTable;
