#!/usr/bin/env python3
"""Holds N idle keep-alive client connections to one target and reports how
much the target's resident memory grew per connection.

    idle_client.py TARGET PORT PATH N PID [PID...]

Each connection sends one GET PATH, reads the whole response (so it is a
keep-alive client that has been served, as a browser between two clicks),
then all N sit idle for a moment; the RSS (VmRSS) summed over the PIDs is
read before the first connection and after the last one, and the number of
connections the target closed meanwhile is counted (they would not be idle
clients any more). Prints one JSON object on stdout; progress on stderr.
Bounded: every socket operation has a 10 s timeout, the whole run 300 s.
"""
import json
import selectors
import socket
import sys
import time

SETTLE_S = 2.0
DEADLINE_S = 300.0


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def read_response(sock, request):
    """Sends request, reads one response (Content-Length framed); returns the status."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the response body")
        body += chunk
    return status


def main():
    target, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    pids = [int(p) for p in sys.argv[5:]]
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    start = time.monotonic()
    before = rss_kb(pids)
    conns = []
    non2xx = 0
    for i in range(n):
        if time.monotonic() - start > DEADLINE_S:
            sys.exit(f"idle10k {target}: only {i} connections after {DEADLINE_S:.0f} s")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if not 200 <= read_response(sock, request) < 300:
                non2xx += 1
        except OSError as error:
            sys.exit(f"idle10k {target}: connection {i + 1} of {n} failed: {error}")
        conns.append(sock)
    opened_s = time.monotonic() - start
    time.sleep(SETTLE_S)
    after = rss_kb(pids)
    # A connection the target closed (or that got unexpected bytes) is readable.
    selector = selectors.DefaultSelector()
    for sock in conns:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed = len(selector.select(timeout=0))
    selector.close()
    for sock in conns:
        sock.close()
    result = {
        "scenario": "idle10k",
        "target": target,
        "connections": n,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_kb": after,
        "bytes_per_conn": round((after - before) * 1024 / n, 1),
        "closed_by_target": closed,
        "non2xx": non2xx,
        "open_seconds": round(opened_s, 2),
    }
    print(
        f"  idle10k {target:<14} RSS {before} -> {after} kB, "
        f"{result['bytes_per_conn']:.0f} bytes/connection, "
        f"{closed} closed by the target, opened in {opened_s:.1f} s",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
