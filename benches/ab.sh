#!/usr/bin/env bash
# Before/after: two tcpvsd binaries in front of the same nginx, measured in
# turns (A B A B ...) with wrk, so that machine noise hits both alike. Prints
# each round and the medians of req/s and CPU microseconds per request.
#
#   benches/ab.sh OLD_TCPVSD NEW_TCPVSD
#   ROUNDS=5 DURATION=5s BODY_BYTES=1024 HEADER="Connection: close" benches/ab.sh A B
#
# Build the "before" binary from another work tree (git worktree add ...).
set -euo pipefail
cd "$(dirname "$0")/.."

A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5s}
BODY_BYTES=${BODY_BYTES:-1024}
HEADER=${HEADER:-}
header_args=()
[ -n "$HEADER" ] && header_args=(-H "$HEADER")

source benches/lib.sh
install_missing wrk:wrk nginx:nginx-light
start_work ab

NGINX_PORT=$(free_port)
mkdir -p "$work/www"
head -c "$BODY_BYTES" /dev/urandom > "$work/www/index.html"
start_nginx "$NGINX_PORT"
declare -A PORT PID
for name in A B; do
    PORT[$name]=$(free_port)
    cat > "$work/$name.toml" <<CONF
workers = 1
log_level = "warn"
access_log = false
[[service]]
ident = "ab"
listen = "127.0.0.1:${PORT[$name]}"
  [[service.server]]
  address = "127.0.0.1:$NGINX_PORT"
CONF
    binary=$([ "$name" = A ] && echo "$A" || echo "$B")
    "$binary" --config "$work/$name.toml" --control-socket "$work/$name.sock" \
        > "$work/$name.out" 2>&1 & pids+=($!)
    PID[$name]=$!
done
wait_port "$NGINX_PORT"; wait_port "${PORT[A]}"; wait_port "${PORT[B]}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A RPS CPU
echo "wrk -t1 -c64 -d$DURATION ${HEADER:+-H '$HEADER' }($BODY_BYTES bytes), $ROUNDS rounds; A=$A B=$B"
for round in $(seq "$ROUNDS"); do
    for name in A B; do
        before=$(cpu_ticks "${PID[$name]}")
        out=$(wrk -t1 -c64 -d"$DURATION" "${header_args[@]}" "http://127.0.0.1:${PORT[$name]}/index.html")
        after=$(cpu_ticks "${PID[$name]}")
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$requests" \
            'BEGIN {printf "%.1f", t * 1e6 / hz / r}')
        errors=$(grep -E 'Socket errors|Non-2xx' <<<"$out" || true)
        RPS[$name]+="$rps "; CPU[$name]+="$cpu "
        printf '  round %d %s %10s req/s %6s us cpu/req %s\n' "$round" "$name" "$rps" "$cpu" "$errors"
    done
done
a=$(median "${RPS[A]}"); b=$(median "${RPS[B]}")
printf 'medians: A %.0f req/s %.1f us/req, B %.0f req/s %.1f us/req, B/A %.2f\n' \
    "$a" "$(median "${CPU[A]}")" "$b" "$(median "${CPU[B]}")" "$(awk -v a="$a" -v b="$b" 'BEGIN {print b/a}')"
