#!/usr/bin/env python3
"""The arithmetic of benches/compare/run.sh: parses wrk output, takes medians,
computes the ratios against the best peer, prints the tables and writes JSON.

    report.py round SCENARIO TARGET ROUND WRK_OUTPUT BEFORE AFTER ROUNDS_JSONL
        parses one wrk --latency run, appends it to ROUNDS_JSONL, prints a line;
        BEFORE and AFTER are "PROXY_UTIME PROXY_STIME BACKEND_UTIME
        BACKEND_STIME MACHINE_BUSY MACHINE_IDLE" in clock ticks
    report.py final ROUNDS_JSONL EXTRA_JSONL OUT
        ROUNDS_JSONL: the rounds; EXTRA_JSONL: RSS after each scenario and the
        idle10k results; machine and settings come from CMP_* variables
"""
import json
import os
import platform
import re
import statistics
import sys

PROXIES = ["tcpvsd", "haproxy", "nginx-proxy"]
# floor.c: a relay with no user-space work; what it reaches bounds every proxy.
FLOOR = "floor"
SCENARIOS = {
    "1k": "1 KiB keep-alive",
    "1k-close": "1 KiB, Connection: close (a new client connection per request)",
    "64k": "64 KiB keep-alive",
    "1m": "1 MiB keep-alive",
    "rules50": "1 KiB keep-alive, tcpvsd with 50 non-matching content rules + catch-all vs 1 rule",
    "idle10k": "idle keep-alive client connections held open, RSS growth per connection",
}
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * TIME_MS[unit]


def parse_wrk(text):
    def need(pattern):
        match = re.search(pattern, text, re.M)
        if not match:
            sys.exit(f"wrk output without /{pattern}/:\n{text}")
        return match

    requests, duration, read, unit = need(r"^\s*(\d+) requests in ([\d.]+[a-z]+), ([\d.]+)([KMGT]?B) read").groups()
    seconds = to_ms(duration) / 1000.0
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket_errors:
        errors = sum(int(g) for g in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "requests": int(requests),
        "seconds": seconds,
        "mbps": float(read) * UNITS[unit] / seconds / 1e6,
        "p50_ms": to_ms(need(r"^\s+50%\s+(\S+)").group(1)),
        "p99_ms": to_ms(need(r"^\s+99%\s+(\S+)").group(1)),
        "errors": errors,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cmd_round(scenario, target, round_no, wrk_file, before, after, jsonl):
    with open(wrk_file) as f:
        run = parse_wrk(f.read())
    hz = os.sysconf("SC_CLK_TCK")
    delta = [b - a for a, b in zip(map(int, before.split()), map(int, after.split()))]
    user, system, backend_user, backend_system, busy, idle = delta
    per_req = lambda ticks: ticks * 1e6 / hz / max(run["requests"], 1)  # noqa: E731
    run.update(scenario=scenario, target=target, round=int(round_no), cpu_ticks=user + system)
    run["cpu_us_per_req"] = per_req(user + system)
    run["user_us_per_req"] = per_req(user)
    run["system_us_per_req"] = per_req(system)
    run["backend_us_per_req"] = per_req(backend_user + backend_system)
    run["machine_us_per_req"] = per_req(busy)
    run["machine_busy"] = busy / max(busy + idle, 1)
    with open(jsonl, "a") as f:
        f.write(json.dumps(run) + "\n")
    print(
        f"  {scenario:<8} round {round_no} {target:<14} {run['rps']:>9.0f} req/s "
        f"{run['mbps']:>8.1f} MB/s  p50 {run['p50_ms']:>7.2f} ms  p99 {run['p99_ms']:>7.2f} ms  "
        f"{run['cpu_us_per_req']:>6.1f} us cpu/req  errors {run['errors']}  non-2xx {run['non2xx']}"
    )


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def aggregate(rounds, extra):
    results = []
    order = []
    by_key = {}
    for run in rounds:
        key = (run["scenario"], run["target"])
        if key not in by_key:
            by_key[key] = []
            order.append(key)
        by_key[key].append(run)
    rss = {(e["scenario"], e["target"]): e["rss_kb"] for e in extra if e["scenario"] != "idle10k"}
    for key in order:
        runs = by_key[key]
        med = lambda name: round(statistics.median(r[name] for r in runs), 3)  # noqa: E731
        results.append({
            "scenario": key[0],
            "target": key[1],
            "rounds": len(runs),
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "mbps": round(statistics.median(r["mbps"] for r in runs), 2),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "cpu_us_per_req": round(statistics.median(r["cpu_us_per_req"] for r in runs), 2),
            **{name: round(statistics.median(r[name] for r in runs), 3)
               for name in ("user_us_per_req", "system_us_per_req", "backend_us_per_req",
                            "machine_us_per_req", "machine_busy")},
            "rss_kb": rss.get(key),
            "errors": sum(r["errors"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "rps_rounds": [r["rps"] for r in runs],
            "p99_ms_rounds": [r["p99_ms"] for r in runs],
            "cpu_us_per_req_rounds": [round(r["cpu_us_per_req"], 2) for r in runs],
        })
    results += [dict(e) for e in extra if e["scenario"] == "idle10k"]
    # Ratios against the best other proxy (higher is better for req/s and
    # MB/s, lower for CPU per request, p99 and idle bytes per connection).
    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    for scenario in scenarios:
        rows = {r["target"]: r for r in results if r["scenario"] == scenario}
        for name in PROXIES:
            row = rows.get(name)
            peers = [rows[p] for p in PROXIES if p != name and p in rows]
            if row is None or not peers:
                continue
            if scenario == "idle10k":
                best = min(peers, key=lambda p: p["bytes_per_conn"])
                row["best_peer_rss_per_conn"] = best["target"]
                row["ratio_rss_per_conn_vs_best_peer"] = ratio(row["bytes_per_conn"], best["bytes_per_conn"])
                continue
            for metric, pick, label in (("rps", max, "rps"), ("mbps", max, "mbps"),
                                        ("cpu_us_per_req", min, "cpu"), ("p99_ms", min, "p99")):
                best = pick(peers, key=lambda p: p[metric])
                row[f"best_peer_{label}"] = best["target"]
                row[f"ratio_{label}_vs_best_peer"] = ratio(row[metric], best[metric])
            for peer in peers:
                row[f"ratio_rps_vs_{peer['target']}"] = ratio(row["rps"], peer["rps"])
        if "tcpvsd-1rule" in rows and "tcpvsd-50rules" in rows:
            one, fifty = rows["tcpvsd-1rule"], rows["tcpvsd-50rules"]
            fifty["ratio_rps_vs_1rule"] = ratio(fifty["rps"], one["rps"])
            fifty["ratio_cpu_vs_1rule"] = ratio(fifty["cpu_us_per_req"], one["cpu_us_per_req"])
            # The same ratio taken round by round (both ran back to back).
            paired = [b / a for a, b in zip(one["rps_rounds"], fifty["rps_rounds"]) if a]
            fifty["ratio_rps_vs_1rule_paired_median"] = round(statistics.median(paired), 3) if paired else None
    return results


def done_when(results):
    """The "Done when" lines of issue #7 that these figures decide."""
    get = {(r["scenario"], r["target"]): r for r in results}
    checks = []

    def check(text, value, ok, detail, floor=None):
        """`floor`: the same ratio for the floor relay, where it ran: a
        target the floor itself misses is beyond what the machine allows."""
        entry = {"target": text, "value": value, "met": ok, "detail": detail}
        if floor is not None:
            entry["floor_value"] = floor
        checks.append(entry)

    def floor_ratio(scenario, metric, peer):
        row, other = get.get((scenario, FLOOR)), get.get((scenario, peer))
        return ratio(row[metric], other[metric]) if row and other else None

    t = get.get(("1k", "tcpvsd"))
    if t and "ratio_rps_vs_haproxy" in t:
        v = t["ratio_rps_vs_haproxy"]
        check("1k keep-alive req/s >= 1.2x HAProxy", v, v >= 1.2, f"{t['rps']:.0f} vs {get[('1k', 'haproxy')]['rps']:.0f}",
              floor_ratio("1k", "rps", "haproxy"))
    if t and "ratio_rps_vs_nginx-proxy" in t:
        v = t["ratio_rps_vs_nginx-proxy"]
        check("1k keep-alive req/s >= 1.1x nginx", v, v >= 1.1, f"{t['rps']:.0f} vs {get[('1k', 'nginx-proxy')]['rps']:.0f}",
              floor_ratio("1k", "rps", "nginx-proxy"))
    if t and "ratio_cpu_vs_best_peer" in t:
        v = t["ratio_cpu_vs_best_peer"]
        peer = get[("1k", t["best_peer_cpu"])]
        check("1k keep-alive CPU/request <= 0.8x the better peer's", v, v <= 0.8,
              f"{t['cpu_us_per_req']:.1f} vs {peer['cpu_us_per_req']:.1f} us ({peer['target']})",
              floor_ratio("1k", "cpu_us_per_req", peer["target"]))
    if t and "ratio_p99_vs_best_peer" in t:
        v = t["ratio_p99_vs_best_peer"]
        peer = get[("1k", t["best_peer_p99"])]
        check("1k keep-alive p99 <= the better peer's", v, v <= 1.0,
              f"{t['p99_ms']:.2f} vs {peer['p99_ms']:.2f} ms ({peer['target']})")
    for scenario, floor, label in (("1k-close", 1.1, "1k new connection per request req/s >= 1.1x the better peer"),
                                   ("64k", 1.0, "64k req/s >= 1.0x the better peer"),
                                   ("1m", 1.0, "1m MB/s >= 1.0x the better peer")):
        t = get.get((scenario, "tcpvsd"))
        metric = "mbps" if scenario == "1m" else "rps"
        if t and f"ratio_{metric}_vs_best_peer" in t:
            v = t[f"ratio_{metric}_vs_best_peer"]
            peer = get[(scenario, t[f"best_peer_{metric}"])]
            check(label, v, v >= floor, f"{t[metric]:.1f} vs {peer[metric]:.1f} ({peer['target']})",
                  floor_ratio(scenario, metric, peer["target"]))
    t = get.get(("idle10k", "tcpvsd"))
    if t:
        v = round(t["bytes_per_conn"] / 1024, 2)
        check(f"{t['connections']} idle clients: <= 4 KiB RSS each", v, v <= 4.0,
              f"{t['rss_before_kb']} -> {t['rss_after_kb']} kB")
    t = get.get(("rules50", "tcpvsd-50rules"))
    if t and "ratio_rps_vs_1rule" in t:
        v = t["ratio_rps_vs_1rule"]
        check("50 rules cost <= 5 % throughput against 1 rule", v, v >= 0.95,
              f"{t['rps']:.0f} vs {get[('rules50', 'tcpvsd-1rule')]['rps']:.0f} req/s "
              f"(paired per round: {t['ratio_rps_vs_1rule_paired_median']})")
    return checks


def budget(results):
    """What the machine leaves a proxy per request at 1 KiB keep-alive, and
    what reaching the throughput targets would demand of tcpvsd.

    The load generator, the backend and the proxy share the cores, so a proxy
    can only be faster by costing less per request. At a rate R with the cores
    as busy as in tcpvsd's runs, all together may spend cores x busy / R per
    request; what wrk, the backend and the rest of the machine cost per
    request in tcpvsd's runs is left to the proxy's bill. What is left for
    the proxy at the target rate is set against the system (kernel) time
    alone of the leanest proxy: the socket work any proxy must do.
    """
    get = {(r["scenario"], r["target"]): r for r in results}
    tcpvsd = get.get(("1k", "tcpvsd"))
    if not tcpvsd or "user_us_per_req" not in tcpvsd:
        return None
    proxies = [get[("1k", p)] for p in PROXIES if ("1k", p) in get]
    floor = get.get(("1k", FLOOR))
    others = tcpvsd["machine_us_per_req"] - tcpvsd["cpu_us_per_req"]
    cores = os.cpu_count() or 1
    leanest_kernel = min(proxies, key=lambda p: p["system_us_per_req"])
    goals = []
    for peer, factor in (("haproxy", 1.2), ("nginx-proxy", 1.1)):
        if ("1k", peer) not in get:
            continue
        rate = factor * get[("1k", peer)]["rps"]
        whole = cores * 1e6 * tcpvsd["machine_busy"] / rate
        goal = {"goal": f"{factor}x {peer}", "rps": round(rate), "machine_us_per_req": round(whole, 2),
                "proxy_us_per_req_allowed": round(whole - others, 2)}
        if floor:
            goal["vs_floor_rps"] = ratio(rate, floor["rps"])
        goals.append(goal)
    return {
        "rows": [{k: p[k] for k in ("target", "rps", "cpu_us_per_req", "user_us_per_req",
                                    "system_us_per_req", "backend_us_per_req",
                                    "machine_us_per_req", "machine_busy")}
                 for p in proxies + ([floor] if floor else [])],
        "others_us_per_req_in_tcpvsd_runs": round(others, 2),
        "leanest_kernel": {"target": leanest_kernel["target"], "system_us_per_req": leanest_kernel["system_us_per_req"]},
        "goals": goals,
    }


def print_budget(plan):
    print()
    print("== CPU budget at 1 KiB keep-alive (medians, us per request) ==")
    print(f"{'target':<14} {'req/s':>9} {'proxy':>6} {'user':>6} {'system':>6} {'backend':>7} "
          f"{'machine':>7} {'busy':>5}")
    for r in plan["rows"]:
        print(f"{r['target']:<14} {r['rps']:>9.0f} {r['cpu_us_per_req']:>6.2f} {r['user_us_per_req']:>6.2f} "
              f"{r['system_us_per_req']:>6.2f} {r['backend_us_per_req']:>7.2f} "
              f"{r['machine_us_per_req']:>7.2f} {r['machine_busy']:>5.2f}")
    print(f"wrk, the backend and the rest of the machine in tcpvsd's runs: "
          f"{plan['others_us_per_req_in_tcpvsd_runs']:.2f} us per request")
    leanest = plan["leanest_kernel"]
    for goal in plan["goals"]:
        print(f"for {goal['goal']} ({goal['rps']} req/s) the machine has {goal['machine_us_per_req']:.2f} us "
              f"per request: tcpvsd may spend {goal['proxy_us_per_req_allowed']:.2f} "
              f"(system time alone of the leanest proxy: {leanest['system_us_per_req']:.2f}, {leanest['target']})")
        if "vs_floor_rps" in goal:
            print(f"  that is {goal['vs_floor_rps']:.3f}x the req/s of the floor relay, which does no user-space work")


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def print_tables(results, settings):
    for scenario in dict.fromkeys(r["scenario"] for r in results):
        rows = [r for r in results if r["scenario"] == scenario]
        print()
        if scenario == "idle10k":
            print(f"== idle10k: {rows[0]['connections']} {SCENARIOS['idle10k']} ==")
            print(f"{'target':<14} {'RSS before kB':>13} {'RSS after kB':>12} {'bytes/conn':>10} "
                  f"{'KiB/conn':>8} {'vs best':>7} {'closed':>6} {'non-2xx':>7}")
            for r in rows:
                print(f"{r['target']:<14} {r['rss_before_kb']:>13} {r['rss_after_kb']:>12} "
                      f"{r['bytes_per_conn']:>10.0f} {r['bytes_per_conn'] / 1024:>8.2f} "
                      f"{fmt(r.get('ratio_rss_per_conn_vs_best_peer'), '.2f'):>7} "
                      f"{r['closed_by_target']:>6} {r['non2xx']:>7}")
            continue
        print(f"== {scenario}: {SCENARIOS.get(scenario, scenario)} "
              f"(wrk -t1 -c{settings['conns']} -d{settings['duration']} --latency, "
              f"{rows[0]['rounds']} rounds, medians) ==")
        print(f"{'target':<14} {'req/s':>9} {'MB/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'us cpu/req':>10} "
              f"{'RSS kB':>8} {'errors':>6} {'non-2xx':>7} | {'vs best peer: req/s':>19} {'MB/s':>5} "
              f"{'cpu':>5} {'p99':>5}")
        for r in rows:
            print(f"{r['target']:<14} {r['rps']:>9.0f} {r['mbps']:>8.1f} {r['p50_ms']:>7.2f} "
                  f"{r['p99_ms']:>7.2f} {r['cpu_us_per_req']:>10.1f} {fmt(r['rss_kb'], 'd'):>8} "
                  f"{r['errors']:>6} {r['non2xx']:>7} | {fmt(r.get('ratio_rps_vs_best_peer'), '.2f'):>19} "
                  f"{fmt(r.get('ratio_mbps_vs_best_peer'), '.2f'):>5} "
                  f"{fmt(r.get('ratio_cpu_vs_best_peer'), '.2f'):>5} "
                  f"{fmt(r.get('ratio_p99_vs_best_peer'), '.2f'):>5}")
        t = next((r for r in rows if r["target"] == "tcpvsd" and "best_peer_rps" in r), None)
        if t:
            print(f"tcpvsd vs the best peer: req/s {t['ratio_rps_vs_best_peer']:.2f} ({t['best_peer_rps']}), "
                  f"cpu/req {t['ratio_cpu_vs_best_peer']:.2f} ({t['best_peer_cpu']}), "
                  f"p99 {t['ratio_p99_vs_best_peer']:.2f} ({t['best_peer_p99']})")
        floor = next((r for r in rows if r["target"] == FLOOR), None)
        if t and floor:
            metric = "mbps" if scenario == "1m" else "rps"
            best = next(r for r in rows if r["target"] == t[f"best_peer_{metric}"])
            print(f"the floor relay (no user-space work): {metric} tcpvsd {ratio(t[metric], floor[metric]):.2f}x, "
                  f"{best['target']} {ratio(best[metric], floor[metric]):.2f}x the floor's; "
                  f"cpu/req {floor['cpu_us_per_req']:.1f} us")
        fifty = next((r for r in rows if "ratio_rps_vs_1rule" in r), None)
        if fifty:
            print(f"50 rules / 1 rule: req/s {fifty['ratio_rps_vs_1rule']:.3f} "
                  f"(paired per round {fifty['ratio_rps_vs_1rule_paired_median']:.3f}), "
                  f"cpu/req {fifty['ratio_cpu_vs_1rule']:.3f}")


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "?")
    env = os.environ.get
    return {
        "nproc": os.cpu_count(),
        "model_name": model,
        "kernel": platform.release(),
        "loadavg_before": env("CMP_LOAD_BEFORE", ""),
        "loadavg_after": env("CMP_LOAD_AFTER", ""),
        "nginx": env("CMP_NGINX_VERSION", ""),
        "haproxy": env("CMP_HAPROXY_VERSION", ""),
        "wrk": env("CMP_WRK_VERSION", ""),
        "tcpvsd": env("CMP_TCPVSD_VERSION", ""),
    }


def cmd_final(rounds_jsonl, extra_jsonl, out):
    env = os.environ.get
    settings = {
        "rounds": int(env("CMP_ROUNDS", "0")),
        "duration": env("CMP_DURATION", ""),
        "conns": int(env("CMP_CONNS", "0")),
        "workers": int(env("CMP_WORKERS", "0")),
        "scenarios": env("CMP_SCENARIOS", "").split(),
        "peer_defer_accept": env("CMP_PEER_DEFER", "") == "1",
    }
    results = aggregate(read_jsonl(rounds_jsonl), read_jsonl(extra_jsonl))
    checks = done_when(results)
    plan = budget(results)
    info = machine()
    print_tables(results, settings)
    if plan:
        print_budget(plan)
    print()
    print(f"machine: {info['nproc']} x {info['model_name']}, kernel {info['kernel']}; "
          f"load average before {info['loadavg_before']}, after {info['loadavg_after']}")
    print(f"{info['tcpvsd']}; {info['nginx']}; {info['haproxy']}; {info['wrk']}; proxy threads/workers: {settings['workers']}; "
          f"HAProxy and nginx defer accepts: {'yes' if settings['peer_defer_accept'] else 'no'}")
    if checks:
        print()
        print("issue #7 \"Done when\" (tcpvsd):")
        for c in checks:
            floor = ""
            if "floor_value" in c:
                floor = f"; the floor relay: {c['floor_value']}"
            print(f"  {'MET   ' if c['met'] else 'MISSED'} {c['target']}: {c['value']} ({c['detail']}{floor})")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"machine": info, "settings": settings, "results": results, "done_when": checks,
                   "budget_1k": plan}, f, indent=1)
        f.write("\n")
    print()
    print(f"JSON: {os.path.abspath(out)}")


if __name__ == "__main__":
    if len(sys.argv) == 9 and sys.argv[1] == "round":
        cmd_round(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "final":
        cmd_final(*sys.argv[2:])
    else:
        sys.exit(__doc__)
