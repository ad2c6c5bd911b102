#!/usr/bin/env bash
# Throughput of the same nginx reached directly, through tcpvsd, and through
# HAProxy (mode http), measured with wrk in interleaved rounds (A B C A B C ...)
# so that machine noise hits all three alike. Reports the median of the rounds
# and the ratios, the CPU time spent per request by the proxy (by nginx itself
# for the direct runs), plus wrk's error and non-2xx counts.
#
#   benches/compare.sh                 # 3 rounds of 10 s, 64 connections
#   ROUNDS=5 DURATION=10s CONNS=64 WORKERS=1 benches/compare.sh
#   HEADER="Connection: close" benches/compare.sh   # a new connection per request
#   BODY_BYTES=65536 benches/compare.sh               # 64 KiB responses
#
# Needs nginx, haproxy and wrk (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-1}          # proxy threads (tcpvsd workers, haproxy nbthread)
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/index.html}
BODY_BYTES=${BODY_BYTES:-612}    # size of the static file served
HEADER=${HEADER:-}             # e.g. HEADER="Connection: close": a new connection per request
header_args=()
[ -n "$HEADER" ] && header_args=(-H "$HEADER")

source benches/lib.sh
install_missing wrk:wrk haproxy:haproxy nginx:nginx-light
cargo build --release -q --bin tcpvsd
start_work compare

NGINX_PORT=$(free_port); TCPVS_PORT=$(free_port); HAPROXY_PORT=$(free_port)
mkdir -p "$work/www"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' > "$work/www/index.html"

cat > "$work/tcpvsd.toml" <<CONF
workers = $WORKERS
log_level = "warn"
access_log = false
[[service]]
ident = "bench"
listen = "127.0.0.1:$TCPVS_PORT"
scheduler = "wlc"
  [[service.server]]
  address = "127.0.0.1:$NGINX_PORT"
CONF
cat > "$work/haproxy.cfg" <<CONF
global
    nbthread $WORKERS
    maxconn 4000
defaults
    mode http
    timeout connect 3s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend nginx
backend nginx
    server n1 127.0.0.1:$NGINX_PORT
CONF

start_nginx "$NGINX_PORT"
target/release/tcpvsd --config "$work/tcpvsd.toml" --control-socket "$work/control.sock" \
    > "$work/tcpvsd.out" & pids+=($!)
haproxy -f "$work/haproxy.cfg" -q & pids+=($!)
wait_port "$NGINX_PORT"; wait_port "$TCPVS_PORT"; wait_port "$HAPROXY_PORT"

declare -A PORT=([nginx-direct]=$NGINX_PORT [tcpvsd]=$TCPVS_PORT [haproxy]=$HAPROXY_PORT)
# Whose CPU time a run costs: the server answering wrk (nginx itself when direct).
declare -A PID=([nginx-direct]=${pids[0]} [tcpvsd]=${pids[1]} [haproxy]=${pids[2]})
names=(nginx-direct tcpvsd haproxy)
declare -A RPS ERR NON2XX CPU
for name in "${names[@]}"; do RPS[$name]=""; ERR[$name]=0; NON2XX[$name]=0; CPU[$name]=""; done
# utime + stime of a process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "wrk -t1 -c$CONNS -d$DURATION ${HEADER:+-H '$HEADER' }http://127.0.0.1:PORT$PATH_UNDER_TEST ($BODY_BYTES bytes), $ROUNDS rounds, proxy threads: $WORKERS"
for round in $(seq "$ROUNDS"); do
    for name in "${names[@]}"; do
        before=$(cpu_ticks "${PID[$name]}")
        out=$(wrk -t1 -c"$CONNS" -d"$DURATION" "${header_args[@]}" "http://127.0.0.1:${PORT[$name]}$PATH_UNDER_TEST")
        after=$(cpu_ticks "${PID[$name]}")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        # CPU microseconds the proxy (or nginx, when direct) spent per request.
        cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$requests" \
            'BEGIN {printf "%.1f", t * 1e6 / hz / r}')
        CPU[$name]+="$cpu "
        errors=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' <<<"$out")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
        RPS[$name]+="$rps "
        ERR[$name]=$(( ${ERR[$name]} + ${errors:-0} ))
        NON2XX[$name]=$(( ${NON2XX[$name]} + ${non2xx:-0} ))
        printf '  round %d %-13s %10s req/s  %6s us cpu/req  socket errors %s  non-2xx %s\n' \
            "$round" "$name" "$rps" "$cpu" "${errors:-0}" "${non2xx:-0}"
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
printf '%-13s %12s %10s %16s %14s %8s\n' target "median req/s" "vs direct" "median us cpu/req" "socket errors" non-2xx
direct=$(median "${RPS[nginx-direct]}")
for name in "${names[@]}"; do
    m=$(median "${RPS[$name]}")
    printf '%-13s %12.0f %10.2f %16.1f %14d %8d\n' "$name" "$m" "$(awk -v a="$m" -v b="$direct" 'BEGIN {print a/b}')" \
        "$(median "${CPU[$name]}")" "${ERR[$name]}" "${NON2XX[$name]}"
done
t=$(median "${RPS[tcpvsd]}"); h=$(median "${RPS[haproxy]}")
printf 'tcpvsd / haproxy = %.2f\n' "$(awk -v a="$t" -v b="$h" 'BEGIN {print a/b}')"
