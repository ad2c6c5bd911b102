//! Which external programs the third-party tests need, found at build time,
//! so that a test whose program is missing shows in the test summary as
//! `ignored` with the reason, rather than passing without having run.
//!
//! For each missing program this emits `cfg(missing_<name>)`, which the tests
//! read through `#[cfg_attr(missing_<name>, ignore = "needs ...")]`. With `CI`
//! set nothing is emitted: the tests then run, and fail on the missing program
//! (tests/common/mod.rs `require_tool`), because CI must install them all.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A program (or set of programs) some test needs, and how to tell it is there.
struct Tool {
    /// The cfg name is `missing_<name>`.
    name: &'static str,
    present: fn() -> bool,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "curl",
        present: || on_path("curl"),
    },
    Tool {
        // Debian installs nginx in /usr/sbin, which a user's PATH may lack.
        name: "nginx",
        present: || on_path("nginx") || is_executable(Path::new("/usr/sbin/nginx")),
    },
    Tool {
        name: "promtool",
        present: || on_path("promtool"),
    },
    Tool {
        name: "slowhttptest",
        present: || on_path("slowhttptest"),
    },
    Tool {
        name: "ffmpeg",
        present: || on_path("ffmpeg") && on_path("ffprobe"),
    },
    Tool {
        name: "gst_rtsp_server",
        present: gst_rtsp_server_present,
    },
    Tool {
        name: "haproxy",
        present: || on_path("haproxy") || is_executable(Path::new("/usr/sbin/haproxy")),
    },
    Tool {
        name: "keepalived",
        present: || on_path("keepalived") || is_executable(Path::new("/usr/sbin/keepalived")),
    },
    Tool {
        name: "chromium",
        present: || on_path("chromium") || on_path("chromium-browser"),
    },
    Tool {
        name: "prlimit",
        present: || on_path("prlimit"),
    },
];

/// The python that has gi (tests/rtsp_third_party.rs runs the same one: a
/// `python3` on PATH may be another, from pyenv or a virtualenv).
const PYTHON: &str = "/usr/bin/python3";

/// What tests/rtsp_third_party.rs checks before it starts its origins.
const GST_CHECK: &str = "import gi\n\
    gi.require_version('Gst', '1.0')\n\
    gi.require_version('GstRtspServer', '1.0')\n\
    from gi.repository import Gst, GstRtspServer\n\
    Gst.init(None)\n\
    for name in ('videotestsrc', 'jpegenc', 'rtpjpegpay'):\n    \
        assert Gst.ElementFactory.find(name), name\n";

/// Prints the cargo instructions: the cfg names, which ones hold, and when to
/// look again.
pub fn emit() {
    for tool in TOOLS {
        println!("cargo::rustc-check-cfg=cfg(missing_{})", tool.name);
    }
    // Installing a program changes one of these folders (the GStreamer
    // plugins and typelibs live in the multiarch ones): the next build looks
    // again, so the test it un-ignores runs. Only folders that exist are
    // named, as cargo reruns every time for a path that does not.
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    for dir in watched_folders() {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    if env::var_os("CI").is_some() {
        return;
    }
    for tool in TOOLS {
        if !(tool.present)() {
            println!("cargo::rustc-cfg=missing_{}", tool.name);
        }
    }
}

/// /usr/bin, /usr/sbin and the multiarch folders of GStreamer and gi's
/// typelibs, those that exist.
fn watched_folders() -> Vec<PathBuf> {
    let mut folders = vec![PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        for entry in entries.flatten() {
            for sub in ["girepository-1.0", "gstreamer-1.0"] {
                folders.push(entry.path().join(sub));
            }
        }
    }
    folders.retain(|folder| folder.is_dir());
    folders
}

/// Whether `program` is an executable file in a folder of PATH, as the
/// shell's `command -v` finds it.
fn on_path(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| {
        env::split_paths(&path).any(|folder| is_executable(&folder.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether /usr/bin/python3 loads gi, GstRtspServer and the elements the
/// RTSP origins use.
fn gst_rtsp_server_present() -> bool {
    Command::new(PYTHON)
        .args(["-c", GST_CHECK])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
