//! tcpvsd between real third-party software: nginx as the real server and curl
//! as the client. In CI (CI set) a missing nginx or curl fails the test.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tcpvs::table::Settings;

/// An nginx serving a temporary directory, ended when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

fn start_nginx(name: &str) -> Nginx {
    let root = std::env::temp_dir().join(format!("tcpvs-nginx-{name}-{}", std::process::id()));
    let www = root.join("www");
    std::fs::create_dir_all(www.join("images")).unwrap();
    std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
    std::fs::write(www.join("index.html"), format!("static page from {name}\n")).unwrap();
    // Every instance has every path, naming itself: a request routed to the
    // wrong one is answered, by the wrong name.
    for who in ["who.txt", "images/who.txt", "cgi-bin/who.txt"] {
        std::fs::write(www.join(who), format!("{name}\n")).unwrap();
    }
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(www.join("images/x.jpg"), &image).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 10000;
    server {{
        listen {addr};
        root {www};
        location /echo {{
            default_type text/plain;
            return 200 "{name} te=[$http_transfer_encoding] cl=[$content_length] xff=[$http_x_forwarded_for] conn=[$http_connection]\n";
        }}
    }}
}}
"#,
        root = root.display(),
        www = www.display(),
    );
    let conf_path = root.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx { child, addr, root }
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.stdout,
    )
}

#[test]
#[cfg_attr(
    any(missing_nginx, missing_curl),
    ignore = "needs nginx and curl (apt install nginx-light curl); .ci/run installs them"
)]
fn nginx_behind_tcpvsd_with_curl_in_front() {
    if !(Path::new("/usr/sbin/nginx").exists() || require_tool("nginx")) || !require_tool("curl") {
        return;
    }
    let images = start_nginx("images");
    let cgi = start_nginx("cgi");
    let files = start_nginx("static");
    let mut spec = service(
        &[(images.addr, 1), (cgi.addr, 1), (files.addr, 1)],
        &[("^/images/", &[images.addr]), ("^/cgi-bin/", &[cgi.addr])],
    );
    spec.default = Some(vec![tcpvs::table::ServerAddr(files.addr)]);
    let running = start_proxy(spec, Settings::default());
    let proxy = running.addr();
    let base = format!("http://{proxy}");

    // A 300 KB binary file arrives byte for byte.
    let (_, image) = curl(&[&format!("{base}/images/x.jpg")]);
    let expected: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    assert!(image == expected, "image differs ({} bytes)", image.len());

    // Several URLs on one curl connection: each is routed by its own rule to
    // its own nginx, the rest only to the default set's.
    let (_, pages) = curl(&[
        &format!("{base}/images/who.txt"),
        &format!("{base}/cgi-bin/who.txt"),
        &format!("{base}/who.txt"),
        &format!("{base}/images/who.txt"),
        &format!("{base}/who.txt"),
        &format!("{base}/cgi-bin/who.txt"),
        &format!("{base}/who.txt"),
        "-w",
        "connects=%{num_connects}\n",
    ]);
    assert_eq!(
        String::from_utf8(pages).unwrap(),
        "images\nconnects=1\ncgi\nconnects=0\nstatic\nconnects=0\n\
         images\nconnects=0\nstatic\nconnects=0\ncgi\nconnects=0\nstatic\nconnects=0\n"
    );
    let (_, pages) = curl(&[&format!("{base}/index.html"), &format!("{base}/echo")]);
    let pages = String::from_utf8(pages).unwrap();
    assert!(pages.contains("static page from static"), "{pages}");
    assert!(
        pages.contains("static te=[] cl=[] xff=[127.0.0.1] conn=[]"),
        "{pages}"
    );

    // A chunked upload from curl reaches nginx re-chunked; a sized one with its length.
    let (_, chunked) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@Cargo.toml",
        &format!("{base}/echo"),
    ]);
    let chunked = String::from_utf8(chunked).unwrap();
    // (nginx fills $content_length itself while it reads a chunked body.)
    assert!(chunked.starts_with("static te=[chunked]"), "{chunked}");
    let (_, sized) = curl(&["-d", "hello", &format!("{base}/echo")]);
    assert!(String::from_utf8(sized).unwrap().contains("cl=[5]"));

    // HTTP/1.0 and HEAD.
    let (_, old) = curl(&["--http1.0", &format!("{base}/index.html")]);
    assert_eq!(old, b"static page from static\n");
    let (_, head) = curl(&["-I", &format!("{base}/images/x.jpg")]);
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains("Content-Length: 300000"), "{head}");

    // nginx's own 404 passes through.
    let (_, code) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/nope"),
    ]);
    assert_eq!(code, b"404");
}
