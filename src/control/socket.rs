//! The control socket: a unix socket (mode 0600, or 0660 with a control group)
//! on which tcpvsd takes one JSON request per line and answers one JSON line
//! each. Peers are checked with SO_PEERCRED: root, the daemon's own user, or
//! the configured group. It runs on threads of its own, off the workers.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tcpvs_command::{Request, Response};

use super::plane::ControlPlane;

/// The longest request line taken (a `-R` batch of some thousand verbs).
const MAX_LINE: u64 = 4 * 1024 * 1024;
/// A client silent this long is disconnected.
const IDLE: Duration = Duration::from_secs(30);
/// Clients served at once; more are turned away with an error.
const MAX_CLIENTS: usize = 32;

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

    fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || uid == self.uid || self.gid == Some(gid)
    }
}

/// Binds the control socket at `path` and serves it on a thread.
pub fn serve(path: &Path, plane: Arc<ControlPlane>, access: Access) -> io::Result<JoinHandle<()>> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another tcpvsd is listening there", path.display()),
            ));
        }
        // Left behind by a daemon that did not exit cleanly.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path).map_err(|e| with_path(path, e))?;
    let mode = if access.gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(path, e))?;
    if let Some(gid) = access.gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| with_path(path, e))?;
    }
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("tcpvs-control".into())
        .spawn(move || accept_loop(listener, path, plane, access))
}

fn accept_loop(listener: UnixListener, path: PathBuf, plane: Arc<ControlPlane>, access: Access) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
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
            let _ = reply(
                &stream,
                &Response::error(0, "too many control clients; try again"),
            );
            continue;
        }
        let (plane, clients) = (plane.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("tcpvs-control-client".into())
            .spawn(move || {
                if let Err(e) = serve_client(&stream, &plane, access) {
                    tracing::debug!("control client: {e}");
                }
                clients.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a control client thread");
        }
    }
}

fn serve_client(stream: &UnixStream, plane: &ControlPlane, access: Access) -> io::Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    let (uid, gid) = (cred.uid.as_raw(), cred.gid.as_raw());
    if !access.allows(uid, gid) {
        tracing::warn!(uid, "control socket: refused a client");
        let reason = format!("permission denied: uid {uid} may not use tcpvsd's control socket");
        return reply(stream, &Response::error(0, reason));
    }
    stream.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
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
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => {
                tracing::debug!(uid, verb = request.verb.name(), "control request");
                match plane.handle(&request.verb) {
                    Ok(table) => Response::ok(request.id, table),
                    Err(reason) => Response::error(request.id, reason),
                }
            }
            Err(e) => Response::error(Request::id_of(&line), format!("malformed request: {e}")),
        };
        reply(stream, &response)?;
    }
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
        assert!(access.allows(0, 0));
        assert!(access.allows(1000, 1000));
        assert!(access.allows(1001, 50));
        assert!(!access.allows(1001, 1001));
    }

    #[test]
    fn ids_of_bad_requests() {
        assert_eq!(Request::id_of(br#"{"id": 9, "verb": "nonsense"}"#), 9);
        assert_eq!(Request::id_of(b"garbage"), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-here").is_err());
    }
}
