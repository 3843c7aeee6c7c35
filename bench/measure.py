#!/usr/bin/env python3
"""Measure octo-budget (and optionally ccusage) on a tree made by gen_tree.py.

Called by bench/run.sh; usable on its own:
    python3 bench/measure.py --tree DIR --bin target/x86_64-unknown-linux-gnu/release/octo-budget [--ccusage PATH] [--calls 250]

Prints a table and writes bench/out/results-<timestamp>.json and bench/out/latest.json.
Exit status: 1 if octo-budget's token totals differ from expected.json, any
octo-budget command fails, or any `check` call fails; 0 otherwise (targets
that are missed are reported, not fatal, unless --strict).
Python 3 standard library only.
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_tree  # noqa: E402

NOW = "2026-10-31T23:00:00Z"
# appended lines land in [21:00, 23:00) on the last day of the month, before --now
APPEND_BASE_MS = gen_tree.calendar.timegm((2026, 10, 31, 21, 0, 0)) * 1000
CHECK_BASE_MS = gen_tree.calendar.timegm((2026, 10, 31, 22, 0, 0)) * 1000

# every target is "at most" (issue #12)
TARGETS = {
    "report_first_time_ratio": 0.5,
    "report_second_time_ratio": 0.05,
    "report_all_time_ratio": 0.05,
    "rss_ratio": 0.5,
    "check_p50_ms": 5.0,
    "check_p99_ms": 15.0,
    "check_ungated_p50_ms": 3.0,
    "check_growth_ratio": 1.3,
    "statusline_p50_ms": 5.0,
    "statusline_p99_ms": 15.0,
}


# ---------------------------------------------------------------- process running
class Result(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)


def release_bin(root):
    """The release binary: .cargo/config.toml builds for the host's target by
    name (target/<host>/release), else cargo's plain target/release."""
    try:
        host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout
        host = next(l.split(": ", 1)[1] for l in host.splitlines() if l.startswith("host: "))
        named = os.path.join(root, "target", host, "release", "octo-budget")
        if os.path.exists(named):
            return named
    except (OSError, StopIteration):
        pass
    return os.path.join(root, "target", "release", "octo-budget")


def gnu_time():
    """/usr/bin/time if it is GNU time (supports -f/-o), else None."""
    p = "/usr/bin/time"
    if not os.access(p, os.X_OK):
        return None
    try:
        with tempfile.NamedTemporaryFile() as tf:
            r = subprocess.run([p, "-f", "%M", "-o", tf.name, "true"], capture_output=True, timeout=10)
            if r.returncode == 0 and open(tf.name).read().strip().isdigit():
                return p
    except (OSError, subprocess.SubprocessError):
        pass
    return None


TIME_BIN = gnu_time()
RSS_METHOD = "/usr/bin/time -f %M" if TIME_BIN else "wait4 rusage (includes the forked parent's pages: an upper bound)"


def run(cmd, env, stdin_path=None, timeout=900, cwd=None, rss=True):
    """Run one child; wall time via perf_counter around it.  Peak RSS via GNU time
    (the forked copy of a small C program, not of this Python process), else wait4."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    in_f = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    killed = {"v": False}
    tfile = None
    argv = cmd
    if rss and TIME_BIN:
        fd, tfile = tempfile.mkstemp(prefix="octo-bench-time-")
        os.close(fd)
        argv = [TIME_BIN, "-f", "%M", "-o", tfile] + list(cmd)
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=in_f, stdout=out_f, stderr=err_f, env=env, cwd=cwd)

    def kill():
        killed["v"] = True
        try:
            p.kill()
        except OSError:
            pass
    timer = threading.Timer(timeout, kill)
    timer.start()
    _pid, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if stdin_path:
        in_f.close()
    out_f.seek(0)
    err_f.seek(0)
    max_rss = ru.ru_maxrss if rss else None
    if tfile:
        try:
            with open(tfile) as fh:
                txt = fh.read().split()
            # GNU time prefixes "Command exited with non-zero status N" when the child fails
            max_rss = int(txt[-1])
        except (OSError, ValueError, IndexError):
            pass
        os.remove(tfile)
    r = Result(
        cmd=cmd, exit=p.returncode, wall_s=t1 - t0, max_rss_kb=max_rss,
        user_s=ru.ru_utime, sys_s=ru.ru_stime, timed_out=killed["v"],
    )
    r.stdout = out_f.read()
    r.stderr = err_f.read()
    out_f.close()
    err_f.close()
    return r


def brief(r):
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if k != "cmd"}


def summarize(entry, samples):
    """Median wall/cpu and max RSS over repeated runs; the samples are kept."""
    if not samples:
        return
    walls = [x["wall_s"] for x in samples]
    entry["runs"] = len(samples)
    entry["wall_s"] = round(pct(walls, 50), 6)
    entry["wall_s_samples"] = [round(w, 6) for w in walls]
    entry["user_s"] = round(pct([x["user_s"] for x in samples], 50), 6)
    entry["sys_s"] = round(pct([x["sys_s"] for x in samples], 50), 6)
    rss = [x["max_rss_kb"] for x in samples if x["max_rss_kb"] is not None]
    entry["max_rss_kb"] = max(rss) if rss else None


def tail(b, n=600):
    s = b.decode("utf-8", "replace").strip()
    return s[-n:]


# ---------------------------------------------------------------- comparisons
def octo_tokens(doc):
    """(tokens dict, messages, cost) from octo-budget report JSON, or raise."""
    tot = doc["totals"]
    t = tot["tokens"]
    cost = None
    for k in ("cost_usd", "usd", "cost", "spend_usd", "total_usd"):
        if k in tot and isinstance(tot[k], (int, float, str)):
            try:
                cost = float(tot[k])
                break
            except ValueError:
                pass
    return t, tot.get("messages"), cost


def micros(usd):
    """A report's dollar figure (micro-dollar precision) as integer micro-dollars."""
    return int(round(float(usd) * 1e6)) if isinstance(usd, (int, float)) else None


def compare_octo(doc, exp):
    """Returns (fatal_mismatches, warnings, got).  Fatal: any token total, the
    total cost, web searches, or any arm's tokens, messages or cost differing from
    what the generator wrote (costs exact to the micro-dollar); an arm missing;
    spend left unattributed."""
    fatal, warn = [], []
    try:
        t, messages, cost = octo_tokens(doc)
        got = {
            "input": t["input"], "output": t["output"], "cache_read": t["cache_read"],
            "cache_creation": t["cache_write_5m"] + t["cache_write_1h"],
            "cache_creation_5m": t["cache_write_5m"], "cache_creation_1h": t["cache_write_1h"],
            "messages": messages, "cost_usd": cost,
            "web_search_requests": doc["totals"].get("web_search_requests"),
        }
    except (KeyError, TypeError) as e:
        return ["report JSON lacks totals.tokens.* (%s: %s)" % (type(e).__name__, e)], [], None
    et = exp["tokens"]
    for k in ("input", "output", "cache_read", "cache_creation", "cache_creation_5m", "cache_creation_1h"):
        if got[k] != et[k]:
            fatal.append("%s: octo-budget %s, expected %s (diff %+d)" % (k, got[k], et[k], got[k] - et[k]))
    if messages is not None and messages != exp["responses"]:
        fatal.append("messages: octo-budget %s, expected %s unique responses" % (messages, exp["responses"]))
    if got["web_search_requests"] != exp["web_search_requests"]:
        fatal.append("web_search_requests: octo-budget %s, expected %s" % (got["web_search_requests"],
                                                                         exp["web_search_requests"]))
    if micros(cost) != exp["cost_micros"]:
        fatal.append("cost: octo-budget %s, expected %.6f (list prices of prices.md, exact to the micro-dollar)"
                     % (cost, exp["cost_micros"] / 1e6))
    arms = doc.get("arms")
    if not isinstance(arms, list):
        fatal.append("report JSON has no arms list")
        arms = []
    seen = set()
    for a in arms:
        name = a.get("arm") if isinstance(a, dict) else None
        if name is None:
            continue
        seen.add(name)
        e = exp["per_arm"].get(name)
        try:
            at = a["tokens"]
            g = (at["input"], at["output"], at["cache_write_5m"] + at["cache_write_1h"], at["cache_read"],
                 a.get("messages"), a.get("web_search_requests"))
        except (KeyError, TypeError):
            fatal.append("arm %s: no tokens in the report" % name)
            continue
        w = ((e["input"], e["output"], e["cache_creation"], e["cache_read"], e["responses"],
              e["web_search_requests"]) if e else (0, 0, 0, 0, 0, 0))
        if g != w:
            fatal.append("arm %s: octo-budget (in, out, cache_write, cache_read, messages, web_search) %s, expected %s"
                         % (name, g, w))
        want = e["cost_micros"] if e else 0
        if micros(a.get("cost_usd")) != want:
            fatal.append("arm %s: cost octo-budget %s, expected %.6f" % (name, a.get("cost_usd"), want / 1e6))
    for name in exp["per_arm"]:
        if name not in seen:
            fatal.append("arm %s: missing from the report (expected %d messages)" % (name, exp["per_arm"][name]["responses"]))
    un = doc.get("unattributed")
    if isinstance(un, dict):
        ut = un.get("tokens") or {}
        if any(isinstance(v, (int, float)) and v for v in ut.values()) or un.get("messages"):
            fatal.append("unattributed spend is not zero: %s" % json.dumps(un)[:300])
    sk = doc.get("skipped_lines")
    if sk:
        got["skipped_lines"] = sk
        warn.append("skipped_lines: %s (the generator writes no malformed lines)" % sk)
    return fatal, warn, got


def compare_ccusage(doc, exp):
    mism = []
    try:
        t = doc["totals"]
        got = {"input": t["inputTokens"], "output": t["outputTokens"],
               "cache_creation": t["cacheCreationTokens"], "cache_read": t["cacheReadTokens"],
               "cost_usd": t.get("totalCost")}
    except (KeyError, TypeError) as e:
        return ["ccusage JSON lacks totals (%s)" % e], None
    for k in ("input", "output", "cache_creation", "cache_read"):
        if got[k] != exp["tokens"][k]:
            mism.append("%s: ccusage %s, expected %s (diff %+d)" % (k, got[k], exp["tokens"][k], got[k] - exp["tokens"][k]))
    return mism, got


# ---------------------------------------------------------------- tree mutation (restorable)
class Mutations:
    """Appends to tree files, remembering original sizes in TREE/.dirty so any
    later run (or this one, at exit) can truncate them back."""

    def __init__(self, tree):
        self.tree = tree
        self.path = os.path.join(tree, ".dirty")
        self.orig = {}

    @staticmethod
    def restore_leftovers(tree):
        p = os.path.join(tree, ".dirty")
        if not os.path.exists(p):
            return 0
        with open(p) as fh:
            orig = json.load(fh)
        for f, sz in orig.items():
            if os.path.exists(f) and os.path.getsize(f) > sz:
                os.truncate(f, sz)
        os.remove(p)
        return len(orig)

    def append(self, path, data):
        if path not in self.orig:
            self.orig[path] = os.path.getsize(path)
            with open(self.path, "w") as fh:
                json.dump(self.orig, fh)
        with open(path, "a", encoding="ascii") as fh:
            fh.write(data)
            fh.flush()

    def restore(self):
        for f, sz in self.orig.items():
            if os.path.exists(f):
                os.truncate(f, sz)
        if os.path.exists(self.path):
            os.remove(self.path)
        self.orig = {}


def make_appender(entry, tree, rng):
    ids = gen_tree.Ids(rng)
    mat = APPEND_MAT
    sidechain = entry["kind"] != "session"

    def env_fn(parent):
        return gen_tree.envelope(parent, sidechain, entry["cwd"], entry["session_id"], entry["version"],
                                 entry["git_branch"], entry.get("agent_id"))
    state = {"parent": ids.uuid()}

    def new_response(ms):
        usage = (rng.choice((1, 3, 5)), rng.randint(5, 2000), 0, rng.randint(0, 5000), rng.randint(10000, 150000),
                 rng.randint(1, 3) if rng.random() < 0.1 else 0)
        if rng.random() < 0.5:
            usage = (usage[0], usage[1], usage[3], 0, usage[4], usage[5])
        lines, msg_id, req_id, last = gen_tree.simple_assistant_response(
            ids, mat, env_fn, state["parent"], entry["model"], ms, usage)
        state["parent"] = last
        return "".join(lines), usage, entry["model"]
    return new_response


def add_usage(exp, model, arm, usage):
    """Adds one appended response to the expected totals (costs in exact picodollars)."""
    inp, out, c5, c1, cr = usage[:5]
    ws = usage[5] if len(usage) > 5 else 0
    picos = gen_tree.cost_picos(model, usage)
    for d in [exp["tokens"]] + [x for x in (exp["per_model"].get(model), exp["per_arm"].get(arm)) if x is not None]:
        d["input"] += inp
        d["output"] += out
        d["cache_creation"] += c5 + c1
        d["cache_creation_5m"] += c5
        d["cache_creation_1h"] += c1
        d["cache_read"] += cr
        d["total"] += inp + out + c5 + c1 + cr
        if "responses" in d:
            d["responses"] += 1
            d["web_search_requests"] += ws
            d["cost_picos"] += picos
            d["cost_micros"] = gen_tree.micros_of(d["cost_picos"])
            d["cost_usd"] = d["cost_micros"] / 1e6
    exp["responses"] += 1
    exp["web_search_requests"] += ws
    exp["cost_picos"] += picos
    exp["cost_micros"] = gen_tree.micros_of(exp["cost_picos"])
    exp["cost_usd"] = exp["cost_micros"] / 1e6


# ---------------------------------------------------------------- machine
def machine_info():
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        info["nproc_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["mem_total_kb"] = int(line.split()[1])
                    break
    except OSError:
        pass
    return info


def git_info(repo):
    def g(*a):
        try:
            return subprocess.run(["git", "-C", repo] + list(a), capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": g("rev-parse", "HEAD") or None, "branch": g("rev-parse", "--abbrev-ref", "HEAD") or None,
            "dirty": bool(g("status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml", "Cargo.lock"))}


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    x = p / 100.0 * (len(v) - 1)
    i = int(math.floor(x))
    j = min(i + 1, len(v) - 1)
    return v[i] + (v[j] - v[i]) * (x - i)


# ---------------------------------------------------------------- hook latency
REFUSED = b"cannot check the budget"
# A process that does nothing: the floor under every hook call.
TRUE_BIN = shutil.which("true") or "/bin/true"


def pick_session(manifest):
    """A real main session of about 1 MiB (the largest below that on small trees)."""
    sess = [m for m in manifest if m.get("kind") == "session" and not m.get("resumes") and m["responses"] > 0]
    want = min(1 << 20, max(s["bytes"] for s in sess))
    return min(sess, key=lambda s: (abs(s["bytes"] - want), s["path"]))


def timed_calls(a, name, cmd, env, stdin_path, grow, calls, fails, ok_exits=(0, 2), one_line=False):
    """3 warm-up calls, then `calls` timed ones, the transcript growing by one
    response before each.  A call that cannot decide ("cannot check the budget",
    whatever its exit code) is a failure, never a fast answer."""
    times, codes = [], {}
    r = None
    warmup = 3
    for i in range(warmup + calls):
        if i > 0:
            grow()
        r = run(cmd, env, stdin_path=stdin_path, timeout=60, rss=False)
        if i < warmup:
            if REFUSED in r.stderr:
                fails.append({"call": i - warmup, "exit": r.exit, "stderr": tail(r.stderr, 300)})
            continue
        times.append(r["wall_s"] * 1000.0)
        codes[str(r.exit)] = codes.get(str(r.exit), 0) + 1
        out = tail(r.stdout, 300)
        bad = r.exit not in ok_exits or REFUSED in r.stderr or r["timed_out"]
        if one_line:
            bad = bad or not out or out.startswith("octo-budget:") or "\n" in out
        if bad:
            fails.append({"call": i - warmup, "exit": r.exit, "stderr": tail(r.stderr, 300), "stdout": out,
                          "timed_out": r["timed_out"]})
    return times, codes, r


def latency(times):
    """Percentiles of the timed calls, and every call's time in order (drift
    within a series shows there, not in the percentiles)."""
    return {
        "samples_ms": [round(t, 3) for t in times],
        "p50_ms": round(pct(times, 50), 3) if times else None,
        "p90_ms": round(pct(times, 90), 3) if times else None,
        "p99_ms": round(pct(times, 99), 3) if times else None,
        "max_ms": round(max(times), 3) if times else None,
        "mean_ms": round(sum(times) / len(times), 3) if times else None,
    }


def hook_series(a, tree, manifest, rng, mut, env, work, check_cmd, statusline_cmd, failures, statusline, suffix=""):
    """check (a gated tool), check (a tool the gate lets through) and statusline,
    on one real session whose transcript grows by one response before each call.
    Results are named check, check_ungated and statusline, plus `suffix`."""
    out = {}
    target = pick_session(manifest)
    tpath = os.path.join(tree, target["path"])
    app = make_appender(target, tree, rng)
    clock = {"ms": CHECK_BASE_MS}

    def grow():
        data, _u, _m = app(clock["ms"])
        clock["ms"] += 2000
        mut.append(tpath, data)

    base = {"session_id": target["session_id"], "transcript_path": tpath, "cwd": target["cwd"]}
    cases = [("check", dict(base, hook_event_name="PreToolUse", tool_name="Agent", tool_input={"prompt": "x"})),
             ("check_ungated", dict(base, hook_event_name="PreToolUse", tool_name="Read",
                                    tool_input={"file_path": target["cwd"] + "/src/main.rs"}))]
    for name, payload in cases:
        name += suffix
        stdin_path = os.path.join(work, name + "-stdin.json")
        with open(stdin_path, "w") as fh:
            json.dump(payload, fh)
        fails = []
        gated = name == "check" + suffix
        times, codes, r = timed_calls(a, name, check_cmd, env, stdin_path, grow, a.calls, fails,
                                      ok_exits=(0, 2) if gated else (0,))
        rss = []
        if gated:
            for _ in range(3):  # peak RSS, measured on extra calls outside the timed ones
                grow()
                rr = run(check_cmd, env, stdin_path=stdin_path, timeout=60)
                if rr["max_rss_kb"] is not None:
                    rss.append(rr["max_rss_kb"])
        e = {"calls": a.calls, "warmup_calls": 3, "session_file": target["path"],
             "session_file_bytes": target["bytes"], "arm": target["arm"], "stdin": payload}
        e.update(latency(times))
        e.update({"max_rss_kb": max(rss) if rss else None, "exit_codes": codes, "failures": len(fails),
                  "failure_samples": fails[:5], "last_stdout": tail(r.stdout, 400) if r else "",
                  "last_stderr": tail(r.stderr, 400) if r else ""})
        out[name] = e
        if fails:
            failures.append("%s: %d of %d calls failed, first: exit %s %s" % (
                name, len(fails), a.calls, fails[0]["exit"], fails[0]["stderr"][:200]))
    if statusline:
        # Claude Code's status JSON (one refresh per appended response)
        spayload = dict(base, workspace={"current_dir": target["cwd"], "project_dir": target["cwd"]},
                        model={"id": "claude-opus-5-5", "display_name": "Opus 5.5"},
                        cost={"total_cost_usd": 0.5, "total_duration_ms": 8428})
        sstdin_path = os.path.join(work, "statusline%s-stdin.json" % suffix)
        with open(sstdin_path, "w") as fh:
            json.dump(spayload, fh)
        sfails = []
        stimes, _codes, r = timed_calls(a, "statusline" + suffix, statusline_cmd, env, sstdin_path, grow, a.calls,
                                        sfails, ok_exits=(0,), one_line=True)
        e = {"calls": a.calls, "warmup_calls": 3, "stdin": spayload}
        e.update(latency(stimes))
        e.update({"failures": len(sfails), "failure_samples": sfails[:5],
                  "last_stdout": tail(r.stdout, 300) if r else ""})
        out["statusline" + suffix] = e
        if sfails:
            failures.append("statusline%s: %d of %d calls did not print a status line, first: %s" % (
                suffix, len(sfails), a.calls, json.dumps(sfails[0])[:200]))
    return out


def helper_rss_kb(run_dir):
    """Peak RSS of the resident helper whose socket is under run_dir (None if
    none runs), then ends it."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                argv = fh.read().split(b"\0")
            if b"resident" not in argv or not any(run_dir.encode() in x for x in argv):
                continue
            with open("/proc/%s/status" % pid) as fh:
                hwm = [int(l.split()[1]) for l in fh if l.startswith("VmHWM:")]
            os.kill(int(pid), signal.SIGTERM)
            return hwm[0] if hwm else None
        except (OSError, ValueError):
            continue
    return None


def compare_check(a, binp, env, work, failures):
    """The gated check on the comparison tree: its ledger filled by one report first."""
    tree = os.path.abspath(a.compare_tree)
    Mutations.restore_leftovers(tree)
    with open(os.path.join(tree, "expected.json")) as fh:
        exp = json.load(fh)
    with open(os.path.join(tree, "manifest.json")) as fh:
        manifest = json.load(fh)["files"]
    cwork = os.path.join(work, "compare")
    os.makedirs(cwork)
    ledger = os.path.join(cwork, "ledger", "ledger.sqlite")
    os.makedirs(os.path.dirname(ledger))
    base_args = ["--config", os.path.join(tree, "budgets.yaml"), "--claude-dir", os.path.join(tree, "claude"),
                 "--ledger", ledger, "--now", NOW]
    r = run([binp, "report"] + base_args + ["--period", "month", "--json"], env, timeout=1800)
    out = {"tree_path": tree, "tree": {k: exp.get(k) for k in ("size_mb", "files", "bytes", "responses")}}
    if r.exit != 0:
        failures.append("check_compare: the first report exited %d: %s" % (r.exit, tail(r.stderr, 300)))
        return out
    fatal, _warn, _got = compare_octo(json.loads(r.stdout), exp)
    for m in fatal:
        failures.append("check_compare: " + m)
    rng = random.Random(exp["seed"] * 1000003 + 29)
    mut = Mutations(tree)
    try:
        out.update(hook_series(a, tree, manifest, rng, mut, env, cwork, [binp, "check", "--resident"] + base_args,
                               None, failures, statusline=False))
        out.update(hook_series(a, tree, manifest, rng, mut, env, cwork, [binp, "check"] + base_args,
                               None, failures, statusline=False, suffix="_in_process"))
    finally:
        mut.restore()
    return out


# ---------------------------------------------------------------- main
APPEND_MAT = None


def main():
    global APPEND_MAT
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", required=True)
    ap.add_argument("--bin", required=True, help="octo-budget binary")
    ap.add_argument("--ccusage", help="ccusage binary (omit to skip the peer)")
    ap.add_argument("--calls", type=int, default=250)
    ap.add_argument("--append-pct", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of ccusage, of report #1 (fresh ledger each) and of report #2; medians reported")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    ap.add_argument("--repo", default=os.path.dirname(HERE))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (ledger, outputs)")
    ap.add_argument("--strict", action="store_true", help="also exit 1 when a target is missed")
    ap.add_argument("--label", default="")
    ap.add_argument("--compare-tree", help="a smaller tree: also time the gated check on it (history all in the month)")
    a = ap.parse_args()

    tree = os.path.abspath(a.tree)
    binp = os.path.abspath(a.bin)
    n = Mutations.restore_leftovers(tree)
    if n:
        print("restored %d files left appended by an interrupted run" % n)
    with open(os.path.join(tree, "expected.json")) as fh:
        exp0 = json.load(fh)
    with open(os.path.join(tree, "manifest.json")) as fh:
        manifest = json.load(fh)["files"]
    seed = exp0["seed"]
    rng = random.Random(seed * 1000003 + 17)
    APPEND_MAT = gen_tree.Material(random.Random(seed + 5))

    work = tempfile.mkdtemp(prefix="octo-bench-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    ledger = os.path.join(work, "ledger", "ledger.sqlite")
    os.makedirs(os.path.dirname(ledger))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OCTO_BUDGET_") and k not in ("CLAUDE_CONFIG_DIR",) and not k.startswith("XDG_")}
    env["HOME"] = home
    config = os.path.join(tree, "budgets.yaml")
    claude = os.path.join(tree, "claude")
    base_args = ["--config", config, "--claude-dir", claude, "--ledger", ledger, "--now", NOW]
    report_cmd = [binp, "report"] + base_args + ["--period", "month", "--json"]
    report_all_cmd = [binp, "report"] + base_args + ["--period", "all", "--json"]
    # As `hook install` writes them: answered by the resident helper; the
    # same commands without --resident answer in their own process.
    check_cmd = [binp, "check", "--resident"] + base_args
    statusline_cmd = [binp, "statusline", "--resident"] + base_args
    run_dir = os.path.join(work, "run")
    os.makedirs(run_dir)
    env["XDG_RUNTIME_DIR"] = run_dir

    results = {
        "schema": 1,
        "label": a.label,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "git": git_info(a.repo),
        "tree": {k: exp0.get(k) for k in ("seed", "size_mb", "files", "bytes", "transcript_files", "transcript_bytes",
                                          "kinds", "arms", "responses", "assistant_lines", "size_quantiles")},
        "tree_path": tree,
        "commands": {"report": report_cmd, "report_all": report_all_cmd, "check": check_cmd,
                     "statusline": statusline_cmd, "check_in_process": [binp, "check"] + base_args,
                     "statusline_in_process": [binp, "statusline"] + base_args},
        "targets": TARGETS,
        "rss_method": RSS_METHOD,
        "timing_method": "time.perf_counter around each child (spawn included)",
    }
    failures = []
    warnings = []
    mut = Mutations(tree)
    try:
        v = run([binp, "--version"], env, timeout=30)
        results["octo_budget_version"] = tail(v.stdout, 200) if v.exit == 0 else None

        # warm the page cache so both tools read from memory
        t0 = time.perf_counter()
        nb = 0
        for dp, _dn, fns in os.walk(claude):
            for fn in fns:
                with open(os.path.join(dp, fn), "rb") as fh:
                    while True:
                        b = fh.read(1 << 22)
                        if not b:
                            break
                        nb += len(b)
        results["warm_read"] = {"bytes": nb, "seconds": round(time.perf_counter() - t0, 3)}

        # ---------------- ccusage
        if a.ccusage:
            cenv = dict(env)
            cenv["HOME"] = os.path.join(work, "home-ccusage")
            os.makedirs(cenv["HOME"])
            cenv["CLAUDE_CONFIG_DIR"] = claude
            ccmd = [os.path.abspath(a.ccusage), "claude", "daily", "--json", "--offline", "--timezone", "UTC"]
            samples = []
            for _ in range(a.repeat):
                r = run(ccmd, cenv, timeout=1800)
                samples.append(r)
                if r.exit != 0:
                    break
            entry = brief(r)
            summarize(entry, samples)
            entry["cmd"] = ccmd
            if r.exit != 0:
                entry["error"] = tail(r.stderr)
                warnings.append("ccusage exited %d: %s" % (r.exit, tail(r.stderr, 300)))
            else:
                try:
                    doc = json.loads(r.stdout)
                    mism, got = compare_ccusage(doc, exp0)
                    entry["totals"] = got
                    entry["tokens_match_expected"] = not mism
                    entry["mismatches"] = mism
                    for m in mism:
                        warnings.append("ccusage " + m)
                except ValueError as e:
                    entry["error"] = "bad JSON: %s" % e
                    warnings.append("ccusage printed bad JSON")
            results["ccusage"] = entry

        # ---------------- octo-budget reports
        def wipe_ledger():
            d = os.path.dirname(ledger)
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

        def report(name, expected, repeat=1, fresh=False, cmd=None):
            cmd = cmd or report_cmd
            samples = []
            entry = {}
            for i in range(repeat):
                if fresh:
                    wipe_ledger()
                r = run(cmd, env, timeout=1800)
                samples.append(r)
                entry = brief(r)
                entry["cmd"] = cmd
                entry["expected_tokens"] = expected["tokens"]
                if r.exit != 0:
                    entry["error"] = tail(r.stderr)
                    failures.append("%s: exit %d: %s" % (name, r.exit, tail(r.stderr, 400)))
                    entry["tokens_match_expected"] = False
                    break
                try:
                    doc = json.loads(r.stdout)
                except ValueError as e:
                    failures.append("%s: stdout is not JSON (%s): %s" % (name, e, tail(r.stdout, 200)))
                    entry["tokens_match_expected"] = False
                    break
                fatal, warn, got = compare_octo(doc, expected)
                entry["totals"] = got
                entry["tokens_match_expected"] = not fatal
                entry["mismatches"] = fatal
                entry["warnings"] = warn
                if fatal or warn or i == repeat - 1:
                    for m in fatal:
                        failures.append("%s: %s" % (name, m))
                    for m in warn:
                        warnings.append("%s: %s" % (name, m))
                    with open(os.path.join(work, name + ".json"), "wb") as fh:
                        fh.write(r.stdout)
                    if fatal:
                        break
            if samples and r.stderr and a.keep:
                with open(os.path.join(work, name + ".stderr"), "wb") as fh:
                    fh.write(r.stderr)
            summarize(entry, samples)
            results[name] = entry

        report("report_first", exp0, a.repeat, fresh=True)
        report("report_second", exp0, a.repeat)
        # all time, tree unchanged (the tree's history is all in one month, so the totals are the same)
        report("report_all", exp0, a.repeat, cmd=report_all_cmd)

        # ---------------- append to 1% of transcript files
        exp1 = json.loads(json.dumps(exp0))
        tfiles = [m for m in manifest if m.get("transcript")]
        k = max(1, int(round(len(tfiles) * a.append_pct / 100.0)))
        chosen = rng.sample(tfiles, k)
        t_ms = APPEND_BASE_MS
        appended_lines = 0
        for m in chosen:
            path = os.path.join(tree, m["path"])
            app = make_appender(m, tree, rng)
            chunks = []
            for _ in range(rng.randint(1, 3)):
                data, usage, model = app(t_ms)
                t_ms += rng.randint(1000, 20000)
                chunks.append(data)
                appended_lines += data.count("\n")
                add_usage(exp1, model, m["arm"], usage)
            mut.append(path, "".join(chunks))
        results["append"] = {"files": k, "lines": appended_lines,
                             "responses": exp1["responses"] - exp0["responses"]}
        report("report_after_append", exp1)

        # ---------------- the floor of a hook call on this machine right now: starting a
        # process that does nothing, through the same harness (the VM's speed moves it)
        floor = [run([TRUE_BIN], env, timeout=30, rss=False)["wall_s"] * 1000.0 for _ in range(53)][3:]
        results["process_floor"] = dict(latency(floor), cmd=[TRUE_BIN])

        # ---------------- check and statusline latency while one transcript grows
        hooks = hook_series(a, tree, manifest, rng, mut, env, work, check_cmd, statusline_cmd, failures,
                            statusline=True)
        results.update(hooks)
        results["helper_max_rss_kb"] = helper_rss_kb(run_dir)
        results.update(hook_series(a, tree, manifest, rng, mut, env, work, [binp, "check"] + base_args,
                                   [binp, "statusline"] + base_args, failures, statusline=True,
                                   suffix="_in_process"))

        # ---------------- the same gated check on a smaller tree (history all in the month too):
        # a call must cost what is new plus a constant, whatever the history
        if a.compare_tree:
            results["check_compare"] = compare_check(a, binp, env, work, failures)
    finally:
        mut.restore()
        if a.keep:
            results["work_dir"] = work
        else:
            shutil.rmtree(work, ignore_errors=True)

    try:
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    la = results["machine"].get("loadavg_at_start", [0])[0]
    if la > 0.5 * (os.cpu_count() or 1):
        warnings.append("load average was %.2f at start: other work on this machine skews the timings" % la)

    # ---------------- ratios and targets
    cc = results.get("ccusage")
    cc_ok = cc is not None and cc.get("exit") == 0

    def ratio(x, y):
        return round(x / y, 4) if (x is not None and y) else None

    rows = []
    met_all = True

    def row(metric, octo, peer, rt, target, fmt):
        nonlocal met_all
        met = None
        if target is not None:
            kind, lim = target
            val = rt if kind == "ratio" else octo
            if val is not None:
                met = val <= lim
                met_all = met_all and met
        rows.append({"metric": metric, "octo_budget": octo, "ccusage": peer, "ratio": rt,
                     "target": None if target is None else "<= %s" % target[1],
                     "met": met, "fmt": fmt})

    cct = cc["wall_s"] if cc_ok else None
    ccr = cc["max_rss_kb"] if cc_ok else None
    for name, label, tgt in (("report_first", "report #1, empty ledger (s)", ("ratio", TARGETS["report_first_time_ratio"])),
                             ("report_second", "report #2, unchanged: incremental read vs full rescan (s)",
                              ("ratio", TARGETS["report_second_time_ratio"])),
                             ("report_all", "report --period all, unchanged: incremental vs full rescan (s)",
                              ("ratio", TARGETS["report_all_time_ratio"])),
                             ("report_after_append", "report #3, 1% appended: incremental vs full rescan (s)", None)):
        e = results.get(name, {})
        t = e.get("wall_s")
        row(label, t, cct, ratio(t, cct), tgt if cc_ok else None, "s")
    for name, label in (("report_first", "peak RSS report #1 (MiB)"), ("report_second", "peak RSS report #2 (MiB)"),
                        ("report_after_append", "peak RSS report #3 (MiB)")):
        e = results.get(name, {})
        m = e.get("max_rss_kb")
        row(label, m and m / 1024.0, ccr and ccr / 1024.0, ratio(m, ccr),
            ("ratio", TARGETS["rss_ratio"]) if cc_ok else None, "mib")
    fl = results.get("process_floor", {})
    row("for scale: starting `true`, p50 (ms)", fl.get("p50_ms"), None, None, None, "ms")
    chk = results.get("check", {})
    row("check, gated tool, p50 (ms)", chk.get("p50_ms"), None, None, ("abs", TARGETS["check_p50_ms"]), "ms")
    row("check, gated tool, p99 (ms)", chk.get("p99_ms"), None, None, ("abs", TARGETS["check_p99_ms"]), "ms")
    row("check, gated tool, max (ms)", chk.get("max_ms"), None, None, None, "ms")
    row("check peak RSS (MiB)", chk.get("max_rss_kb") and chk["max_rss_kb"] / 1024.0, None, None, None, "mib")
    cmp_ = results.get("check_compare", {}).get("check", {})
    if cmp_:
        mb = results["check_compare"]["tree"]["size_mb"]
        row("check, gated, p50 on the %.0f MiB tree (ms)" % mb, cmp_.get("p50_ms"), None, None, None, "ms")
        row("check, gated, p50 here / on %.0f MiB" % mb, None, None, ratio(chk.get("p50_ms"), cmp_.get("p50_ms")),
            ("ratio", TARGETS["check_growth_ratio"]), "ms")
    ung = results.get("check_ungated", {})
    row("check, ungated tool, p50 (ms)", ung.get("p50_ms"), None, None, ("abs", TARGETS["check_ungated_p50_ms"]), "ms")
    row("check, ungated tool, p99 (ms)", ung.get("p99_ms"), None, None, None, "ms")
    sl = results.get("statusline", {})
    row("statusline p50 (ms)", sl.get("p50_ms"), None, None, ("abs", TARGETS["statusline_p50_ms"]), "ms")
    row("statusline p99 (ms)", sl.get("p99_ms"), None, None, ("abs", TARGETS["statusline_p99_ms"]), "ms")
    hr = results.get("helper_max_rss_kb")
    row("resident helper peak RSS (MiB)", hr and hr / 1024.0, None, None, None, "mib")
    # The same hooks without --resident (each call opens the ledger itself)
    for name, label in (("check_in_process", "in process: check, gated, p50 (ms)"),
                        ("check_ungated_in_process", "in process: check, ungated, p50 (ms)"),
                        ("statusline_in_process", "in process: statusline p50 (ms)")):
        row(label, results.get(name, {}).get("p50_ms"), None, None, None, "ms")
    cip = results.get("check_compare", {}).get("check_in_process", {})
    if cip:
        row("in process: check, gated, p50 here / on %.0f MiB" % results["check_compare"]["tree"]["size_mb"],
            None, None, ratio(results.get("check_in_process", {}).get("p50_ms"), cip.get("p50_ms")), None, "ms")
    tm = all(results.get(n, {}).get("tokens_match_expected")
             for n in ("report_first", "report_second", "report_all", "report_after_append"))
    rows.append({"metric": "tokens, costs per arm == expected", "octo_budget": tm,
                 "ccusage": (cc.get("tokens_match_expected") if cc_ok else None), "ratio": None,
                 # ccusage's column is informative: the tree holds lines it drops or prices otherwise
                 "target": "equal", "met": tm, "fmt": "bool"})
    results["table"] = [{k: v for k, v in r.items() if k != "fmt"} for r in rows]
    results["targets_met"] = met_all
    results["failures"] = failures
    results["warnings"] = warnings
    results["ok"] = not failures

    os.makedirs(a.out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    p = os.path.join(a.out_dir, "results-%s.json" % stamp)
    for q in (p, os.path.join(a.out_dir, "latest.json")):
        with open(q, "w") as fh:
            json.dump(results, fh, indent=1)
            fh.write("\n")

    # ---------------- print
    def f(v, fmt):
        if v is None:
            return "-"
        if fmt == "bool" or isinstance(v, bool):
            return "yes" if v else "NO"
        if fmt == "s":
            return "%.3f" % v
        if fmt in ("mib", "ms"):
            return "%.1f" % v if v >= 10 else "%.2f" % v
        return str(v)
    hdr = ("metric", "octo-budget", "ccusage", "ratio", "target", "met?")
    lines = [hdr]
    for r in rows:
        lines.append((r["metric"], f(r["octo_budget"], r["fmt"]), f(r["ccusage"], r["fmt"]),
                      "-" if r["ratio"] is None else "%.4f" % r["ratio"], r["target"] or "-",
                      "-" if r["met"] is None else ("yes" if r["met"] else "NO")))
    w = [max(len(x[i]) for x in lines) for i in range(len(hdr))]
    tr = results["tree"]
    print()
    print("tree: %s  (%d files, %.1f MiB, %d responses)  check on %s (%.0f KiB), %d calls" % (
        tree, tr["files"], tr["bytes"] / 1048576.0, tr["responses"],
        chk.get("session_file", "-"), (chk.get("session_file_bytes") or 0) / 1024.0, chk.get("calls", 0)))
    for i, x in enumerate(lines):
        print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(x)))
        if i == 0:
            print("  ".join("-" * w[j] for j in range(len(hdr))))
    if chk.get("exit_codes"):
        print("check exit codes: %s" % json.dumps(chk["exit_codes"]))
    if sl.get("last_stdout"):
        print("last status line: %s" % sl["last_stdout"].strip())
    for m in warnings:
        print("warning: " + m)
    for m in failures:
        print("FAIL: " + m)

    print("results: %s" % p)
    if a.keep:
        print("work dir kept: %s" % work)
    if failures:
        return 1
    if a.strict and not met_all:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
