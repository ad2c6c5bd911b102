//! What the operator's signals mean to tcpvsd (as nginx and HAProxy users
//! expect): TERM, INT and QUIT stop it gracefully (a second one stops it at
//! once), HUP reloads the configuration file, USR1 reopens the log file, USR2
//! is ignored (an upgrade is `tcpvsd --upgrade`). The handlers only note the
//! signal (signal-hook's self-pipe); one thread turns them into [`Signal`]s,
//! so no daemon code runs in a signal handler.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

/// A signal, as the daemon acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// TERM, INT or QUIT: stop accepting, let what is in flight finish.
    Stop,
    /// HUP: read the configuration file again and apply it.
    Reload,
    /// USR1: reopen the log file (logrotate).
    ReopenLogs,
    /// Not a signal: a new tcpvsd took the listening sockets over
    /// (`--upgrade`); this one drains and exits.
    Retire,
}

/// Takes over the daemon's signals from now on and starts the thread that
/// hands them out; the sender lets the daemon's own threads add events.
pub fn listen() -> io::Result<(Sender<Signal>, Receiver<Signal>)> {
    let mut taken = Signals::new([SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2])?;
    let (send, signals) = mpsc::channel();
    let events = send.clone();
    thread::Builder::new()
        .name("tcpvs-signals".into())
        .spawn(move || {
            for number in taken.forever() {
                let signal = match number {
                    SIGHUP => Signal::Reload,
                    SIGUSR1 => Signal::ReopenLogs,
                    SIGUSR2 => {
                        tracing::info!("SIGUSR2 ignored: an upgrade is `tcpvsd --upgrade`");
                        continue;
                    }
                    _ => Signal::Stop,
                };
                if send.send(signal).is_err() {
                    return;
                }
            }
        })?;
    Ok((events, signals))
}
