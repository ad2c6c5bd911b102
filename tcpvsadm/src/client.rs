//! The client side of tcpvsd's control socket: one JSON line per request and
//! per reply, over a plain unix socket.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tcpvs_command::{Request, Response, TableView, Verb};

/// How long tcpvsadm waits for an answer (a batch that binds many listeners
/// can take a moment).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request did not get through.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}: permission denied (the control socket is for root, tcpvsd's own user and its control group)")]
    PermissionDenied(PathBuf),
    #[error("{0}: no tcpvsd is listening there (is it running? is --socket right?)")]
    NotRunning(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("tcpvsd sent a reply that could not be read: {0}")]
    BadReply(String),
    /// tcpvsd refused the request and said why.
    #[error("{0}")]
    Refused(String),
}

/// A connection to tcpvsd's control socket.
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_path_buf()),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(path.to_path_buf())
            }
            _ => ClientError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let io_error = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(io_error)?;
        let reader = BufReader::new(stream.try_clone().map_err(io_error)?);
        Ok(Self {
            path: path.to_path_buf(),
            stream,
            reader,
            next_id: 1,
        })
    }

    /// Sends `verb` and waits for its reply; a listing comes back as a view.
    pub fn call(&mut self, verb: Verb) -> Result<Option<TableView>, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = Request { id, verb }.to_line();
        // A refused peer is told why before the daemon hangs up, possibly
        // before our request is even written: read that reason first.
        let sent = self.stream.write_all(&line);
        let mut answer = String::new();
        let read = match (self.reader.read_line(&mut answer), sent) {
            (Ok(n), _) if n > 0 => n,
            (_, Err(e)) => return Err(self.io(e)),
            (read, Ok(())) => read.map_err(|e| self.io(e))?,
        };
        if read == 0 {
            return Err(ClientError::BadReply("tcpvsd closed the connection".into()));
        }
        let response = Response::from_line(&answer).map_err(ClientError::BadReply)?;
        if !response.ok {
            let reason = response
                .error
                .unwrap_or_else(|| "refused without a reason".into());
            return Err(ClientError::Refused(reason));
        }
        if response.id != id {
            return Err(ClientError::BadReply(format!(
                "reply {} to request {id}",
                response.id
            )));
        }
        Ok(response.table)
    }

    fn io(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }
}
