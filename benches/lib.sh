# shellcheck shell=bash
# Shared steps of the benchmark scripts (sourced, not run): installing what a
# script needs from Debian, a work directory cleaned up with the processes it
# started, free loopback ports, and an nginx serving a directory.

# install_missing COMMAND:PACKAGE ...: installs the packages whose command is missing.
install_missing() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    # Keep the packages' own services from starting (and taking port 80).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    rm -f /usr/sbin/policy-rc.d
}

# start_work NAME: sets $work (a new directory) and $pids (add the processes you
# start); both are cleaned up on exit (KEEP=1 keeps the directory).
start_work() {
    work=$(mktemp -d "/tmp/tcpvs-$1.XXXXXX")
    pids=()
    # shellcheck disable=SC2154 # pid is the loop variable inside the trap
    trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
          wait 2>/dev/null || true
          [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    exit 1
}

# start_nginx PORT [WORKER_CONNECTIONS]: nginx serving $work/www on
# 127.0.0.1:PORT, one process (4096 connections unless told), keep-alive
# connections never closed by request count; a third argument is added to
# the listen directive (" deferred").
start_nginx() {
    start_nginx_in "$work" "$@"
}

# start_nginx_in DIR PORT [WORKER_CONNECTIONS] [LISTEN_SUFFIX]: the same
# nginx, serving DIR/www with its configuration, pid and logs in DIR, so that
# several can run side by side (and one be started again in its directory).
start_nginx_in() {
    local dir=$1; shift
    cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $dir/nginx.pid; error_log $dir/nginx.err warn;
events { worker_connections ${2:-4096}; }
http {
    access_log off;
    client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
    keepalive_requests 100000000;
    server { listen 127.0.0.1:$1${3:-}; root $dir/www; }
}
CONF
    "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/nginx.conf" -p "$dir" &
    pids+=($!)
}
