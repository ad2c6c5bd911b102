#!/usr/bin/env bash
# tcpvsd against HAProxy and nginx on the same machine, in several scenarios,
# as ratios (issue #7). One nginx backend serves static files of 1 KiB, 64 KiB
# and 1 MiB; in front of it run tcpvsd, HAProxy (mode http, http-reuse always)
# and a second nginx as a reverse proxy (upstream keepalive), each with WORKERS
# threads/worker processes and no access log; the backend reached directly is
# the reference row. The floor (floor.c) is the second reference: a relay
# that pairs each client with its own backend connection and copies bytes,
# with no parsing at all, i.e. only the socket calls every proxy must make;
# what it reaches is what this kernel and these cores allow any proxy. It
# runs in the keep-alive scenarios only: it has no pool, so with a new client
# connection per request it connects to the backend each time, which no proxy
# here does. All three proxies add X-Forwarded-For (HAProxy `option
# forwardfor`, nginx `proxy_set_header X-Forwarded-For`), as tcpvsd always
# does: the same work for them and the same request for the backend. In
# every scenario the targets take turns (A B C A B C ...) for ROUNDS rounds of
# `wrk -t1 -cCONNS -dDURATION --latency`, so that machine noise hits them
# alike, and the medians are reported:
#
#   1k        1 KiB keep-alive
#   1k-close  1 KiB with `Connection: close`: a new client connection per request
#   64k       64 KiB keep-alive
#   1m        1 MiB keep-alive (MB/s)
#   rules50   1 KiB keep-alive through tcpvsd with 50 non-matching content rules
#             before the catch-all `^/`, against tcpvsd with the catch-all only
#   idle10k   IDLE_CLIENTS (10 000) keep-alive clients, each served once, then
#             held idle: RSS growth of each proxy (and the backend) per connection
#
# Per target: req/s, MB/s, p50/p99 latency, CPU time per request of the proxy
# (utime+stime from /proc/PID/stat over the run / requests; nginx-proxy: master
# and workers; nginx-direct: the backend itself), RSS after the scenario (nginx-
# proxy: its workers), wrk socket errors and non-2xx responses, and for each
# proxy the ratio against the best OTHER proxy. Prints a table per scenario and
# the #7 targets met or missed, and writes JSON (OUT, default target/compare.json).
#
#   benches/compare/run.sh                                 # everything: ~17 min
#   ROUNDS=1 DURATION=2s SCENARIOS=1k benches/compare/run.sh   # a quick look
#   WORKERS=2 CONNS=128 OUT=/tmp/c.json benches/compare/run.sh
#   TCPVSD=/path/to/tcpvsd benches/compare/run.sh          # that binary, no build
#
# Needs wrk, nginx, haproxy, curl, gcc and python3 (missing ones installed with apt-get).
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-1}           # tcpvsd workers, haproxy nbthread, nginx-proxy worker_processes
SCENARIOS=${SCENARIOS:-1k 1k-close 64k 1m rules50 idle10k}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
OUT=${OUT:-target/compare.json}
TCPVSD=${TCPVSD:-}              # a tcpvsd binary to use instead of building one
# tcpvsd's listeners defer accepts until the client's first bytes
# (TCP_DEFER_ACCEPT); by default the two proxies and the backend do the same
# (HAProxy `defer-accept`, nginx `deferred`), so every target sees a new
# connection with its request. PEER_DEFER=0 leaves them at their defaults.
PEER_DEFER=${PEER_DEFER:-1}
HAPROXY_DEFER=""; NGINX_DEFER=""
if [ "$PEER_DEFER" = 1 ]; then HAPROXY_DEFER=" defer-accept"; NGINX_DEFER=" deferred"; fi
bench_dir=benches/compare

for scenario in $SCENARIOS; do
    case $scenario in
        1k|1k-close|64k|1m|rules50|idle10k) ;;
        *) echo "unknown scenario '$scenario' (1k 1k-close 64k 1m rules50 idle10k)" >&2; exit 2 ;;
    esac
done

# shellcheck source=SCRIPTDIR/../lib.sh
source benches/lib.sh
install_missing wrk:wrk haproxy:haproxy nginx:nginx-light curl:curl python3:python3-minimal gcc:gcc
# Every proxy (and the idle client) holds IDLE_CLIENTS sockets at once, and
# HAProxy wants two per connection it allows (a client and a server side):
# raise the hard limit to that where we may (CAP_SYS_RESOURCE; not on the
# 2-core VM the README figures come from, where HAProxy warns that 20 000 is
# too few for maxconn 11 000 and holds the 10 000 idle clients anyway), else
# use what there is.
want_files=$((2 * (IDLE_CLIENTS + 1000) + 100))
[ "$(ulimit -Hn)" -ge "$want_files" ] || ulimit -Hn "$want_files" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [[ " $SCENARIOS " == *" idle10k "* ]] && [ "$(ulimit -n)" -lt $((IDLE_CLIENTS + 500)) ]; then
    echo "idle10k needs more than $IDLE_CLIENTS open files; ulimit -Hn is $(ulimit -Hn)" >&2
    exit 1
fi
if [ -z "$TCPVSD" ]; then
    cargo build --release -q --bin tcpvsd
    TCPVSD=target/release/tcpvsd
fi
load_before=$(cat /proc/loadavg)
start_work compare
# The binary measured stays the same even if the build directory changes meanwhile.
cp "$TCPVSD" "$work/tcpvsd"
gcc -O2 -Wall -o "$work/floor" "$bench_dir/floor.c"

BACKEND=$(free_port); TCPVS=$(free_port); TCPVS_R1=$(free_port); TCPVS_R50=$(free_port)
HAPROXY=$(free_port); NPROXY=$(free_port); FLOOR=$(free_port)
mkdir -p "$work/www" "$work/nproxy" "$work/wrk"
declare -A FILE_BYTES=([1k]=1024 [64k]=65536 [1m]=1048576)
for name in "${!FILE_BYTES[@]}"; do
    head -c "${FILE_BYTES[$name]}" /dev/urandom > "$work/www/$name.bin"
done

# --- tcpvsd: the plain service, and the same with 1 rule and with 50 rules
pattern() {   # a content rule that /1k.bin does not match, of five kinds
    case $(($1 % 5)) in
        0) echo "^/api/v$1/" ;;
        1) echo "^/static$1/.*\\.(css|js)\$" ;;
        2) echo "\\.php$1\$" ;;
        3) echo "^/users/[0-9]+/item$1\$" ;;
        4) echo "(?i)^/download$1/" ;;
    esac
}
service() {   # service IDENT PORT RULES: RULES non-matching rules, then ^/ unless RULES is -
    printf '[[service]]\nident = "%s"\nlisten = "127.0.0.1:%s"\nscheduler = "wlc"\n' "$1" "$2"
    printf '  [[service.server]]\n  address = "127.0.0.1:%s"\n' "$BACKEND"
    [ "$3" = - ] && return
    local i
    for ((i = 0; i < $3; i++)); do
        printf "  [[service.rule]]\n  pattern = '%s'\n  servers = [\"127.0.0.1:%s\"]\n" "$(pattern "$i")" "$BACKEND"
    done
    printf "  [[service.rule]]\n  pattern = '^/'\n  servers = [\"127.0.0.1:%s\"]\n" "$BACKEND"
}
{
    printf 'workers = %s\nlog_level = "warn"\naccess_log = false\n' "$WORKERS"
    printf '[timeouts]\nkeepalive = "10m"\n'
    service bench "$TCPVS" -
    service rules1 "$TCPVS_R1" 0
    service rules50 "$TCPVS_R50" 50
} > "$work/tcpvsd.toml"
"$work/tcpvsd" --config "$work/tcpvsd.toml" --check >/dev/null

# --- HAProxy. It wants 2 descriptors per connection allowed (a client and a
# server side); idle clients need only one, so it runs with what ulimit -Hn
# gives (\`no strict-limits\`: a warning, not a failure, when that is less).
cat > "$work/haproxy.cfg" <<CONF
global
    nbthread $WORKERS
    maxconn $((IDLE_CLIENTS + 1000))
    no strict-limits
defaults
    mode http
    maxconn $((IDLE_CLIENTS + 1000))
    http-reuse always
    timeout connect 3s
    timeout client 10m
    timeout server 60s
    timeout http-keep-alive 10m
frontend bench
    bind 127.0.0.1:$HAPROXY$HAPROXY_DEFER
    option forwardfor
    default_backend nginx
backend nginx
    server n1 127.0.0.1:$BACKEND
CONF

# --- nginx as a reverse proxy: master + WORKERS workers (as root, the workers
# keep root so that they can write the proxy temp files in $work)
cat > "$work/nproxy/nginx.conf" <<CONF
daemon off; master_process on; worker_processes $WORKERS;
user root;
pid $work/nproxy/nginx.pid; error_log $work/nproxy/error.log warn;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $((IDLE_CLIENTS + 1000)); }
http {
    access_log off;
    client_body_temp_path $work/nproxy/body; proxy_temp_path $work/nproxy/proxy;
    fastcgi_temp_path $work/nproxy/fcgi; uwsgi_temp_path $work/nproxy/uwsgi; scgi_temp_path $work/nproxy/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 10m;
    upstream backend {
        server 127.0.0.1:$BACKEND;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$NPROXY$NGINX_DEFER;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF

start_nginx "$BACKEND" $((IDLE_CLIENTS + 1000)) "$NGINX_DEFER"; backend_pid=${pids[-1]}
"$work/tcpvsd" --config "$work/tcpvsd.toml" --control-socket "$work/control.sock" \
    > "$work/tcpvsd.out" 2>&1 & pids+=($!); tcpvsd_pid=$!
haproxy -f "$work/haproxy.cfg" > "$work/haproxy.out" 2>&1 & pids+=($!); haproxy_pid=$!
"$(command -v nginx || echo /usr/sbin/nginx)" -c "$work/nproxy/nginx.conf" -p "$work/nproxy" \
    > "$work/nproxy/out" 2>&1 & pids+=($!); nproxy_pid=$!
"$work/floor" "$FLOOR" "$BACKEND" > "$work/floor.out" 2>&1 & pids+=($!); floor_pid=$!
for port in "$BACKEND" "$TCPVS" "$TCPVS_R1" "$TCPVS_R50" "$HAPROXY" "$NPROXY" "$FLOOR"; do wait_port "$port"; done

declare -A PORT=([nginx-direct]=$BACKEND [tcpvsd]=$TCPVS [haproxy]=$HAPROXY [nginx-proxy]=$NPROXY
                 [tcpvsd-1rule]=$TCPVS_R1 [tcpvsd-50rules]=$TCPVS_R50 [floor]=$FLOOR)
nproxy_workers() { cat "/proc/$nproxy_pid/task/$nproxy_pid/children"; }
# cpu_pids TARGET: whose CPU time a run through TARGET costs.
cpu_pids() {
    case $1 in
        nginx-direct) echo "$backend_pid" ;;
        tcpvsd*) echo "$tcpvsd_pid" ;;
        haproxy) echo "$haproxy_pid" ;;
        nginx-proxy) echo "$nproxy_pid $(nproxy_workers)" ;;
        floor) echo "$floor_pid" ;;
    esac
}
# rss_pids TARGET: whose memory is reported (nginx-proxy: the workers).
rss_pids() {
    if [ "$1" = nginx-proxy ]; then nproxy_workers; else cpu_pids "$1"; fi
}
cpu_ticks() {   # "UTIME STIME" summed over the PIDs given, in clock ticks
    local pid user=0 system=0 stat
    for pid in "$@"; do
        stat=$(< "/proc/$pid/stat")
        stat=${stat##*) }   # past the command name, which may hold spaces
        read -r -a fields <<<"$stat"
        user=$((user + fields[11])); system=$((system + fields[12]))   # fields 14 and 15 of stat
    done
    echo "$user $system"
}
machine_ticks() {   # "BUSY IDLE" of all CPUs together, in clock ticks (/proc/stat)
    local _ user nice system idle iowait irq softirq steal
    read -r _ user nice system idle iowait irq softirq steal _ < /proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((idle + iowait))"
}
rss_kb() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# Every target answers every file with 200 and the right bytes, before any
# measuring (and once with Connection: close).
for target in nginx-direct floor tcpvsd haproxy nginx-proxy tcpvsd-1rule tcpvsd-50rules; do
    for name in 1k 64k 1m; do
        for header in "Connection: keep-alive" "Connection: close"; do
            [ "$name" != 1k ] && [ "$header" = "Connection: close" ] && continue
            got=$(curl -sS --max-time 10 -H "$header" -o "$work/check.bin" -w '%{http_code} %{size_download}' \
                "http://127.0.0.1:${PORT[$target]}/$name.bin") || got="curl failed: $?"
            if [ "$got" != "200 ${FILE_BYTES[$name]}" ] || ! cmp -s "$work/check.bin" "$work/www/$name.bin"; then
                echo "FAIL: $target /$name.bin ($header): got '$got', want '200 ${FILE_BYTES[$name]}' and the file's bytes" >&2
                for log in "$work/tcpvsd.out" "$work/haproxy.out" "$work/nproxy/error.log" "$work/nginx.err"; do
                    [ -s "$log" ] && { echo "--- $log" >&2; tail -5 "$log" >&2; }
                done
                exit 1
            fi
        done
    done
done
echo "checked: every target answers /1k.bin, /64k.bin, /1m.bin with 200 and the file's bytes"

nginx_version=$("$(command -v nginx || echo /usr/sbin/nginx)" -v 2>&1 || true)
read -r _ _ haproxy_version _ < <(haproxy -v 2>&1 || true); haproxy_version="HAProxy $haproxy_version"
wrk_version=$(wrk -v 2>&1 || true); wrk_version=${wrk_version%% \[*}
# The commit tcpvsd was built from, "+changes" when its sources differ from it.
tcpvsd_version="tcpvsd $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || tcpvsd_version+="+changes"
echo "machine: $(nproc) x $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), load average $load_before"
echo "$tcpvsd_version; $nginx_version; $haproxy_version; $wrk_version"
echo "targets: nginx-direct :$BACKEND, floor :$FLOOR, tcpvsd :$TCPVS, haproxy :$HAPROXY, nginx-proxy :$NPROXY; threads/workers per proxy: $WORKERS; peers defer accepts: $PEER_DEFER"
echo "each run: wrk -t1 -c$CONNS -d$DURATION --latency; $ROUNDS rounds; scenarios: $SCENARIOS"

rounds_file=$work/rounds.jsonl; extra_file=$work/extra.jsonl
: > "$rounds_file"; : > "$extra_file"

# measure SCENARIO PATH HEADER TARGET...: ROUNDS interleaved rounds of wrk.
measure() {
    local scenario=$1 path=$2 header=$3 round target before after out
    shift 3
    local header_args=()
    [ -n "$header" ] && header_args=(-H "$header")
    echo
    echo "--- $scenario (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for round in $(seq "$ROUNDS"); do
        for target in "$@"; do
            out=$work/wrk/$scenario.$target.$round.txt
            # Also the backend's and the whole machine's time: what the load
            # generator and the backend cost per request bounds what any
            # proxy can reach on these shared cores (the CPU budget).
            # shellcheck disable=SC2046 # pid lists
            before="$(cpu_ticks $(cpu_pids "$target")) $(cpu_ticks "$backend_pid") $(machine_ticks)"
            wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${header_args[@]}" \
                "http://127.0.0.1:${PORT[$target]}$path" > "$out"
            # shellcheck disable=SC2046
            after="$(cpu_ticks $(cpu_pids "$target")) $(cpu_ticks "$backend_pid") $(machine_ticks)"
            python3 "$bench_dir/report.py" round "$scenario" "$target" "$round" "$out" \
                "$before" "$after" "$rounds_file"
        done
    done
    for target in "$@"; do
        # shellcheck disable=SC2046
        printf '{"scenario": "%s", "target": "%s", "rss_kb": %d}\n' "$scenario" "$target" \
            "$(rss_kb $(rss_pids "$target"))" >> "$extra_file"
    done
}

proxies=(nginx-direct tcpvsd haproxy nginx-proxy)
for scenario in $SCENARIOS; do
    case $scenario in
        1k) measure 1k /1k.bin "" "${proxies[@]}" floor ;;
        1k-close) measure 1k-close /1k.bin "Connection: close" "${proxies[@]}" ;;
        64k) measure 64k /64k.bin "" "${proxies[@]}" floor ;;
        1m) measure 1m /1m.bin "" "${proxies[@]}" floor ;;
        rules50) measure rules50 /1k.bin "" tcpvsd-1rule tcpvsd-50rules ;;
        idle10k)
            echo
            echo "--- idle10k: $IDLE_CLIENTS idle keep-alive clients per target (load average $(cut -d' ' -f1-3 /proc/loadavg))"
            for target in "${proxies[@]}"; do
                # shellcheck disable=SC2046
                python3 "$bench_dir/idle_client.py" "$target" "${PORT[$target]}" /1k.bin "$IDLE_CLIENTS" \
                    $(rss_pids "$target") >> "$extra_file"
                sleep 1   # let the closes settle before the next target
            done ;;
    esac
done

for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: process $pid died during the run" >&2; exit 1; }
done
# What the servers said besides their start-up lines (warnings, errors).
for log in "$work/nginx.err" "$work/tcpvsd.out" "$work/haproxy.out" "$work/nproxy/out" "$work/nproxy/error.log" "$work/floor.out"; do
    said=$(grep -Ev '^tcpvsd: (control socket|service )|NOTICE' "$log" || true)
    [ -z "$said" ] || printf '\n%s:\n%s\n' "${log#"$work"/}" "$(head -20 <<<"$said")"
done
CMP_LOAD_BEFORE=$load_before CMP_LOAD_AFTER=$(cat /proc/loadavg) \
CMP_NGINX_VERSION=$nginx_version CMP_HAPROXY_VERSION=$haproxy_version CMP_WRK_VERSION=$wrk_version \
CMP_TCPVSD_VERSION=$tcpvsd_version CMP_ROUNDS=$ROUNDS CMP_DURATION=$DURATION CMP_CONNS=$CONNS \
CMP_WORKERS=$WORKERS CMP_SCENARIOS=$SCENARIOS CMP_PEER_DEFER=$PEER_DEFER \
    python3 "$bench_dir/report.py" final "$rounds_file" "$extra_file" "$OUT"
