#!/usr/bin/env python3
"""The CPU a Prometheus scrape costs: server CPU over alternating idle and scraped phases.

    scrape-cost.py --secs 30 --pids 123,456 --url http://127.0.0.1:4100/metrics [--url ...]

Server CPU is utime+stime of the given pids and all their descendants (so a Postgres
postmaster brings its backends). Each phase lasts --secs; in a scraped phase every --url is
fetched once a second, as Prometheus would with `scrape_interval: 1s`. Phases alternate
idle, scraped, idle, scraped (the machine's speed drifts); the last line is the mean extra
CPU of the scraped phases as a share of one core.
"""
import argparse
import os
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cpu_seconds(roots):
    seen, todo, total = set(), list(roots), 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            continue
        todo.extend(children(pid))
    return total / TICK


def phase(roots, secs, urls):
    start, began, scrapes, size = cpu_seconds(roots), time.monotonic(), 0, 0
    next_at = began
    while time.monotonic() - began < secs:
        if urls:
            for url in urls:
                size = len(urllib.request.urlopen(url, timeout=5).read())
                scrapes += 1
        next_at += 1.0
        time.sleep(max(0.0, next_at - time.monotonic()))
    elapsed = time.monotonic() - began
    return (cpu_seconds(roots) - start) / elapsed, scrapes, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=30)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--url", action="append", default=[])
    args = ap.parse_args()
    roots = [int(p) for p in args.pids.replace(",", " ").split()]
    extra = []
    idle = None
    for name, urls in [("idle", []), ("scraped", args.url)] * 2:
        share, scrapes, size = phase(roots, args.secs, urls)
        print(f"{name:8} server CPU {share * 100:6.3f} % of a core"
              + (f" ({scrapes} scrapes, last body {size} bytes)" if urls else ""), flush=True)
        if urls:
            extra.append(share - idle)
        else:
            idle = share
    mean = sum(extra) / len(extra)
    print(f"scrape cost: {mean * 100:.3f} % of a core for one scrape a second of {len(args.url)} endpoint(s)")


if __name__ == "__main__":
    main()
