#!/usr/bin/env bash
# Memory an idle keep-alive client costs tcpvsd: opens N client connections
# through tcpvsd to nginx, each sends one request and reads its answer, then
# all sit idle; reports tcpvsd's RSS before and after, per connection.
#
#   benches/idle_rss.sh            # 5000 connections
#   CLIENTS=10000 benches/idle_rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-5000}
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || {
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light
    rm -f /usr/sbin/policy-rc.d
}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n "$(ulimit -Hn)"   # tcpvsd and the client each hold CLIENTS sockets
cargo build --release -q --bin tcpvsd

work=$(mktemp -d /tmp/tcpvs-idle.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT=$(free_port); TCPVS_PORT=$(free_port)
mkdir -p "$work/www"; echo hello > "$work/www/index.html"
cat > "$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $work/nginx.pid; error_log $work/nginx.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body; proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
    server { listen 127.0.0.1:$NGINX_PORT; root $work/www; }
}
CONF
cat > "$work/tcpvsd.toml" <<CONF
log_level = "warn"
access_log = false
[timeouts]
keepalive = "10m"
[[service]]
ident = "idle"
listen = "127.0.0.1:$TCPVS_PORT"
  [[service.server]]
  address = "127.0.0.1:$NGINX_PORT"
CONF
"$NGINX" -c "$work/nginx.conf" -p "$work" & pids+=($!)
target/release/tcpvsd --config "$work/tcpvsd.toml" --control-socket "$work/control.sock" \
    > /dev/null & pids+=($!)
sleep 1

python3 - "$TCPVS_PORT" "$CLIENTS" "${pids[1]}" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
before = rss_kib()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(b"hello\n")):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed early")
        data += chunk
    conns.append(s)
time.sleep(1)
after = rss_kib()
print(f"{n} idle keep-alive clients: tcpvsd RSS {before} KiB -> {after} KiB, "
      f"{(after - before) * 1024 / n:.0f} bytes per connection")
PY
