#!/usr/bin/env python3
"""End-to-end throughput of the service: POST generated events over HTTP to K `storyline run` processes
and time until the last story is published.

Starts the processes itself (same config except `listen` and the story file), on PostgreSQL (a fresh schema
per run, dropped afterwards with psql) or on the embedded store (one process), posts the events of an
envelope file in batches round-robin from a few client threads (503 answers are retried), and watches the
processes' story files until every event id of the input is in a published story version.

    storyline generate --events 200000 --seed 7 --late 0 --large 0 --out /tmp/bench-traffic
    scripts/bench_service.py --bin target/release/storyline --events /tmp/bench-traffic/events.ndjson \
        --store postgres --pg "host=127.0.0.1 port=5460 user=postgres dbname=postgres" --processes 3 --runs 3
    scripts/bench_service.py --bin target/release/storyline --events /tmp/bench-traffic/events.ndjson \
        --store embedded --processes 1 --runs 3

Prints one JSON line per run and a summary line with the medians. Standard library only.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CONFIG = """tenant = "bench"
data_dir = "{data}"
listen = "127.0.0.1:{port}"

[store]
kind = "{kind}"
{store_extra}

[output]
kind = "file"
path = "{out}"

[pipeline]
shards = 16
partitions = {partitions}
workers = {workers}

[pipeline.correlate]
gap = "{gap}"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"process on port {port} not ready after {timeout} s")


def poster(ports, batches, next_index, lock, errors, acked):
    conns = {}
    while True:
        with lock:
            i = next_index[0]
            next_index[0] += 1
        if i >= len(batches):
            break
        port = ports[i % len(ports)]
        body = batches[i]
        while True:
            try:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                c.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/x-ndjson"})
                r = c.getresponse()
                data = r.read()
                if r.status == 200:
                    report = json.loads(data)
                    with lock:
                        acked[0] += report["accepted"]
                    break
                if r.status == 503:
                    time.sleep(0.2)
                    continue
                errors.append(f"{r.status}: {data[:200]!r}")
                return
            except (ConnectionError, http.client.HTTPException, OSError):
                conns.pop(port, None)
                time.sleep(0.2)


class StoryWatcher:
    """Reads the story files incrementally and collects the event ids of every published version."""

    def __init__(self, paths):
        self.paths = paths
        self.offsets = {p: 0 for p in paths}
        self.rest = {p: b"" for p in paths}
        self.ids = set()
        self.versions = 0

    def poll(self):
        for p in self.paths:
            try:
                with open(p, "rb") as f:
                    f.seek(self.offsets[p])
                    chunk = f.read()
            except FileNotFoundError:
                continue
            self.offsets[p] += len(chunk)
            data = self.rest[p] + chunk
            lines = data.split(b"\n")
            self.rest[p] = lines.pop()
            for line in lines:
                if line:
                    s = json.loads(line)
                    self.versions += 1
                    self.ids.update(s.get("event_ids", ()))


def run_once(a, lines, ids, run_no):
    work = tempfile.mkdtemp(prefix="storyline-bench-")
    schema = f"bench_{os.getpid()}_{run_no}_{int(time.time())}"
    procs, ports, outs = [], [], []
    try:
        for k in range(a.processes):
            d = os.path.join(work, f"p{k}")
            os.makedirs(d)
            port = free_port()
            out = os.path.join(d, "stories.ndjson")
            if a.store == "postgres":
                store_extra = f'url = "{a.pg}"\nschema = "{schema}"'
            else:
                store_extra = ""
            cfg = CONFIG.format(data=os.path.join(d, "data"), port=port, kind=a.store, store_extra=store_extra,
                                out=out, partitions=a.partitions, workers=a.workers, gap=a.gap)
            path = os.path.join(d, "storyline.toml")
            with open(path, "w") as f:
                f.write(cfg)
            log = open(os.path.join(d, "log"), "w")
            procs.append(subprocess.Popen([a.bin, "run", "--config", path], stdout=log, stderr=log,
                                          env={**os.environ, "RUST_LOG": "warn"}))
            ports.append(port)
            outs.append(out)
            wait_ready(port)
        batches = ["".join(lines[i:i + a.batch]) for i in range(0, len(lines), a.batch)]
        watcher = StoryWatcher(outs)
        next_index, lock, errors, acked = [0], threading.Lock(), [], [0]
        marks = {}  # share of the events in stories -> seconds since the first post
        t0 = time.time()

        def note():
            covered = len(watcher.ids & ids) / len(ids)
            for q in (0.5, 0.9, 0.99):
                if covered >= q and q not in marks:
                    marks[q] = round(time.time() - t0, 2)
            return covered
        threads = [threading.Thread(target=poster, args=(ports, batches, next_index, lock, errors, acked))
                   for _ in range(a.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            watcher.poll()
            note()
        t_ingested = time.time()
        if errors:
            raise SystemExit(f"ingest failed: {errors[:3]}")
        deadline = time.time() + a.timeout
        while True:
            watcher.poll()
            if note() == 1.0:
                break
            if time.time() > deadline:
                raise SystemExit(f"only {len(watcher.ids & ids)} of {len(ids)} events in stories after {a.timeout} s")
            time.sleep(0.1)
        t_done = time.time()
        return {
            "store": a.store, "processes": a.processes, "events": len(lines), "acked": acked[0],
            "ingest_s": round(t_ingested - t0, 2), "total_s": round(t_done - t0, 2),
            "ingest_events_per_s": round(len(lines) / (t_ingested - t0)),
            "end_to_end_events_per_s": round(len(lines) / (t_done - t0)),
            "in_stories_50pct_s": marks.get(0.5), "in_stories_90pct_s": marks.get(0.9),
            "in_stories_99pct_s": marks.get(0.99),
            "story_versions": watcher.versions,
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        if a.store == "postgres" and a.keep_schema:
            print(f"kept schema {schema}", file=sys.stderr)
        elif a.store == "postgres" and shutil.which("psql"):
            subprocess.run(["psql", a.pg, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/storyline")
    p.add_argument("--events", required=True, help="envelope NDJSON (storyline generate)")
    p.add_argument("--store", choices=["postgres", "embedded"], required=True)
    p.add_argument("--pg", help="libpq connection string (postgres)")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="worker threads per process")
    p.add_argument("--gap", default="5s", help="pipeline.correlate.gap (the tail after the last event)")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4, help="client threads posting at once")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--keep-schema", action="store_true", help="leave the PostgreSQL schema (to measure its size)")
    a = p.parse_args()
    if a.store == "postgres" and not a.pg:
        p.error("--pg is required with --store postgres")
    if a.store == "embedded" and a.processes != 1:
        p.error("the embedded store serves one process")
    with open(a.events) as f:
        lines = [l if l.endswith("\n") else l + "\n" for l in f if l.strip()]
    ids = set()
    # The generator's truth file names every event id; fall back to a pass over the stories otherwise.
    truth = os.path.join(os.path.dirname(a.events), "truth.ndjson")
    with open(truth) as f:
        for l in f:
            if l.strip():
                ids.add(json.loads(l)["event_id"])
    results = []
    for r in range(a.runs):
        res = run_once(a, lines, ids, r)
        print(json.dumps(res), flush=True)
        results.append(res)
    summary = {
        "store": a.store, "processes": a.processes, "runs": a.runs, "events": len(lines),
        "median_ingest_s": statistics.median(r["ingest_s"] for r in results),
        "median_total_s": statistics.median(r["total_s"] for r in results),
        "median_end_to_end_events_per_s": statistics.median(r["end_to_end_events_per_s"] for r in results),
        "median_ingest_events_per_s": statistics.median(r["ingest_events_per_s"] for r in results),
        "median_90pct_s": statistics.median(r["in_stories_90pct_s"] for r in results),
    }
    print("summary " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
