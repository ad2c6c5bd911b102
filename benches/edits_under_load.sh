#!/usr/bin/env bash
# Live table edits under a steady load: wrk drives the demo service while
# tcpvsadm drains and restores a server, adds and deletes rules and services,
# and switches schedulers, in a loop, for the whole run. Reports wrk's socket
# errors and non-2xx responses (both must be 0) and how many edits were made.
#
#   benches/edits_under_load.sh            # wrk -t1 -c64 -d10s
#   DURATION=30s CONNS=128 benches/edits_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
source benches/lib.sh
install_missing wrk:wrk
cargo build --release -q --workspace
start_work edits
port=$(free_port)
sock="$work/control.sock"
target/release/tcpvsd --demo --listen "127.0.0.1:$port" --control-socket "$sock" \
    --log-level warn > "$work/demo.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/demo.out" 2>/dev/null && break; sleep 0.05; done
read -r s1 s2 < <(awk '/pool static/ {print $3, $4}' "$work/demo.out")
adm() { target/release/tcpvsadm --socket "$sock" "$@"; }

wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$port/index.html" > "$work/wrk.out" &
wrk_pid=$!
edits=0
sleep 0.5
while kill -0 "$wrk_pid" 2>/dev/null; do
    adm -e -i web -r "$s1" -w 0            # drain one static server
    adm -e -i web -r "$s1" -w 1            # and bring it back
    adm --add-rule -i web -p "^/tmp$edits/" -r "$s2"
    adm --del-rule -i web -p "^/tmp$edits/" -r "$s2"
    adm -A -i extra -l 127.0.0.1:0 -s rr   # a service comes and goes
    adm -a -i extra -r "$s1"
    adm -D -i extra
    adm -E -i web -s rr                    # scheduler switch and back
    adm -E -i web -s wlc
    edits=$((edits + 9))
done
wait "$wrk_pid"

cat "$work/wrk.out"
errors=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$work/wrk.out")
non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk.out")
echo
echo "edits applied during the run: $edits"
echo "socket errors: ${errors:-0}   non-2xx: ${non2xx:-0}"
adm -L | head -3
[ "${errors:-0}" -eq 0 ] && [ "${non2xx:-0}" -eq 0 ]
