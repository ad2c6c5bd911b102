//! `tcpvsd --upgrade`: a new binary takes over a running tcpvsd without
//! refusing a connection (HAProxy's `-x`). It asks the running one for its
//! listening sockets over the control socket (passed with SCM_RIGHTS),
//! serves them, and only then tells it to retire: the old tcpvsd gives up
//! the control socket's path, stops accepting, lets what it serves finish
//! and exits. Until the retire, the old one serves alone and nothing of it
//! changed, so a new binary that fails to start costs nothing.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use tcpvs_command::{HandOver, Request, Response, Verb};

use crate::net::fd_passing;
use crate::worker::Inherited;

/// How long the running tcpvsd may take to answer.
const ANSWER: Duration = Duration::from_secs(10);

/// The running tcpvsd's listening sockets, by service.
pub fn take_sockets(control: &Path) -> anyhow::Result<Vec<Inherited>> {
    let stream = ask(control, Verb::HandOver)?;
    let (message, fds) = fd_passing::receive(&stream).context("receiving the sockets")?;
    let handed: HandOver = match serde_json::from_slice(&message) {
        Ok(handed) => handed,
        Err(_) => bail!("the running tcpvsd refused: {}", refusal(&message)),
    };
    let expected: usize = handed.services.iter().map(|s| s.sockets).sum();
    if expected != fds.len() {
        bail!("{} sockets announced, {} received", expected, fds.len());
    }
    let mut fds = fds.into_iter();
    let mut inherited = Vec::with_capacity(handed.services.len());
    for service in handed.services {
        let sockets = fds
            .by_ref()
            .take(service.sockets)
            .map(TcpListener::from)
            .collect();
        let parse = |what: &str, text: &str| {
            text.parse()
                .with_context(|| format!("service {}: bad {what} `{text}`", service.ident))
        };
        inherited.push(Inherited {
            ident: service.ident.parse().map_err(anyhow::Error::msg)?,
            listen: parse("listen address", &service.listen)?,
            bound: parse("bound address", &service.bound)?,
            sockets,
        });
    }
    Ok(inherited)
}

/// Tells the running tcpvsd to retire; returns once its control socket's
/// path is free.
pub fn retire_old(control: &Path) -> anyhow::Result<()> {
    let stream = ask(control, Verb::Retire)?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut line)
        .context("waiting for the running tcpvsd to retire")?;
    match serde_json::from_slice::<Response>(&line) {
        Ok(response) if response.ok => Ok(()),
        _ => bail!("the running tcpvsd did not retire: {}", refusal(&line)),
    }
}

/// Connects to the running tcpvsd and sends `verb`.
fn ask(control: &Path, verb: Verb) -> anyhow::Result<UnixStream> {
    let mut stream = UnixStream::connect(control).with_context(|| {
        format!(
            "--upgrade: no tcpvsd answers on {} (give its --control-socket)",
            control.display()
        )
    })?;
    stream.set_read_timeout(Some(ANSWER))?;
    stream.set_write_timeout(Some(ANSWER))?;
    stream.write_all(&Request { id: 1, verb }.to_line())?;
    Ok(stream)
}

/// What an answer that is not the expected one says.
fn refusal(message: &[u8]) -> String {
    match serde_json::from_slice::<Response>(message) {
        Ok(Response {
            error: Some(error), ..
        }) => error,
        _ => String::from_utf8_lossy(message).trim().to_string(),
    }
}
