#!/usr/bin/env bash
# Failover under load (issue #15's "Done when"): wrk through tcpvsd in front
# of three nginx backends (1 KiB file; wlc, HTTP check every 1 s, timeout
# 500 ms, rise 2, fall 3, slow start 5 s, retries 2). Backend 2 is killed
# (kill -9, a crash) KILL_AT seconds into the run and started again on the
# same port at RESTART_AT; `tcpvsadm -L` is polled every 100 ms meanwhile.
# Prints wrk's report, the failed requests out of the total, the seconds
# until backend 2 shows down and until it is back (and out of slow start),
# and tcpvsd's log lines about it (one down and one up are expected).
#
#   cargo build --release -p tcpvs -p tcpvsadm --bins
#   benches/failover.sh [TCPVSD [TCPVSADM]]   # default target/release/tcpvsd, tcpvsadm
#   DURATION=30s KILL_AT=8 RESTART_AT=16 KEEP=1 benches/failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TCPVSD=$(realpath "${1:-target/release/tcpvsd}")
TCPVSADM=$(realpath "${2:-target/release/tcpvsadm}")
DURATION=${DURATION:-30s}
KILL_AT=${KILL_AT:-8}
RESTART_AT=${RESTART_AT:-16}

source benches/lib.sh
install_missing wrk:wrk nginx:nginx-light
start_work failover

declare -a port dir nginx_pid
for b in 1 2 3; do
    port[b]=$(free_port)
    dir[b]="$work/nginx$b"
    mkdir -p "${dir[b]}/www"
    head -c 1024 /dev/urandom > "${dir[b]}/www/index.html"
    start_nginx_in "${dir[b]}" "${port[b]}"
    nginx_pid[b]=${pids[-1]}
done
victim="127.0.0.1:${port[2]}"

lb_port=$(free_port)
sock="$work/control.sock"
cat > "$work/tcpvsd.toml" <<CONF
log_level = "info"
access_log = false
control_socket = "$sock"
[[service]]
ident = "web"
listen = "127.0.0.1:$lb_port"
scheduler = "wlc"
retries = 2
slowstart = "5s"
  [service.check]
  type = "http"
  interval = "1s"
  timeout = "500ms"
  rise = 2
  fall = 3
$(for b in 1 2 3; do printf '  [[service.server]]\n  address = "127.0.0.1:%s"\n  weight = 1\n' "${port[b]}"; done)
CONF
"$TCPVSD" --config "$work/tcpvsd.toml" > "$work/tcpvsd.log" 2>&1 &
pids+=($!)
for b in 1 2 3; do wait_port "${port[b]}"; done
wait_port "$lb_port"

now() { date +%s.%N; }
# sleep_until EPOCH_SECONDS
sleep_until() { sleep "$(awk -v t="$1" -v now="$(now)" 'BEGIN {d = t - now; printf "%.3f", (d > 0 ? d : 0)}')"; }
# Backend 2's health (and last check) from the listing, one timestamped line per poll.
poll_health() {
    while :; do
        printf '%s %s\n' "$(now)" "$(timeout 2 "$TCPVSADM" --socket "$sock" -L -n 2>&1 |
            awk -v addr="$victim" '$1 == "->" && $2 == addr {$1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print}')"
        sleep 0.1
    done
}
# seconds_until SINCE REGEX: from SINCE to the first poll at or after it whose
# health matches REGEX ("never" if none did).
seconds_until() {
    awk -v t="$1" -v re="$2" '$1 >= t && substr($0, index($0, " ") + 1) ~ re {
        printf "%.1f", $1 - t; found = 1; exit
    } END {if (!found) print "never"}' "$work/poll.log"
}
forget_pid() {
    local keep=() pid
    for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
    pids=("${keep[@]}")
}

poll_health > "$work/poll.log" &
poller=$!
pids+=($poller)
start=$(now)
wrk -t2 -c32 -d"$DURATION" --latency "http://127.0.0.1:$lb_port/index.html" > "$work/wrk.out" 2>&1 &
wrk_pid=$!
pids+=($wrk_pid)

sleep_until "$(awk -v s="$start" -v d="$KILL_AT" 'BEGIN {printf "%.3f", s + d}')"
killed=$(now)
# (The braces keep bash's "Killed" notice off the report.)
{ kill -9 "${nginx_pid[2]}"; wait "${nginx_pid[2]}" || true; } 2>/dev/null
forget_pid "${nginx_pid[2]}"

sleep_until "$(awk -v s="$start" -v d="$RESTART_AT" 'BEGIN {printf "%.3f", s + d}')"
start_nginx_in "${dir[2]}" "${port[2]}"
restarted=$(now)

wait "$wrk_pid" || true
kill "$poller"
wait "$poller" 2>/dev/null || true
forget_pid "$poller"

cat "$work/wrk.out"
total=$(awk '/requests in/ {print $1}' "$work/wrk.out")
non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk.out")
errors=$(awk -F'[ ,]+' '/Socket errors:/ {print $4 + $6 + $8 + $10}' "$work/wrk.out")
failed=$((${non2xx:-0} + ${errors:-0}))
echo
echo "backend 2 ($victim) killed at ${KILL_AT}s, restarted at ${RESTART_AT}s, of $DURATION"
printf 'requests %s, non-2xx %s, socket errors %s: failed %s (%s%%)\n' \
    "${total:-0}" "${non2xx:-0}" "${errors:-0}" "$failed" \
    "$(awk -v f="$failed" -v t="${total:-0}" 'BEGIN {printf "%.4f", t ? 100 * f / t : 0}')"
echo "seconds from the kill until it shows down:        $(seconds_until "$killed" '^down')"
echo "  ... until its check says down (not failures):  $(seconds_until "$killed" '^down($| [^(])')"
echo "seconds from the restart until it takes work:     $(seconds_until "$restarted" '^(up|slowstart)')"
echo "  ... until its slow start ends (up):            $(seconds_until "$restarted" '^up')"
echo "its health as polled, at each change (seconds since the start of wrk; slow start's steps left out):"
awk -v s="$start" '{health = substr($0, index($0, " ") + 1); sub(/ (L[47]|agent).*/, "", health); sub(/[0-9]+%/, "", health)}
    health != last {printf "  %6.1f %s\n", $1 - s, substr($0, index($0, " ") + 1); last = health}' "$work/poll.log"
lines=$(grep -F "$victim" "$work/tcpvsd.log" | grep 'server is' || true)
echo "tcpvsd's log about it: $(grep -c 'server is down' <<<"$lines" || true) down line(s), $(grep -c 'server is up' <<<"$lines" || true) up line(s)"
[ -z "$lines" ] || sed 's/^/  /' <<<"$lines"
