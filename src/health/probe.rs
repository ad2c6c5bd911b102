//! One check of one server, blocking, within a deadline.
