//! tcpvs-agent: the feedbackd idea for tcpvsd. It runs on a real server and
//! answers every connection with one HAProxy agent-check line saying how
//! much of the server is free, or that the operator drains it.

mod args;
mod capacity;
mod line;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use args::{Args, Command};
use line::Line;

/// A director that stops reading cannot hold the agent longer than this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed accept (out of file descriptors, say), before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tcpvs-agent: {message}");
            return ExitCode::from(2);
        }
    };
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tcpvs-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One connection at a time, each within [`WRITE_TIMEOUT`]: the line is a
/// few bytes, so a loop serves any number of directors.
fn serve(args: &Args) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("listening on {bound}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to stdout: {e}"))?;

    let mut load_error = LoggedOnce::default();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let line = current_line(args, &mut load_error);
                if let Err(e) = answer(stream, line) {
                    eprintln!("tcpvs-agent: answering {peer}: {e}");
                }
            }
            Err(e) => {
                eprintln!("tcpvs-agent: accept: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

fn current_line(args: &Args, load_error: &mut LoggedOnce) -> Line {
    let exists = |path: &Option<std::path::PathBuf>| path.as_deref().is_some_and(Path::exists);
    let maint = exists(&args.maint_file);
    let drain = exists(&args.drain_file);
    let percent = match read_load1() {
        Ok(load1) => {
            load_error.clear();
            let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
            Some(capacity::free_percent(load1, cpus, args.floor))
        }
        Err(message) => {
            load_error.log(message);
            None
        }
    };
    Line::new(maint, drain, percent)
}

fn read_load1() -> Result<f64, String> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| format!("cannot read /proc/loadavg: {e}"))?;
    capacity::load1(&text)
}

fn answer(mut stream: TcpStream, line: Line) -> std::io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    stream.shutdown(Shutdown::Write)
}

/// A failure that lasts is logged when it starts, not at every connection.
#[derive(Default)]
struct LoggedOnce {
    last: Option<String>,
}

impl LoggedOnce {
    fn log(&mut self, message: String) {
        if self.last.as_ref() != Some(&message) {
            eprintln!("tcpvs-agent: {message}; sending no weight until it can be read");
            self.last = Some(message);
        }
    }

    fn clear(&mut self) {
        self.last = None;
    }
}
