#!/usr/bin/env python3
"""Load check of `octo-budget serve`: many concurrent clients on loopback
while transcripts grow.

    python3 bench/serve_load.py [--bin target/<host>/release/octo-budget]
        [--clients 200] [--requests 50] [--size-mb 10] [--arms 20]
        [--append-per-s 20] [--max-seconds 120] [--keep]

Generates a tree with gen_tree.py into a temp dir, starts the server on
127.0.0.1:0 with --ingest-every 1s, then runs --clients clients at once
(each a keep-alive connection making --requests requests, a mix of the
budget, status, report, dashboard and health endpoints) while a writer
appends new assistant lines (--append-per-s) to new session files of
every arm. Bounded in count (clients x requests) and time (--max-seconds:
clients stop early, what was not sent is reported).

Reports requests, errors (a status other than 200 or a failed
connection), throughput and latency percentiles (p50, p90, p99, max)
overall and per endpoint, and the slowest requests with when they started;
writes bench/out/serve-load-<stamp>.json. The clients are asyncio
connections in one thread (Python threads measured their own scheduling).
After the load it stops writing, lets one more ingest run and checks that
/api/v1/report?period=all is byte-for-byte what `report --json --period
all` prints, and that it counts every appended line.

Exit status 1 on any error or a failed check. Python 3 standard library
only. The clients run on the same machine as the server.
"""

import argparse
import asyncio
import datetime
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import measure  # noqa: E402
NOW = "2026-10-31T23:00:00Z"
# Appended lines: Oct 31 between 21:00 and 23:00 (before --now).
APPEND_BASE = datetime.datetime(2026, 10, 31, 21, 0, 0, tzinfo=datetime.timezone.utc)
HAIKU = "claude-haiku-4-5-20251001"


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def ms(v):
    return None if v is None else round(v * 1000.0, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=measure.release_bin(ROOT))
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=50, help="requests per client")
    ap.add_argument("--size-mb", type=int, default=10)
    ap.add_argument("--arms", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--append-per-s", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--ingest-every", default="1s", help="serve's --ingest-every (0: the check after the load fails)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"no binary at {a.bin} (cargo build --release, or --bin)")

    work = tempfile.mkdtemp(prefix="octo-serve-load-")
    tree = os.path.join(work, "tree")
    subprocess.run([sys.executable, os.path.join(HERE, "gen_tree.py"), "--out", tree,
                    "--size-mb", str(a.size_mb), "--arms", str(a.arms), "--seed", str(a.seed)],
                   check=True, stdout=subprocess.DEVNULL)
    manifest = json.load(open(os.path.join(tree, "manifest.json")))["files"]
    arms = {}
    for f in manifest:
        if f.get("transcript") and f.get("arm"):
            arms.setdefault(f["arm"], (f["cwd"], os.path.dirname(os.path.join(tree, f["path"]))))
    # Top-level project folders only (not a session's subagents/ folder).
    arms = {k: (cwd, d if os.path.basename(os.path.dirname(d)) == "projects" else
                os.path.dirname(os.path.dirname(d)) if os.path.basename(d) == "subagents" else d)
            for k, (cwd, d) in arms.items()}
    arm_names = sorted(arms)
    home = os.path.join(work, "home")
    os.makedirs(home)
    env = {"HOME": home, "TZ": "UTC", "PATH": os.environ.get("PATH", "")}
    flags = ["--config", os.path.join(tree, "budgets.yaml"), "--claude-dir", os.path.join(tree, "claude"),
             "--ledger", os.path.join(work, "ledger.sqlite"), "--now", NOW]
    started = time.monotonic()
    server = subprocess.Popen([a.bin] + flags + ["serve", "--listen", "127.0.0.1:0", "--ingest-every", a.ingest_every],
                              env=env, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "serve.log"), "w"),
                              text=True)
    line = server.stdout.readline()
    if "listening on http://" not in line:
        server.kill()
        sys.exit(f"serve did not start: {line!r} (see {work}/serve.log)")
    first_read_s = time.monotonic() - started
    hostport = line.strip().split("http://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    port = int(port)

    # The writer: new assistant lines, round-robin over arms.
    stop_writing = threading.Event()
    appended = {"lines": 0, "input_tokens": 0}

    def writer():
        i = 0
        while not stop_writing.is_set():
            arm = arm_names[i % len(arm_names)]
            cwd, folder = arms[arm]
            session = f"load-{arm}-{i // (len(arm_names) * 50)}"
            ts = APPEND_BASE + datetime.timedelta(milliseconds=i * 37 % 7_000_000)
            rec = {"type": "assistant", "cwd": cwd, "sessionId": session, "version": "2.1.112",
                   "gitBranch": "load", "requestId": f"req_load_{i}", "uuid": f"u-load-{i}",
                   "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                   "message": {"id": f"msg_load_{i}", "type": "message", "role": "assistant", "model": HAIKU,
                               "content": [{"type": "text", "text": "ok"}],
                               "usage": {"input_tokens": 1000, "output_tokens": 10}}}
            with open(os.path.join(folder, session + ".jsonl"), "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            appended["lines"] += 1
            appended["input_tokens"] += 1000
            i += 1
            time.sleep(1.0 / a.append_per_s)

    wt = threading.Thread(target=writer, daemon=True)
    wt.start()

    paths = []
    for arm in arm_names:
        q = arm.replace(" ", "%20")
        paths += [("budget", f"/api/v1/arms/{q}/budget")] * 4
        paths += [("status", f"/api/v1/arms/{q}/status")] * 2
    paths += [("report", "/api/v1/report")] * (len(arm_names) * 1)
    paths += [("report_by_session", "/api/v1/report?period=all&by=session")] * (len(arm_names) // 2 or 1)
    paths += [("dashboard", "/live")] * (len(arm_names) * 3 // 2 or 1)
    paths += [("healthz", "/healthz")] * (len(arm_names) // 2 or 1)

    results = []  # (kind, seconds, ok, started at)
    errors_seen = []

    async def client(n, t_start, deadline):
        # One keep-alive HTTP/1.1 connection per client (asyncio: the
        # clients do not queue behind each other's threads).
        rnd = random.Random(n)
        conn = None
        for _ in range(a.requests):
            if time.monotonic() > deadline:
                break
            kind, path = rnd.choice(paths)
            t0 = time.monotonic()
            ok = False
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(host, port), 60)
                reader, writer = conn
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode())
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
                await asyncio.wait_for(reader.readexactly(length), 60)
                ok = status == 200
                if not ok and len(errors_seen) < 5:
                    errors_seen.append(f"{path}: HTTP {status}")
            except Exception as e:  # noqa: BLE001
                if len(errors_seen) < 5:
                    errors_seen.append(f"{path}: {e!r}")
                if conn is not None:
                    conn[1].close()
                conn = None
            results.append((kind, time.monotonic() - t0, ok, t0 - t_start))
        if conn is not None:
            conn[1].close()

    async def load():
        t_start = time.monotonic()
        await asyncio.gather(*(client(n, t_start, t_start + a.max_seconds) for n in range(a.clients)))
        return time.monotonic() - t_start

    elapsed = asyncio.run(load())

    # Consistency after the load: stop writing, let an ingest run.
    stop_writing.set()
    wt.join()
    time.sleep(2.5)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", "/api/v1/report?period=all")
    served = conn.getresponse().read().decode()
    conn.close()
    server.terminate()
    server.wait()
    cli = subprocess.run([a.bin] + flags + ["report", "--json", "--period", "all"], env=env,
                         capture_output=True, text=True, check=True).stdout
    same = served == cli
    doc = json.loads(served)
    gen_expected = json.load(open(os.path.join(tree, "expected.json")))
    expected_input = gen_expected["tokens"]["input"] + appended["input_tokens"]

    lat = sorted(r[1] for r in results)
    errors = sum(1 for r in results if not r[2])
    per = {}
    for kind in sorted({r[0] for r in results}):
        v = sorted(r[1] for r in results if r[0] == kind)
        per[kind] = {"requests": len(v), "errors": sum(1 for r in results if r[0] == kind and not r[2]),
                     "p50_ms": ms(percentile(v, 50)), "p99_ms": ms(percentile(v, 99)), "max_ms": ms(v[-1])}
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "clients": a.clients, "requests_per_client": a.requests,
        "requests_sent": len(results), "requests_planned": a.clients * a.requests,
        "errors": errors, "first_errors": errors_seen,
        "seconds": round(elapsed, 2), "requests_per_s": round(len(results) / elapsed, 1) if elapsed else None,
        "p50_ms": ms(percentile(lat, 50)), "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)), "max_ms": ms(lat[-1] if lat else None),
        "per_endpoint": per,
        "slowest": [{"endpoint": r[0], "ms": ms(r[1]), "started_at_s": round(r[3], 3)}
                    for r in sorted(results, key=lambda r: -r[1])[:5]],
        "tree_mb": a.size_mb, "arms": len(arm_names), "first_read_s": round(first_read_s, 2),
        "appended_lines": appended["lines"],
        "report_equals_cli_after_load": same,
        "input_tokens_served": doc["totals"]["tokens"]["input"],
        "input_tokens_expected": expected_input,
        "cpus": os.cpu_count(),
    }
    counted = out["input_tokens_served"] == expected_input
    print(f"serve load: {out['requests_sent']}/{out['requests_planned']} requests from {a.clients} clients "
          f"in {out['seconds']} s ({out['requests_per_s']}/s) while {appended['lines']} lines were appended")
    print(f"  errors {errors}; latency p50 {out['p50_ms']} ms, p90 {out['p90_ms']} ms, "
          f"p99 {out['p99_ms']} ms, max {out['max_ms']} ms")
    for kind, v in per.items():
        print(f"  {kind:18} {v['requests']:6} req  {v['errors']} err  p50 {v['p50_ms']:8} ms  "
              f"p99 {v['p99_ms']:8} ms  max {v['max_ms']:8} ms")
    print(f"  after the load: /api/v1/report?period=all == report --json: {same}; "
          f"input tokens {out['input_tokens_served']} (expected {expected_input})")
    print("  slowest: " + ", ".join(f"{x['endpoint']} {x['ms']} ms at {x['started_at_s']} s" for x in out["slowest"]))
    for e in errors_seen:
        print(f"  error: {e}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(HERE, "out", f"serve-load-{stamp}.json"), "w") as fh:
        json.dump(out, fh, indent=2)
    if a.keep:
        print(f"  kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if errors == 0 and same and counted else 1)


if __name__ == "__main__":
    main()
