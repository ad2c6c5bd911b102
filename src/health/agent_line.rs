//! HAProxy agent-check lines, read: what a real server's agent reports.
