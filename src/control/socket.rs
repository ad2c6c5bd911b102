//! The control socket: a unix socket (mode 0600, or 0660 with a control group)
//! on which tcpvsd takes one JSON request per line and answers one JSON line
//! each. Peers are checked with SO_PEERCRED: root, the daemon's own user, or
//! the configured group. It runs on threads of its own, off the workers.
//!
//! The path is the operator's: tcpvsd replaces only a stale socket there (one
//! nobody listens on) and refuses to start over anything else. A client holds
//! one of `MAX_CLIENTS` places, so one that says nothing is let go quickly.
//! Every edit is logged with what it changed and who asked.

use std::fs::Metadata;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tcpvs_command::{HandOver, HandedService, Request, Response, Verb};

use super::plane::ControlPlane;
use crate::net::fd_passing;

/// The longest request line taken (a `-R` batch of some thousand verbs).
const MAX_LINE: u64 = 4 * 1024 * 1024;
/// A new client must have sent its whole first request line within this, or
/// it gives its place back. tcpvsadm reads its input (a whole `-R` batch
/// included) before it connects and then writes its one line at once, so the
/// line follows the connection within milliseconds, a 4 MiB one too (a unix
/// socket moves that in a few ms); 3 s leaves a loaded host and `echo ... |
/// socat` ample room, while a crowd of silent clients keeps tcpvsadm out for
/// 3 s at most.
const FIRST_REQUEST: Duration = Duration::from_secs(3);
/// A client that has been answered may send its next request within this
/// (a script keeping one connection for several requests).
const NEXT_REQUEST: Duration = Duration::from_secs(30);
/// How long a reply may wait for a client that does not read it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients served at once; more are turned away with an error.
const MAX_CLIENTS: usize = 32;
/// The longest refusal reason logged: it may quote what a peer sent.
const MAX_LOGGED_REASON: usize = 200;
/// How to choose another place for the socket, for every message that
/// refuses this one.
const CHANGE_PATH: &str = "choose another path with --control-socket PATH \
     (or `control_socket` in the configuration file)";

/// Who may use the control socket besides root.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The daemon's own user.
    pub uid: u32,
    /// An extra group allowed (by the peer's primary group).
    pub gid: Option<u32>,
}

impl Access {
    /// The daemon's user, and members of `group` when given.
    pub fn for_daemon(group: Option<&str>) -> io::Result<Self> {
        let gid = group.map(group_id).transpose()?;
        Ok(Self {
            uid: rustix::process::geteuid().as_raw(),
            gid,
        })
    }

    fn allows(&self, peer: Peer) -> bool {
        peer.uid == 0 || peer.uid == self.uid || self.gid == Some(peer.gid)
    }
}

/// A client as SO_PEERCRED gives it: who asks, for the access check and the log.
#[derive(Debug, Clone, Copy)]
struct Peer {
    uid: u32,
    gid: u32,
    pid: i32,
}

impl Peer {
    fn of(stream: &UnixStream) -> io::Result<Self> {
        let cred = rustix::net::sockopt::socket_peercred(stream)?;
        Ok(Self {
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            pid: cred.pid.as_raw_pid(),
        })
    }
}

/// Binds the control socket at `path` and serves it on a thread.
pub fn serve(path: &Path, plane: Arc<ControlPlane>, access: Access) -> io::Result<JoinHandle<()>> {
    clear_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| cannot_create(path, e))?;
    let mode = if access.gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(path, e))?;
    if let Some(gid) = access.gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| with_path(path, e))?;
    }
    let path = Arc::new(Here {
        path: path.to_path_buf(),
        retired: AtomicBool::new(false),
    });
    std::thread::Builder::new()
        .name("tcpvs-control".into())
        .spawn(move || accept_loop(listener, path, plane, access))
}

/// Where the control socket is, and whether it was given up to a new tcpvsd.
struct Here {
    path: PathBuf,
    retired: AtomicBool,
}

/// Makes room at `path`: nothing there, or a socket nobody listens on any
/// more (left by a daemon that did not exit cleanly), which is removed.
/// Anything else is refused and left exactly as it is. A symbolic link is
/// never followed: it is refused like any other file.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    let found = match std::fs::symlink_metadata(path) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot_create(path, e)),
    };
    if !found.file_type().is_socket() {
        return Err(occupied(
            path,
            &format!("{} is there", what_is(path, &found)),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "control socket {}: a process (another tcpvsd?) is listening there; \
                 stop it, or {CHANGE_PATH}",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // Looked at once more just before: what is removed is the socket
            // found above, not a file put in its place meanwhile.
            let still = std::fs::symlink_metadata(path).map_err(|e| with_path(path, e))?;
            if (still.dev(), still.ino()) != (found.dev(), found.ino()) {
                return Err(occupied(
                    path,
                    "the socket there was replaced while tcpvsd looked at it",
                ));
            }
            std::fs::remove_file(path).map_err(|e| cannot_create(path, e))?;
            tracing::info!(
                socket = %path.display(),
                "replaced a stale control socket (nothing listened on it)"
            );
            Ok(())
        }
        Err(e) => Err(occupied(
            path,
            &format!("a socket is there that tcpvsd cannot check ({e})"),
        )),
    }
}

/// What `found` (the metadata of `path`, not followed) is, for a message.
fn what_is(path: &Path, found: &Metadata) -> String {
    let kind = found.file_type();
    if kind.is_symlink() {
        let target =
            std::fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
        format!("a symbolic link (to {target})")
    } else if kind.is_dir() {
        "a directory".into()
    } else if kind.is_file() {
        format!("a regular file ({} bytes)", found.len())
    } else if kind.is_fifo() {
        "a FIFO".into()
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device".into()
    } else {
        "a file of an unknown type".into()
    }
}

/// The start refused because `what` is at `path`.
fn occupied(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "control socket {}: {what}; tcpvsd replaces only a stale socket and leaves \
             this alone: remove it, or {CHANGE_PATH}",
            path.display()
        ),
    )
}

/// The socket cannot be made at `path`; says how to go on when the cause is
/// one an operator meets (a user who may not write /run, a missing directory).
fn cannot_create(path: &Path, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "; uid {} may not create it there: run tcpvsd as root, or {CHANGE_PATH}, \
             e.g. $XDG_RUNTIME_DIR/tcpvsd.sock (and give tcpvsadm the same --socket PATH)",
            rustix::process::geteuid().as_raw()
        ),
        io::ErrorKind::NotFound => {
            format!("; its directory does not exist: create it, or {CHANGE_PATH}")
        }
        _ => String::new(),
    };
    io::Error::new(
        e.kind(),
        format!(
            "control socket {}: cannot create it: {e}{hint}",
            path.display()
        ),
    )
}

fn accept_loop(listener: UnixListener, here: Arc<Here>, plane: Arc<ControlPlane>, access: Access) {
    let clients = Arc::new(AtomicUsize::new(0));
    let path = &here.path;
    for stream in listener.incoming() {
        if here.retired.load(Ordering::Acquire) {
            // The new tcpvsd has the path: this listener closes.
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(socket = %path.display(), "control accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            let reason = format!(
                "too many control clients ({MAX_CLIENTS} at once); try again in a few seconds"
            );
            let _ = reply(&stream, &Response::error(0, reason));
            continue;
        }
        let (plane, clients, here) = (plane.clone(), clients.clone(), here.clone());
        let spawned = std::thread::Builder::new()
            .name("tcpvs-control-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(&stream, &plane, access, &here) {
                    tracing::debug!("control client: {e}");
                }
                clients.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a control client thread");
        }
    }
}

fn serve_client(
    stream: &UnixStream,
    plane: &ControlPlane,
    access: Access,
    here: &Here,
) -> io::Result<()> {
    let peer = Peer::of(stream)?;
    if !access.allows(peer) {
        tracing::warn!(
            uid = peer.uid,
            pid = peer.pid,
            "control socket: refused a client"
        );
        let reason = format!(
            "permission denied: uid {} may not use tcpvsd's control socket",
            peer.uid
        );
        return reply(stream, &Response::error(0, reason));
    }
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let mut wait = FIRST_REQUEST;
    let mut reader = BufReader::new(Deadline::after(stream, wait));
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(read) => read,
            Err(e) if is_timeout(&e) => {
                let reason = format!("no request line within {wait:?}: closing");
                return reply(stream, &Response::error(0, reason));
            }
            Err(e) => return Err(e),
        };
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            if read as u64 == MAX_LINE {
                return reply(stream, &Response::error(0, "request line too long"));
            }
            // A client that went away mid-request: nothing to answer.
            return Ok(());
        }
        match upgrade_verb(&line) {
            Some((id, Verb::HandOver)) => return hand_over(stream, plane, id, peer),
            Some((id, _)) => return retire(stream, plane, id, peer, here),
            None => reply(stream, &answer(plane, &line, peer))?,
        }
        wait = NEXT_REQUEST;
        *reader.get_mut() = Deadline::after(stream, wait);
    }
}

/// The verbs of a new tcpvsd taking over (`--upgrade`), with their id.
fn upgrade_verb(line: &[u8]) -> Option<(u64, Verb)> {
    let request = serde_json::from_slice::<Request>(line).ok()?;
    matches!(request.verb, Verb::HandOver | Verb::Retire).then_some((request.id, request.verb))
}

/// Sends the listening sockets, with a line saying whose they are (the
/// connection ends with it).
fn hand_over(stream: &UnixStream, plane: &ControlPlane, id: u64, peer: Peer) -> io::Result<()> {
    let inherited = match plane.hand_over() {
        Ok(inherited) => inherited,
        Err(e) => return reply(stream, &Response::error(id, format!("hand-over: {e}"))),
    };
    let services = inherited
        .iter()
        .map(|i| HandedService {
            ident: i.ident.to_string(),
            listen: i.listen.to_string(),
            bound: i.bound.to_string(),
            sockets: i.sockets.len(),
        })
        .collect();
    let mut line = serde_json::to_vec(&HandOver { services }).map_err(io::Error::other)?;
    line.push(b'\n');
    let fds: Vec<_> = inherited
        .iter()
        .flat_map(|i| i.sockets.iter().map(AsFd::as_fd))
        .collect();
    tracing::info!(
        uid = peer.uid,
        pid = peer.pid,
        sockets = fds.len(),
        "control: listening sockets handed over"
    );
    fd_passing::send(stream, &line, &fds)
}

/// Gives the control socket's path up to the new tcpvsd and tells the
/// daemon to drain and exit; answers once the path is free.
fn retire(
    stream: &UnixStream,
    plane: &ControlPlane,
    id: u64,
    peer: Peer,
    here: &Here,
) -> io::Result<()> {
    if let Err(reason) = plane.retire() {
        return reply(stream, &Response::error(id, reason));
    }
    here.retired.store(true, Ordering::Release);
    // Wakes the accept loop, which sees the flag and closes the listener.
    let _ = UnixStream::connect(&here.path);
    if let Err(e) = std::fs::remove_file(&here.path) {
        tracing::warn!(socket = %here.path.display(), "retiring: {e}");
    }
    tracing::info!(
        uid = peer.uid,
        pid = peer.pid,
        "control: a new tcpvsd took over; draining"
    );
    reply(stream, &Response::ok(id, None))
}

/// Carries out one request line and logs what it did: edits at INFO with what
/// they changed and who asked, refusals at WARN with the reason, listings at
/// DEBUG only.
fn answer(plane: &ControlPlane, line: &[u8], peer: Peer) -> Response {
    let request = match serde_json::from_slice::<Request>(line) {
        Ok(request) => request,
        Err(e) => {
            let reason = format!("malformed request: {e}");
            let logged = bounded(&reason);
            tracing::warn!(reason = ?logged, uid = peer.uid, pid = peer.pid, "control: refused");
            return Response::error(Request::id_of(line), reason);
        }
    };
    let result = plane.handle(&request.verb);
    log_request(&request.verb, peer, result.as_ref().err());
    match result {
        Ok(table) => Response::ok(request.id, table),
        Err(reason) => Response::error(request.id, reason),
    }
}

fn log_request(verb: &Verb, peer: Peer, refused: Option<&String>) {
    let (uid, pid) = (peer.uid, peer.pid);
    let summary = verb.summary();
    let listing = matches!(verb, Verb::List { .. });
    match refused.map(|reason| bounded(reason)) {
        None if listing => tracing::debug!(uid, pid, "control: {summary}"),
        None => tracing::info!(uid, pid, "control: {summary}"),
        Some(reason) if listing => {
            tracing::debug!(reason = ?reason, uid, pid, "control: refused {summary}")
        }
        Some(reason) => tracing::warn!(reason = ?reason, uid, pid, "control: refused {summary}"),
    }
}

/// `text` cut to `MAX_LOGGED_REASON` characters.
fn bounded(text: &str) -> String {
    text.chars().take(MAX_LOGGED_REASON).collect()
}

/// A client's stream read against a deadline: each read waits only for the
/// time left, so a line sent a byte at a time cannot hold a place longer
/// than one that is not sent at all.
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    fn after(stream: &'a UnixStream, wait: Duration) -> Self {
        Self {
            stream,
            until: Instant::now() + wait,
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut stream = self.stream;
        stream.set_read_timeout(Some(left))?;
        stream.read(buf)
    }
}

/// A read that ran out of time (SO_RCVTIMEO reports it as EAGAIN).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn reply(mut stream: &UnixStream, response: &Response) -> io::Result<()> {
    stream.write_all(&response.to_line())
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("control socket {}: {e}", path.display()))
}

/// The id of group `name`, from /etc/group.
fn group_id(name: &str) -> io::Result<u32> {
    let groups = std::fs::read_to_string("/etc/group")?;
    groups
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let group = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            (group == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group `{name}` in /etc/group"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        let access = Access {
            uid: 1000,
            gid: Some(50),
        };
        let peer = |uid, gid| Peer { uid, gid, pid: 1 };
        assert!(access.allows(peer(0, 0)));
        assert!(access.allows(peer(1000, 1000)));
        assert!(access.allows(peer(1001, 50)));
        assert!(!access.allows(peer(1001, 1001)));
    }

    #[test]
    fn ids_of_bad_requests() {
        assert_eq!(Request::id_of(br#"{"id": 9, "verb": "nonsense"}"#), 9);
        assert_eq!(Request::id_of(b"garbage"), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-here").is_err());
    }
}
