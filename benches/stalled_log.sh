#!/usr/bin/env bash
# Requests per second through tcpvsd with access logging on, when its
# standard error goes into a FIFO that nobody reads (A, stalled) against the
# same when a `cat > /dev/null` drains it (B, drained): two tcpvsd in front of
# one nginx, measured with wrk in turns (A B A B ...). Prints each round, the
# medians, and the log lines A dropped.
#
#   cargo build --release -p tcpvs --bins -p tcpvsadm
#   benches/stalled_log.sh [TCPVSD]
#   ROUNDS=5 DURATION=5s WORKERS=1 benches/stalled_log.sh target/release/tcpvsd
set -euo pipefail
cd "$(dirname "$0")/.."

TCPVSD=$(realpath "${1:-target/release/tcpvsd}")
TCPVSADM=$(dirname "$TCPVSD")/tcpvsadm
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5s}
WORKERS=${WORKERS:-1}

source benches/lib.sh
install_missing wrk:wrk nginx:nginx-light
start_work stalled-log

NGINX_PORT=$(free_port)
mkdir -p "$work/www"
head -c 1024 /dev/urandom > "$work/www/index.html"
start_nginx "$NGINX_PORT"

# A's FIFO held open read-write by this shell: tcpvsd's open does not wait
# for a reader, its writes never break the pipe, and nothing ever reads it.
mkfifo "$work/stalled.fifo" "$work/drained.fifo"
exec 3<>"$work/stalled.fifo"
cat "$work/drained.fifo" > /dev/null & pids+=($!)

# start NAME: a tcpvsd with access logging on, its standard error already
# redirected by the caller.
declare -A PORT PID
start() {
    PORT[$1]=$(free_port)
    printf '%s\n' "workers = $WORKERS" 'log_level = "info"' 'access_log = true' \
        '[[service]]' 'ident = "log"' "listen = \"127.0.0.1:${PORT[$1]}\"" \
        '[[service.server]]' "address = \"127.0.0.1:$NGINX_PORT\"" > "$work/$1.toml"
    "$TCPVSD" --config "$work/$1.toml" --control-socket "$work/$1.sock" > "$work/$1.out" &
    pids+=($!); PID[$1]=$!
}
start A 2>&3
start B 2> "$work/drained.fifo"
wait_port "$NGINX_PORT"; wait_port "${PORT[A]}"; wait_port "${PORT[B]}"

ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat"; }
# measure NAME: one wrk run against NAME; prints "REQ/S US_CPU_PER_REQ ERRORS".
measure() {
    local start out
    start=$(ticks "$1")
    out=$(wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:${PORT[$1]}/index.html")
    awk -v spent=$(($(ticks "$1") - start)) -v hz="$(getconf CLK_TCK)" '
        /^Requests\/sec:/ {rps = $2}
        /requests in/ {count = $1}
        /Socket errors|Non-2xx/ {errors = errors " " $0}
        END {printf "%s %.1f%s\n", rps, count ? spent * 1e6 / hz / count : 0, errors}' <<<"$out"
}
# middle VALUES...: their median.
middle() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {m = int((NR + 1) / 2); print NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2}'; }

declare -A RPS CPU
echo "wrk -t1 -c64 -d$DURATION (1024 bytes), $ROUNDS rounds, $WORKERS worker(s), access log on;"
echo "A: stderr into a FIFO nobody reads, B: stderr drained; tcpvsd=$TCPVSD"
for round in $(seq "$ROUNDS"); do
    for name in A B; do
        read -r rps cpu errors <<<"$(measure "$name")"
        RPS[$name]+="$rps "; CPU[$name]+="$cpu "
        printf '  round %d %s %10s req/s %6s us cpu/req %s\n' "$round" "$name" "$rps" "$cpu" "$errors"
    done
done
# shellcheck disable=SC2086 # the lists split into values
a=$(middle ${RPS[A]}); b=$(middle ${RPS[B]}); a_cpu=$(middle ${CPU[A]}); b_cpu=$(middle ${CPU[B]})
printf 'medians: A (stalled) %.0f req/s %.1f us/req, B (drained) %.0f req/s %.1f us/req, A/B %.2f\n' \
    "$a" "$a_cpu" "$b" "$b_cpu" "$(awk -v a="$a" -v b="$b" 'BEGIN {print a / b}')"
if [ -x "$TCPVSADM" ]; then
    for name in A B; do
        echo "$name: $("$TCPVSADM" --socket "$work/$name.sock" -L --stats | grep 'log lines dropped')"
    done
fi
