#!/usr/bin/env python3
"""Team mode of the benchmark (#11): N hosts writing M responses each into
one PostgreSQL server, then `check` latency against it, on loopback and
through a proxy on 127.0.0.1 that adds a round-trip delay.

It starts its own server (Debian's `postgresql` package: initdb and pg_ctl
on a temp dir, as the `postgres` user when run as root, a free port on
127.0.0.1) and removes it afterwards. Nothing leaves the machine.

    bench/team.py --bin target/x86_64-unknown-linux-gnu/release/octo-budget --hosts 4 --responses 5000 --calls 100

Reports (stdout, and JSON in bench/out/team-<time>.json):
- ingest: N `ingest` processes at once (one per host, each its own Claude
  dir and OCTO_BUDGET_HOST), wall time and responses per second into the
  server, and whether a third host's report equals the generated totals;
- check: p50/p99 of `check` (a prompt in an arm, its session growing by
  one response per call, so each call sends one row and reads the team's
  new rows) on loopback and with --delay-ms of added round-trip time, with
  the default working-copy cache (calls back to back: most answer from the
  copy) and with OCTO_BUDGET_TEAM_CACHE_MS=0 (every call syncs).
"""

import argparse
import glob
import json
import os
import pwd
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402

CONFIG = """timezone: UTC
budgets:
  - arm: acme
    path: /work/acme
    monthly_usd_cap: 100000
    action_on_breach: hard_stop
"""


def pg_bindir():
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and os.path.isfile(os.path.join(out.stdout.strip(), "initdb")):
            return out.stdout.strip()
    except FileNotFoundError:
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self):
        self.bin = pg_bindir()
        if not self.bin:
            sys.exit("team.py: no PostgreSQL server binaries (apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="octo-budget-bench-pg")
        self.root = os.geteuid() == 0
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        self.tool("initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-D", self.dir + "/data")
        self.tool("pg_ctl", "-D", self.dir + "/data", "-l", self.dir + "/log", "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=100",
                  "start")

    def tool(self, name, *args):
        cmd = [os.path.join(self.bin, name), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)

    def stop(self):
        try:
            self.tool("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk for delay/2 in each
    direction (a round trip gains `delay`)."""

    def __init__(self, target_port, delay_s):
        self.target = target_port
        self.half = delay_s / 2
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            s = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((c, s), (s, c)):
                a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    def pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                time.sleep(self.half)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def line(session, i, host, ts):
    return json.dumps({
        "type": "assistant", "cwd": "/work/acme", "sessionId": session, "version": "2.1.90",
        "requestId": f"req_{host}_{i}", "timestamp": ts, "uuid": f"u-{host}-{i}",
        "message": {"id": f"msg_{host}_{i}", "type": "message", "role": "assistant",
                    "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": "ok"}],
                    "usage": {"input_tokens": 100 + i % 7, "output_tokens": 50 + i % 5}},
    }) + "\n"


def generate(root, hosts, responses, per_file=200):
    expected = {"input": 0, "output": 0, "messages": 0}
    for h in range(hosts):
        proj = os.path.join(root, f"claude-h{h}", "projects", "-work-acme")
        os.makedirs(proj, exist_ok=True)
        for f in range(0, responses, per_file):
            with open(os.path.join(proj, f"s-h{h}-{f}.jsonl"), "w") as out:
                for i in range(f, min(f + per_file, responses)):
                    ts = f"2026-11-{1 + i % 20:02d}T12:{i % 15:02d}:00Z"
                    out.write(line(f"s-h{h}-{f}", i, f"h{h}", ts))
                    expected["input"] += 100 + i % 7
                    expected["output"] += 50 + i % 5
                    expected["messages"] += 1
    return expected


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=measure.release_bin(os.path.dirname(HERE)))
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--responses", type=int, default=5000, help="per host")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "out"))
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="octo-budget-bench-team")
    server = Server()
    try:
        cfg = os.path.join(work, "budgets.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        home = os.path.join(work, "home")
        os.makedirs(home)
        expected = generate(work, args.hosts, args.responses)
        uri = f"postgres://postgres@127.0.0.1:{server.port}/postgres?sslmode=disable"
        now = "2026-11-28T00:00:00Z"

        def env(host, claude, cache_ms=None):
            e = {"HOME": home, "PATH": os.environ.get("PATH", ""), "TZ": "UTC",
                 "OCTO_BUDGET_HOST": host, "CLAUDE_CONFIG_DIR": claude}
            if cache_ms is not None:
                e["OCTO_BUDGET_TEAM_CACHE_MS"] = str(cache_ms)
            return e

        def cmd(ledger, *a):
            return [binary, "--config", cfg, "--ledger", ledger, "--now", now, *a]

        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd(uri, "ingest", "--quiet"),
                                  env=env(f"h{h}", os.path.join(work, f"claude-h{h}")))
                 for h in range(args.hosts)]
        codes = [p.wait() for p in procs]
        ingest_s = time.perf_counter() - t0
        total = args.hosts * args.responses
        empty = os.path.join(work, "claude-empty")
        os.makedirs(os.path.join(empty, "projects"))
        t0 = time.perf_counter()
        rep = subprocess.run(cmd(uri, "report", "--json"), env=env("reader", empty),
                             capture_output=True, text=True)
        reader_s = time.perf_counter() - t0
        got = json.loads(rep.stdout)["totals"] if rep.returncode == 0 else {}
        exact = (got.get("messages") == expected["messages"]
                 and got.get("tokens", {}).get("input") == expected["input"]
                 and got.get("tokens", {}).get("output") == expected["output"])

        def prepare(ledger, host, cache_ms=None, dirs=()):
            claude = os.path.join(work, f"claude-{host}")
            proj = os.path.join(claude, "projects", "-work-acme")
            os.makedirs(proj, exist_ok=True)
            transcript = os.path.join(proj, f"s-{host}.jsonl")
            # A one-machine ledger reads every host's tree itself (the same
            # spend as the team's), a team host only its own.
            claude = ",".join([claude, *dirs])
            subprocess.run(cmd(ledger, "ingest", "--quiet"), env=env(host, claude), check=True)
            return {"ledger": ledger, "host": host, "claude": claude, "cache": cache_ms,
                    "transcript": transcript, "times": []}

        def call(v, i):
            with open(v["transcript"], "a") as f:
                f.write(line(f"s-{v['host']}", 10_000_000 + i, v["host"], "2026-11-27T12:00:00Z"))
            hook = json.dumps({"session_id": f"s-{v['host']}", "transcript_path": v["transcript"],
                               "cwd": "/work/acme", "hook_event_name": "UserPromptSubmit",
                               "prompt": "go"})
            t = time.perf_counter()
            r = subprocess.run(cmd(v["ledger"], "check"), env=env(v["host"], v["claude"], v["cache"]),
                               input=hook, capture_output=True, text=True)
            v["times"].append((time.perf_counter() - t) * 1000)
            if r.returncode != 0:
                sys.exit(f"check failed: {r.stderr}")

        proxy = DelayProxy(server.port, args.delay_ms / 1000)
        delayed_uri = uri.replace(f":{server.port}/", f":{proxy.port}/")
        variants = {
            "check_sqlite": prepare(os.path.join(work, "local.sqlite"), "solo",
                                    dirs=[os.path.join(work, f"claude-h{h}") for h in range(args.hosts)]),
            "check_team_loopback_cache_2s": prepare(uri, "loop"),
            "check_team_loopback_always_sync": prepare(uri, "loopsync", 0),
            f"check_team_plus_{args.delay_ms:g}ms_rtt_cache_2s": prepare(delayed_uri, "delayed"),
            f"check_team_plus_{args.delay_ms:g}ms_rtt_always_sync": prepare(delayed_uri, "delayedsync", 0),
        }
        # Interleaved (one call of each variant in turn), so that a loaded
        # machine weighs on all of them alike.
        for i in range(args.calls):
            for v in variants.values():
                call(v, i)
        latency = {k: {"p50_ms": round(statistics.median(v["times"]), 2),
                       "p99_ms": round(pct(v["times"], 99), 2)} for k, v in variants.items()}
        result = {
            "hosts": args.hosts, "responses_per_host": args.responses,
            "ingest_exit_codes": codes, "ingest_wall_s": round(ingest_s, 3),
            "ingest_responses_per_s": round(total / ingest_s),
            "reader_first_report_s": round(reader_s, 3), "reader_totals_exact": exact,
            **latency,
            "calls": args.calls, "loadavg": os.getloadavg(),
        }
        print(json.dumps(result, indent=2))
        os.makedirs(args.out_dir, exist_ok=True)
        with open(os.path.join(args.out_dir, time.strftime("team-%Y%m%dT%H%M%S.json")), "w") as f:
            json.dump(result, f, indent=2)
        if not exact or any(codes):
            sys.exit("team.py: totals differ from the generated ones, or an ingest failed")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
