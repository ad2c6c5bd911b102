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

declare -A PORT PID
for name in A B; do
    PORT[$name]=$(free_port)
    cat > "$work/$name.toml" <<CONF
workers = $WORKERS
log_level = "info"
access_log = true
[[service]]
ident = "log"
listen = "127.0.0.1:${PORT[$name]}"
  [[service.server]]
  address = "127.0.0.1:$NGINX_PORT"
CONF
    if [ "$name" = A ]; then
        "$TCPVSD" --config "$work/A.toml" --control-socket "$work/A.sock" \
            > "$work/A.out" 2>&3 & pids+=($!)
    else
        "$TCPVSD" --config "$work/B.toml" --control-socket "$work/B.sock" \
            > "$work/B.out" 2> "$work/drained.fifo" & pids+=($!)
    fi
    PID[$name]=$!
done
wait_port "$NGINX_PORT"; wait_port "${PORT[A]}"; wait_port "${PORT[B]}"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A RPS CPU
echo "wrk -t1 -c64 -d$DURATION (1024 bytes), $ROUNDS rounds, $WORKERS worker(s), access log on;"
echo "A: stderr into a FIFO nobody reads, B: stderr drained; tcpvsd=$TCPVSD"
for round in $(seq "$ROUNDS"); do
    for name in A B; do
        before=$(cpu_ticks "${PID[$name]}")
        out=$(wrk -t1 -c64 -d"$DURATION" "http://127.0.0.1:${PORT[$name]}/index.html")
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
printf 'medians: A (stalled) %.0f req/s %.1f us/req, B (drained) %.0f req/s %.1f us/req, A/B %.2f\n' \
    "$a" "$(median "${CPU[A]}")" "$b" "$(median "${CPU[B]}")" "$(awk -v a="$a" -v b="$b" 'BEGIN {print a/b}')"
if [ -x "$TCPVSADM" ]; then
    for name in A B; do
        echo "$name: $("$TCPVSADM" --socket "$work/$name.sock" -L --stats | grep 'log lines dropped')"
    done
fi
