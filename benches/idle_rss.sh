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
source benches/lib.sh
install_missing nginx:nginx-light
ulimit -n "$(ulimit -Hn)"   # tcpvsd and the client each hold CLIENTS sockets
cargo build --release -q --bin tcpvsd
start_work idle

NGINX_PORT=$(free_port); TCPVS_PORT=$(free_port)
mkdir -p "$work/www"; echo hello > "$work/www/index.html"
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
start_nginx "$NGINX_PORT"
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
