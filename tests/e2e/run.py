#!/usr/bin/env python3
"""The end-to-end suite: the REAL Claude Code against a local mock API.

Installs the pinned Claude Code from npm into tests/e2e/.cache (reused when
present), builds octo-budget (or takes $OCTO_BUDGET_BIN), then re-executes
itself inside a network namespace with loopback only (`unshare -rn`) and
runs every case: a temp HOME and CLAUDE_CONFIG_DIR, a temp budgets.yaml
and ledger, octo-budget wired by `octo-budget hook install`, `claude -p`
pointed at mock_api.py on 127.0.0.1. Each case asserts what the mock saw
(requests, tool results) and what octo-budget says (report, status).

    python3 tests/e2e/run.py               # every case
    python3 tests/e2e/run.py b d --keep    # some cases; keep their temp folders
    python3 tests/e2e/run.py --list

Outside CI, without node/npm/unshare it says what it needs and exits 0
("skipped"); with CI=true a missing prerequisite fails. The last line is
`e2e: N passed, M failed`; the exit code is non-zero on any failure.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import mock_api  # noqa: E402

CLAUDE_VERSION = "2.1.328"
CLAUDE_PKG = f"@anthropic-ai/claude-code@{CLAUDE_VERSION}"
CACHE = os.path.join(HERE, ".cache", f"claude-code-{CLAUDE_VERSION}")
MODEL = mock_api.MODEL
CLAUDE_TIMEOUT = 120
IN_NS = "OCTO_E2E_IN_NAMESPACE"


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- setup --
def ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisites():
    need = []
    for tool in ("node", "npm", "unshare", "ip"):
        if shutil.which(tool) is None and not (tool == "ip" and os.path.exists("/usr/sbin/ip")):
            need.append(tool)
    if sys.platform != "linux":
        need.append("Linux (for unshare -rn)")
    elif "unshare" not in need:
        r = subprocess.run(["unshare", "-rn", "true"], capture_output=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            need.append("permission to create a network namespace (unshare -rn: " + r.stderr.decode(errors="replace").strip() + ")")
    return need


def claude_binary():
    """The native binary of the platform package npm installed (the
    optional dependency, e.g. @anthropic-ai/claude-code-linux-x64), else
    the wrapper's bin (which the postinstall replaces by that binary)."""
    found = sorted(glob.glob(os.path.join(CACHE, "node_modules", "@anthropic-ai", "claude-code-*", "claude")))
    found.append(os.path.join(CACHE, "node_modules", ".bin", "claude"))
    for p in found:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def version_of(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"\s*(\S+)", out)
    return m.group(1) if m else None


def install_claude():
    b = claude_binary()
    if b and version_of(b) == CLAUDE_VERSION:
        return b
    os.makedirs(CACHE, exist_ok=True)
    log(f"e2e: installing {CLAUDE_PKG} into {os.path.relpath(CACHE, ROOT)}")
    r = subprocess.run(
        ["npm", "install", "--prefix", CACHE, "--no-audit", "--no-fund", "--no-save", CLAUDE_PKG],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise SystemExit(f"e2e: npm install {CLAUDE_PKG} failed:\n{r.stdout}\n{r.stderr}")
    b = claude_binary()
    v = version_of(b) if b else None
    if v != CLAUDE_VERSION:
        raise SystemExit(f"e2e: installed Claude Code reports version {v!r}, expected {CLAUDE_VERSION}")
    return b


def octo_binary():
    b = os.environ.get("OCTO_BUDGET_BIN")
    if b:
        if not os.access(b, os.X_OK):
            raise SystemExit(f"e2e: OCTO_BUDGET_BIN={b} is not an executable")
        return os.path.abspath(b)
    # Cargo says where it put the binary (.cargo/config.toml builds for the
    # host's target by name: target/<host>/debug).
    r = subprocess.run(
        ["cargo", "build", "--quiet", "--bin", "octo-budget", "--message-format", "json-render-diagnostics"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )
    if r.returncode != 0:
        raise SystemExit("e2e: cargo build failed")
    for line in r.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "octo-budget":
            return msg["executable"]
    raise SystemExit("e2e: cargo build named no octo-budget executable")


# --------------------------------------------------------------- prices --
def price_rates(model):
    """The embedded table's rates (dollars per million tokens = micro-dollars
    per token) for `model`: the newest row not later than today."""
    text = open(os.path.join(ROOT, "src", "pricing", "prices.yaml")).read()
    rows, cur = [], None
    for line in text.splitlines():
        m = re.match(r"  - ids: \[(.*)\]", line)
        if m:
            cur = {"ids": [x.strip() for x in m.group(1).split(",")]}
            rows.append(cur)
            continue
        m = re.match(r"    (\w+): (.+)", line)
        if m and cur is not None:
            cur[m.group(1)] = m.group(2).strip().strip('"')
    today = date.today().isoformat()
    rows = [r for r in rows if model in r["ids"] and r.get("effective_from", "0") <= today]
    if not rows:
        raise SystemExit(f"e2e: {model} is not in src/pricing/prices.yaml")
    r = max(rows, key=lambda r: r["effective_from"])
    return {k: Fraction(r[k]) for k in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")}


RATES = None


def tokens_of(usage):
    cc = usage.get("cache_creation") or {}
    return {
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "cache_write_5m": cc.get("ephemeral_5m_input_tokens", 0),
        "cache_write_1h": cc.get("ephemeral_1h_input_tokens", 0),
        "cache_read": usage["cache_read_input_tokens"],
    }


def cost_micros(usage):
    """Exact micro-dollars of one response at the embedded list prices."""
    t = tokens_of(usage)
    return sum(Fraction(t[k]) * RATES[k] for k in t)


# ---------------------------------------------------------------- cases --
class Case:
    """One temp world: HOME, CLAUDE_CONFIG_DIR, the arm's repo, a config,
    a ledger, a copy of the octo-budget binary, a mock API."""

    def __init__(self, name, octo, claude, keep):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"octo-e2e-{name}-")
        self.keep = keep
        self.home = self._mk("home")
        self.cfgdir = self._mk("claude-config")
        self.proj = self._mk("repo")
        self.marks = self._mk("marks")
        self.tmp = self._mk("tmp")
        # The resident helper's socket (`check --resident`): the helper
        # ends once this folder is removed with the case.
        self.run_dir = self._mk("run")
        bindir = self._mk("bin")
        self.bin = os.path.join(bindir, "octo-budget")
        shutil.copy2(octo, self.bin)
        self.claude = claude
        self.config = os.path.join(self.dir, "budgets.yaml")
        self.ledger = os.path.join(self.dir, "ledger.sqlite")
        self.mock = mock_api.MockApi()
        if os.environ.get("E2E_MOCK_BODIES"):
            self.mock.bodies_dir = self._mk("bodies")
        self.url = self.mock.start()
        self.runs = []
        self.after_breach = None

    def script(self, name, text):
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)
        return p

    def _mk(self, sub):
        p = os.path.join(self.dir, sub)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self, ok):
        self.mock.stop()
        if ok and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def env(self):
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": self.home,
            "CLAUDE_CONFIG_DIR": self.cfgdir,
            "TMPDIR": self.tmp,
            "XDG_RUNTIME_DIR": self.run_dir,
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-e2e-dummy-key",
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "IS_SANDBOX": "1",
            "E2E_MARKS": self.marks,
            "E2E_BIN": self.bin,
        }

    def write_config(self, arm_yaml):
        with open(self.config, "w") as f:
            f.write(f"timezone: UTC\nledger: {self.ledger}\nbudgets:\n  - arm: e2e\n    path: {self.proj}\n")
            for line in arm_yaml.strip().splitlines():
                f.write(f"    {line.strip()}\n")

    def octo(self, *args, check=True):
        r = subprocess.run(
            [self.bin, "--config", self.config, *args],
            env=self.env(),
            cwd=self.proj,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise CaseError(f"octo-budget {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def helper_holds_ledger(self):
        """Whether a resident helper started by this case's hooks (its
        socket in this case's XDG_RUNTIME_DIR) has the case's ledger open."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
                if b"resident" not in argv or not any(self.run_dir.encode() in a for a in argv):
                    continue
                fds = os.listdir(f"/proc/{pid}/fd")
                if any(os.readlink(f"/proc/{pid}/fd/{fd}") == self.ledger for fd in fds):
                    return True
            except OSError:
                continue
        return False

    def install(self, arm_yaml):
        self.write_config(arm_yaml)
        self.octo("hook", "install")
        settings = json.load(open(os.path.join(self.cfgdir, "settings.json")))
        return settings

    def claude_args(self, prompt, *extra):
        return [self.claude, "-p", "--permission-mode", "bypassPermissions", "--model", MODEL, "--output-format", "json", *extra, prompt]

    def run_claude(self, prompt, *extra, stream=False):
        args = [self.claude, "-p", "--permission-mode", "bypassPermissions", "--model", MODEL]
        if stream:
            args += ["--output-format", "stream-json", "--verbose", "--include-hook-events"]
        else:
            args += ["--output-format", "json"]
        args += [*extra, prompt]
        t0 = time.time()
        r = subprocess.run(
            args,
            env=self.env(),
            cwd=self.proj,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CLAUDE_TIMEOUT,
        )
        with open(os.path.join(self.dir, f"claude-{len(self.runs) + 1}.out"), "w") as f:
            f.write(r.stdout + "\n--- stderr ---\n" + r.stderr)
        events, result = [], None
        for line in r.stdout.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            events.append(ev)
            if ev.get("type") == "result":
                result = ev
        run = {"rc": r.returncode, "result": result, "events": events, "stderr": r.stderr, "secs": time.time() - t0}
        self.runs.append(run)
        if result is None:
            raise CaseError(f"claude -p gave no result (exit {r.returncode}): {r.stderr.strip()[-500:]}")
        return run

    # --- what the mock saw
    def requests(self, *roles):
        self.mock.dump(os.path.join(self.dir, "mock.json"))
        recs = json.load(open(os.path.join(self.dir, "mock.json")))["requests"]
        recs = [r for r in recs if r.get("path", "").endswith("/v1/messages")]
        return [r for r in recs if not roles or r["role"] in roles]

    def tool_results(self):
        return json.load(open(os.path.join(self.dir, "mock.json")))["tool_results"] if os.path.exists(
            os.path.join(self.dir, "mock.json")
        ) else []

    def result_for(self, tool_use_id):
        self.requests()
        for t in self.tool_results():
            if t["tool_use_id"] == tool_use_id:
                return t
        return None

    def tool_use_id(self, req, i=None):
        """The tool_use id the mock gave in request `req` (first tool block)."""
        step = mock_api.SCRIPTS[req["script"]][req["step"]]["blocks"]
        idx = [k for k, b in enumerate(step) if b[0] == "tool"][0 if i is None else i]
        return f"toolu_e2e{req['seq']:04d}_{idx}"

    def marked(self):
        return set(os.listdir(self.marks))

    def transcribed_ids(self):
        ids = set()
        for f in glob.glob(os.path.join(self.cfgdir, "projects", "**", "*.jsonl"), recursive=True):
            for line in open(f):
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                m = d.get("message") if isinstance(d, dict) else None
                if d.get("type") == "assistant" and isinstance(m, dict) and m.get("usage"):
                    ids.add(m.get("id"))
        return ids

    def report(self):
        return json.loads(self.octo("report", "--json", "--period", "all").stdout)

    def status(self):
        return json.loads(self.octo("status", "--json", "--cwd", self.proj, check=False).stdout or "{}")


class CaseError(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CaseError(msg)


def breach_seq(case, limit_usd):
    """The mock seq of the transcribed response that took the arm's spend to
    `limit_usd` or more, and the spend before it (micro-dollars)."""
    total = Fraction(0)
    for r in case.requests("main", "subagent"):
        before = total
        total += cost_micros(r["usage"])
        if total >= Fraction(limit_usd) * 1_000_000:
            return r["seq"], before
    return None, total


def after(case, seq):
    """Model requests after the breaching response (remembered for the
    case's line, printed even when the case fails)."""
    later = [r for r in case.requests() if r["seq"] > seq]
    case.after_breach = len(later)
    return later


# Dollars, a monthly cap (the real clock: a month is the period least likely
# to reset during a run); hard stop at the default 110% = $0.11. A plain
# scripted response costs ~$0.01, a `scale: 100` one ~$0.2.
HARD_CAP = "0.10"


def case_a(c):
    """report --json equals the usage served: its transcribed part for every
    transcribed response, its unwritten part for WebSearch's own request."""
    c.install("")
    run = c.run_claude("E2E:account Run the account script.")
    main, sub, ws = c.requests("main"), c.requests("subagent"), c.requests("websearch")
    expect(run["result"].get("terminal_reason") == "completed", f"terminal_reason {run['result'].get('terminal_reason')}")
    expect(len(sub) >= 2 and len(ws) == 1, f"the mock saw {len(sub)} subagent and {len(ws)} WebSearch requests")
    expect({"a0", "a-sub0"} <= c.marked(), f"tools that ran: {sorted(c.marked())}")
    served = main + sub
    served_ids = {r["id"] for r in served}
    tids = c.transcribed_ids()
    expect(tids == served_ids, f"transcribed ids {sorted(tids)} != main+subagent responses {sorted(served_ids)}")
    rep = c.report()
    arm = [a for a in rep["arms"] if a["arm"] == "e2e"][0]
    kinds = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    want = {k: sum(tokens_of(r["usage"])[k] for r in served) for k in kinds}
    transcribed = {k: arm["tokens"][k] - arm["unwritten"]["tokens"][k] for k in kinds}
    expect(transcribed == want, f"report tokens (transcribed part) {transcribed} != served {want}")
    unwritten = {k: sum(tokens_of(r["usage"])[k] for r in ws) for k in kinds}
    expect(arm["unwritten"]["tokens"] == unwritten and arm["unwritten"]["web_search_requests"] == 1, f"report unwritten {arm['unwritten']} != WebSearch's own request {unwritten}")
    expect(arm["messages"] == len(served), f"report messages {arm['messages']} != {len(served)} responses served")
    micros = sum(cost_micros(r["usage"]) for r in served)
    expect(micros.denominator == 1, "the scripted usage should cost whole micro-dollars")
    got = round(arm["cost_usd"] * 1_000_000) - round(arm["unwritten"]["cost_usd"] * 1_000_000)
    expect(got == micros, f"report cost (transcribed part) ${got / 1e6} != served ${micros / 1_000_000} (list prices)")
    expect(rep["totals"]["cost_usd"] == arm["cost_usd"] and (rep.get("unattributed") or {}).get("messages", 0) == 0, "spend outside the arm")
    untranscribed = sum(cost_micros(r["usage"]) for r in ws) + 10_000
    expect_report_is_bill(rep, main + sub + ws, 1, micros + untranscribed, run["result"]["total_cost_usd"])
    return {
        "responses": len(served),
        "info": f"${got / 1e6:.6f} over {len(served)} responses = served; + WebSearch's own request and search ${untranscribed / 1e6:.6f} (unwritten) = claude total_cost_usd {run['result'].get('total_cost_usd')}",
    }


def case_b(c):
    """hard_stop over its cap: Agent and WebSearch refused, Bash runs."""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: hard_stop\nalert_at_pct: 0")
    run = c.run_claude("E2E:hardstop Run the hardstop script.")
    seq, before = breach_seq(c, Fraction(HARD_CAP) * Fraction(110, 100))
    expect(seq is not None and before < Fraction(HARD_CAP) * 1_000_000, "the script did not breach as designed")
    expect(not c.requests("subagent"), f"{len(c.requests('subagent'))} subagent requests reached the mock")
    expect(not c.requests("websearch"), "WebSearch's own request reached the mock")
    expect({"b0", "b1", "b2", "b5"} <= c.marked(), f"Bash calls that ran: {sorted(c.marked())}")
    expect("b-sub0" not in c.marked(), "the subagent ran")
    main = c.requests("main")
    for step, tool in ((3, "Agent"), (4, "WebSearch")):
        req = [r for r in main if r["step"] == step][0]
        tr = c.result_for(c.tool_use_id(req))
        expect(tr and tr["is_error"] and "octo-budget" in tr["content"], f"{tool}'s tool_result is not octo-budget's refusal: {tr}")
    b5 = [r for r in main if r["step"] == 5][0]
    tr = c.result_for(c.tool_use_id(b5))
    expect(tr and not tr["is_error"], f"the Bash call after the refusals did not run: {tr}")
    st = c.status()
    expect(st.get("decision") == "block" and st.get("tier") == "hard_stop", f"status says {st.get('decision')}/{st.get('tier')}")
    denials = [d.get("tool_name") for d in run["result"].get("permission_denials") or []]
    return {"after_breach": len(after(c, seq)), "info": f"permission_denials {denials}; terminal_reason {run['result'].get('terminal_reason')}"}


def case_c(c):
    """A prompt at the hard stop makes no request at all."""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: hard_stop\nalert_at_pct: 0")
    run1 = c.run_claude("E2E:spend Spend.")
    seq, _ = breach_seq(c, Fraction(HARD_CAP) * Fraction(110, 100))
    expect(seq is not None, "the first session did not breach")
    sid = run1["result"]["session_id"]
    n = len(c.requests())
    run2 = c.run_claude("E2E:plain Continue.", "--resume", sid)
    expect(len(c.requests()) == n, f"the resumed session's prompt made {len(c.requests()) - n} requests")
    text = run2["result"].get("result") or ""
    expect(
        text.startswith("UserPromptSubmit operation blocked by hook") and "octo-budget: arm" in text and run2["result"].get("num_turns") == 0,
        f"the refused prompt's result: {text[:200]!r}",
    )
    after(c, seq)
    c.octo("ingest", "--quiet")  # what cron's `alerts`/`ingest` does for tool-less sessions
    st = c.status()
    expect(st.get("decision") == "block", f"status says {st.get('decision')}")
    run3 = c.run_claude("E2E:plain A new session.")
    expect(len(c.requests()) == n, f"a new session's prompt made {len(c.requests()) - n} requests")
    return {
        "after_breach": len(after(c, seq)),
        "info": f"resumed and new session refused: claude exit {run2['rc']}/{run3['rc']}, num_turns 0, no terminal_reason, result 'UserPromptSubmit operation blocked by hook: ...'",
    }


def halt_case(c, arm_yaml, limit):
    try:
        c.install(arm_yaml)
    except CaseError as e:
        if "stop" in str(e):
            raise CaseError(f"{e} (needs the killswitch branch's `stop` action)")
        raise
    run = c.run_claude("E2E:halt Run the halt script.")
    seq, before = breach_seq(c, limit)
    expect(seq is not None and before < Fraction(limit) * 1_000_000, "the script did not breach as designed")
    main = c.requests("main")
    last = main[-1]
    later = after(c, seq)
    expect(last["tool_uses"], f"the session went on to the end of its script ({len(later)} requests after the breach; needs the killswitch)")
    expect(all(r["seq"] <= last["seq"] for r in c.requests()), "a request was made after the halted one")
    tid = c.tool_use_id(last)
    expect(c.result_for(tid) is None, f"the halted call's tool_result reached the mock ({len(later)} requests after the breach)")
    k = last["step"]
    ran = c.marked()
    expect(f"h{k}" not in ran, f"the halted tool h{k} ran")
    expect(all(f"h{i}" in ran for i in range(k)), f"tools before the halt did not all run: {sorted(ran)}")
    expect(not any(f"h{i}" in ran for i in range(k, 8)), f"later tools ran: {sorted(ran)}")
    expect(run["result"].get("terminal_reason") == "hook_stopped", f"terminal_reason {run['result'].get('terminal_reason')}")
    expect(len(later) <= 3, f"{len(later)} requests after the breach: the hook saw the breach too late")
    st = c.status()
    expect(st.get("decision") == "stop", f"status says {st.get('decision')} (want stop)")
    return {"after_breach": len(later), "info": f"halted at scripted step {k}; terminal_reason hook_stopped; claude exit {run['rc']}"}


def case_d(c):
    """action_on_breach: stop halts the session after the breach."""
    return halt_case(c, f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: stop\nalert_at_pct: 0", Fraction(HARD_CAP) * Fraction(110, 100))


def case_e(c):
    """A max_usd_per_hour breach on a hard_stop arm halts."""
    return halt_case(c, f"max_usd_per_hour: {HARD_CAP}\naction_on_breach: hard_stop\nalert_at_pct: 0", Fraction(HARD_CAP))


def case_f(c):
    """The binary moved away after hook install: every call is refused."""
    settings = c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: hard_stop")
    handlers = [h for g in settings["hooks"]["PreToolUse"] + settings["hooks"]["UserPromptSubmit"] for h in g["hooks"]]
    expect(all(h.get("onFailure") == "block" and h["command"].startswith(c.bin) for h in handlers), f"installed handlers: {handlers}")
    run = c.run_claude("E2E:moved Run the moved script.")
    expect(os.path.exists(c.bin + ".moved") and not os.path.exists(c.bin), "the first Bash call did not move the binary")
    expect(c.marked() == {"f0"}, f"tools that ran after the move: {sorted(c.marked() - {'f0'})}")
    expect(not c.requests("subagent") and not c.requests("websearch"), "a subagent or WebSearch request reached the mock")
    main = c.requests("main")
    for r in main:
        if r["tool_uses"] and r["step"] >= 1:
            tr = c.result_for(c.tool_use_id(r))
            expect(tr and tr["is_error"], f"{r['tool_uses']} at step {r['step']} was not refused: {tr}")
    n = len(c.requests())
    run2 = c.run_claude("E2E:plain A new prompt.")
    expect(len(c.requests()) == n, f"a prompt with the binary gone made {len(c.requests()) - n} requests")
    return {"info": f"3 tools refused, then the prompt refused with no request (terminal_reason {run2['result'].get('terminal_reason')})"}


def case_g(c):
    """A warn-tier systemMessage appears once."""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: warn\nalert_at_pct: 0")
    run = c.run_claude("E2E:warn Run the warn script.", stream=True)
    seq, _ = breach_seq(c, HARD_CAP)
    expect(seq is not None, "the script did not reach the cap")
    expect({"g0", "g1", "g2", "g6", "g-sub0"} <= c.marked(), f"tools that ran: {sorted(c.marked())}")
    expect(run["result"].get("terminal_reason") == "completed", f"terminal_reason {run['result'].get('terminal_reason')}")
    # Where the warning shows (measured on 2.1.328): in stream-json, a
    # `system/hook_response` event whose stdout holds the JSON and a
    # `system/informational` event ("PreToolUse:<tool> says: ...") that is
    # what the user sees; in the transcript, an `attachment` line of type
    # `hook_system_message` (next to the `hook_success` one).
    def octo(ev_text):
        return "octo-budget: arm" in ev_text and "monthly cap" in ev_text

    responses = [e for e in run["events"] if e.get("type") == "system" and e.get("subtype") == "hook_response" and octo(e.get("stdout") or "")]
    shown = [e for e in run["events"] if e.get("type") == "system" and e.get("subtype") == "informational" and octo(e.get("content") or "")]
    expect(len(shown) == 1, f"the warning was shown {len(shown)} times: {[e.get('content') for e in shown]}")
    expect(len(responses) == 1 and "systemMessage" in json.loads(responses[0]["stdout"]), f"{len(responses)} hook answers carried the warning")
    tlines = []
    for f in glob.glob(os.path.join(c.cfgdir, "projects", "**", "*.jsonl"), recursive=True):
        for line in open(f):
            d = json.loads(line)
            att = d.get("attachment") or {}
            if d.get("type") == "attachment" and att.get("type") == "hook_system_message" and octo(att.get("content") or ""):
                tlines.append(att.get("hookName"))
    expect(len(tlines) == 1, f"the transcript holds {len(tlines)} hook_system_message lines")
    gated = [r for r in c.requests("main", "subagent") if r["seq"] >= seq and set(r["tool_uses"]) & {"Agent", "WebSearch"}]
    expect(len(gated) >= 2, f"only {len(gated)} gated calls after the cap: 'once' is not shown")
    st = c.status()
    expect(st.get("decision") == "warn", f"status says {st.get('decision')}")
    # `hook install` wrote `check --resident`: the calls were answered by
    # the resident helper (the warning's record included), which holds
    # this case's ledger open.
    expect(c.helper_holds_ledger(), "no resident helper holds the case's ledger open")
    return {"after_breach": len(after(c, seq)), "info": f"shown once ({tlines[0]}) over {len(gated)} gated calls after the cap, through the resident helper; Bash calls are not budget-checked"}


def case_h(c):
    """A hook inside a subagent counts the subagent's own spend."""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: hard_stop\nalert_at_pct: 0")
    run = c.run_claude("E2E:subspend Run the subspend script.")
    limit = Fraction(HARD_CAP) * Fraction(110, 100)
    seq, before = breach_seq(c, limit)
    expect(seq is not None, "no breach")
    breacher = [r for r in c.requests() if r["seq"] == seq][0]
    expect(breacher["role"] == "subagent", f"the breach came from {breacher['role']}")
    main_spend = sum(cost_micros(r["usage"]) for r in c.requests("main"))
    expect(main_spend < limit * 1_000_000, "the main agent alone went over the hard stop")
    expect(not c.requests("websearch"), "the subagent's WebSearch reached the mock")
    sub = c.requests("subagent")
    ws = [r for r in sub if r["tool_uses"] == ["WebSearch"]]
    expect(ws, "the subagent never asked for WebSearch")
    tr = c.result_for(c.tool_use_id(ws[0]))
    expect(tr and tr["is_error"] and "octo-budget" in tr["content"], f"the subagent's WebSearch result: {tr}")
    expect({"s-sub0", "s-sub1", "s-sub2", "s-sub4"} <= c.marked(), f"tools that ran: {sorted(c.marked())}")
    st = c.status()
    expect(st.get("decision") == "block", f"status says {st.get('decision')}")
    return {"after_breach": len(after(c, seq)), "info": f"main spent ${float(main_spend) / 1e6:.6f} (under the stop); terminal_reason {run['result'].get('terminal_reason')}"}


def case_i(c):
    """A halt inside a subagent ends the whole session."""
    try:
        c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: stop\nalert_at_pct: 0")
    except CaseError as e:
        raise CaseError(f"{e} (needs the killswitch branch's `stop` action)")
    run = c.run_claude("E2E:subhalt Run the subhalt script.")
    seq, _ = breach_seq(c, Fraction(HARD_CAP) * Fraction(110, 100))
    expect(seq is not None, "no breach")
    later = after(c, seq)
    sub = c.requests("subagent")
    last = sub[-1]
    main_after = [r for r in later if r["role"] == "main"]
    expect(last["tool_uses"], f"the subagent ran to the end of its script ({len(later)} requests after the breach)")
    expect(c.result_for(c.tool_use_id(last)) is None, "the halted subagent call's tool_result reached the mock")
    expect(
        not main_after,
        f"the main agent made {len(main_after)} request(s) after the halt inside the subagent (Claude Code 2.1.328 ends only the subagent on a PreToolUse halt; "
        f"the main agent gets the Agent tool_result and asks the model again; its next tool call {'ran' if c.marked() & {'i-main1', 'i-main2'} else 'was halted'}, "
        f"terminal_reason {run['result'].get('terminal_reason')})",
    )
    expect(not ({"i-main1", "i-main2"} & c.marked()), f"main tools ran after the halt: {sorted(c.marked())}")
    expect(run["result"].get("terminal_reason") == "hook_stopped", f"terminal_reason {run['result'].get('terminal_reason')}")
    return {"after_breach": len(later), "info": f"halted in the subagent at step {last['step']}; whole session ended (terminal_reason {run['result'].get('terminal_reason')})"}


def case_k(c):
    """A halt inside a subagent that runs in the background (Claude Code's
    default): the parent runs alongside it, so its first request after the
    launch races with the halt; nothing else reaches the model, and the
    subagent's completion notice (a prompt) is refused."""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: stop\nalert_at_pct: 0")
    run = c.run_claude("E2E:subhalt-bg Run the subhalt-bg script.")
    seq, _ = breach_seq(c, Fraction(HARD_CAP) * Fraction(110, 100))
    expect(seq is not None, "no breach")
    later = after(c, seq)
    sub = c.requests("subagent")
    main = c.requests("main")
    expect(sub and sub[0]["seq"] <= seq, "the breach did not come from the subagent")
    expect(len(sub) <= 2 and c.result_for(c.tool_use_id(sub[-1])) is None, f"the subagent went on: {len(sub)} requests")
    # The parent's step-1 request answers the Agent launch and races with
    # the subagent; a later one would carry the result of a tool that ran
    # after the breach. Tools allowed before the hook saw the breach (i-sub0,
    # i-main1) may run; none after.
    expect(all(r["step"] <= 1 for r in main), f"the parent went on to step {max(r['step'] for r in main)}")
    expect(not (c.marked() - {"i-sub0", "i-main1"}), f"tools ran after the halt: {sorted(c.marked())}")
    expect(not [r for r in c.requests() if r["seq"] > sub[-1]["seq"] and r["role"] != "main"], "a request after the subagent's halt")
    expect(len([r for r in c.requests("main") if r["seq"] > sub[-1]["seq"]]) <= 1, "the parent made more than one request after the subagent's halt")
    text = run["result"].get("result") or ""
    notice = "Original prompt: <task-notification>" in text and "octo-budget: arm" in text
    expect(notice or run["result"].get("terminal_reason") == "hook_stopped", f"the run ended with {run['result'].get('terminal_reason')}: {text[:200]!r}")
    return {
        "after_breach": len(later),
        "info": f"{len(main)} parent and {len(sub)} subagent requests; {[r['role'] for r in later]} after the breach; "
        + ("the subagent's completion notice (a prompt) refused: no request" if notice else f"terminal_reason {run['result'].get('terminal_reason')}"),
    }


def case_j(c):
    """Untranscribed spend (issue #10): WebSearch's own request and the
    auto-compaction request are billed but never written as responses;
    Claude Code's `cost-state` counts every request."""
    c.install("")
    run = c.run_claude("E2E:compact Run the compact script.")
    reqs = c.requests()
    roles = [r["role"] for r in reqs]
    expect(roles.count("compact") == 1 and roles.count("websearch") == 1, f"the mock served {roles}")
    expect("c0" in c.marked(), "the Bash call before the compaction did not run")
    transcribed = c.requests("main", "subagent")
    expect(c.transcribed_ids() == {r["id"] for r in transcribed}, "transcribed responses are not exactly the main ones")
    kinds = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    billed = {k: sum(tokens_of(r["usage"])[k] for r in reqs) for k in kinds}
    states = []
    for f in glob.glob(os.path.join(c.cfgdir, "projects", "*", "*.jsonl")):
        states += [json.loads(line) for line in open(f) if '"cost-state"' in line]
    expect(len(states) == 1, f"{len(states)} cost-state records")
    mu = states[0]["modelUsage"][MODEL]
    got = {
        "input": mu["inputTokens"],
        "output": mu["outputTokens"],
        "cache_write_5m": mu["cacheCreationEphemeral5mInputTokens"],
        "cache_write_1h": mu["cacheCreationEphemeral1hInputTokens"],
        "cache_read": mu["cacheReadInputTokens"],
    }
    expect(got == billed and mu["webSearchRequests"] == 1, f"cost-state {got} != billed {billed}")
    all_micros = sum(cost_micros(r["usage"]) for r in reqs) + 10_000  # + one search at $10 per 1000
    expect(round(run["result"]["total_cost_usd"] * 1e6) == all_micros, f"total_cost_usd {run['result']['total_cost_usd']} != ${all_micros / 1e6}")
    rep = c.report()
    expect_report_is_bill(rep, reqs, 1, all_micros, run["result"]["total_cost_usd"])
    unwritten = [r for r in reqs if r["role"] in ("compact", "websearch")]
    uw = rep["totals"]["unwritten"]
    want_uw = {k: sum(tokens_of(r["usage"])[k] for r in unwritten) for k in kinds}
    expect(uw["tokens"] == want_uw and uw["web_search_requests"] == 1, f"report unwritten {uw} != the compaction and WebSearch requests {want_uw}")
    by_kind = json.loads(c.octo("report", "--json", "--period", "all", "--by", "kind").stdout)["breakdown"]["rows"]
    keys = {r["key"]: round(r["cost_usd"] * 1e6) for r in by_kind}
    uw_micros = sum(cost_micros(r["usage"]) for r in unwritten) + 10_000
    expect(keys == {"transcribed": all_micros - uw_micros, "unwritten": uw_micros}, f"--by kind {keys}")
    return {"info": f"cost-state = all {len(reqs)} requests = total_cost_usd = report ${all_micros / 1e6:.6f}, of which unwritten (compaction, WebSearch's own request and its search) ${uw_micros / 1e6:.6f}"}


def expect_report_is_bill(rep, reqs, searches, all_micros, total_cost_usd):
    """`report --json` equals what the mock billed over ALL requests (tokens
    per kind, web searches) and Claude Code's own total_cost_usd."""
    kinds = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
    billed = {k: sum(tokens_of(r["usage"])[k] for r in reqs) for k in kinds}
    arm = [a for a in rep["arms"] if a["arm"] == "e2e"][0]
    expect(arm["tokens"] == billed, f"report tokens {arm['tokens']} != billed over all requests {billed}")
    expect(arm["web_search_requests"] == searches, f"report web searches {arm['web_search_requests']} != {searches}")
    got = round(arm["cost_usd"] * 1e6)
    expect(got == all_micros, f"report ${arm['cost_usd']} != billed ${all_micros / 1e6}")
    expect(round(total_cost_usd * 1e6) == got, f"report ${arm['cost_usd']} != Claude Code's total_cost_usd {total_cost_usd}")
    expect(rep["totals"]["cost_usd"] == arm["cost_usd"], "spend outside the arm")


def case_l(c):
    """A session with WebSearch and compaction, `--resume`d (cumulative
    cost-state, same startTime) and then forked (`--fork-session`: a new
    session whose cost-state carries the parent's totals): report = every
    request billed, counted once, = the last run's total_cost_usd."""
    c.install("")
    sid = str(uuid.uuid4())
    c.run_claude("E2E:compact Run the compact script.", "--session-id", sid)
    c.octo("ingest")  # the first run's cost-state is in the ledger before the next
    c.run_claude("E2E:plain go on", "--resume", sid)
    run3 = c.run_claude("E2E:plain fork it", "--resume", sid, "--fork-session")
    reqs = c.requests()
    roles = [r["role"] for r in reqs]
    expect(roles.count("compact") == 1 and roles.count("websearch") == 1, f"the mock served {roles}")
    states = []
    for f in glob.glob(os.path.join(c.cfgdir, "projects", "*", "*.jsonl")):
        states += [json.loads(line) for line in open(f) if '"cost-state"' in line]
    expect(len(states) == 3 and len({d["startTime"] for d in states}) == 1, f"cost-states: {[(d['sessionId'][:8], d['startTime']) for d in states]}")
    all_micros = sum(cost_micros(r["usage"]) for r in reqs) + 10_000
    expect_report_is_bill(c.report(), reqs, 1, all_micros, run3["result"]["total_cost_usd"])
    return {"info": f"3 runs, 2 sessions, {len(reqs)} requests: report = billed = the fork's total_cost_usd ${all_micros / 1e6:.6f}"}


def case_m(c):
    """A run killed by SIGKILL (no cost-state) and `--resume`d (a new
    count: new startTime, only its own requests) that then uses WebSearch,
    after a session with WebSearch and compaction: report = every request
    billed (the killed run's responses are not taken off the resumed run's
    unwritten request)."""
    c.install("")
    run1 = c.run_claude("E2E:compact Run the compact script.")
    before = len(c.requests())
    sid = str(uuid.uuid4())
    p = subprocess.Popen(
        c.claude_args("E2E:slowsearch Run the slowsearch script.", "--session-id", sid),
        env=c.env(), cwd=c.proj, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    # Kill during step 3's Bash call, once every response answered so far
    # is in the transcript: then the killed run's spend is all transcribed
    # (as the case means), wherever the scheduler put the kill otherwise.
    deadline = time.time() + 30
    while "slowstart3" not in c.marked() and time.time() < deadline:
        time.sleep(0.05)
    expect("slowstart3" in c.marked(), "the slowsearch run never reached its step 3")
    while time.time() < deadline:
        answered = {r.get("id") for r in c.requests()[before:]} - {None}
        if answered <= c.transcribed_ids():
            break
        time.sleep(0.05)
    expect("slow3" not in c.marked(), "step 3 ended before the kill: the window was missed")
    c.octo("ingest")  # the killed run is being read while it runs
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=CLAUDE_TIMEOUT)
    time.sleep(0.5)
    killed = len(c.requests())
    expect(not [r for r in c.requests() if r["role"] == "websearch"][1:], "the killed run reached its WebSearch")
    run3 = c.run_claude("E2E:slowsearch continue", "--resume", sid)
    reqs = c.requests()
    states = []
    for f in glob.glob(os.path.join(c.cfgdir, "projects", "*", f"{sid}.jsonl")):
        states += [json.loads(line) for line in open(f) if '"cost-state"' in line]
    expect(len(states) == 1, f"{len(states)} cost-states in the killed and resumed session")
    expect([r["role"] for r in reqs].count("websearch") == 2, "the resumed run made no WebSearch request")
    all_micros = sum(cost_micros(r["usage"]) for r in reqs) + 20_000
    # The killed run is in no total of Claude Code's (its requests are all
    # transcribed: Bash only), the resumed run's total is its own requests.
    killed_micros = sum(cost_micros(r["usage"]) for r in reqs[5:killed])
    total = (round(run1["result"]["total_cost_usd"] * 1e6) + killed_micros + round(run3["result"]["total_cost_usd"] * 1e6)) / 1e6
    expect_report_is_bill(c.report(), reqs, 2, all_micros, total)
    return {"info": f"killed after {killed - 5} requests (${killed_micros / 1e6:.6f}, in no cost-state); report = billed ${all_micros / 1e6:.6f} = run totals + the killed run"}


CASES = [
    ("a", "report equals the usage served", case_a),
    ("b", "hard_stop refuses Agent/WebSearch, Bash runs", case_b),
    ("c", "a prompt at the hard stop makes no request", case_c),
    ("d", "stop halts the session", case_d),
    ("e", "a max_usd_per_hour breach halts", case_e),
    ("f", "binary moved away: every call refused", case_f),
    ("g", "a warn systemMessage appears once", case_g),
    ("h", "a subagent's own spend is counted in it", case_h),
    ("i", "a halt inside a subagent ends the session", case_i),
    ("j", "untranscribed requests: report = the bill", case_j),
    ("k", "a halt inside a background subagent", case_k),
    ("l", "resume and fork: every request counted once", case_l),
    ("m", "a SIGKILLed run, resumed: every request counted once", case_m),
]



# --------------------------------------------------------- observations --
# `run.py --observe`: measurements of Claude Code itself (no octo-budget
# hook; stand-in hooks where a hook is needed). They print what happened
# and assert nothing: they are how tests/e2e/README.md's findings were made.
STANDIN_PRE = """#!/usr/bin/env python3
import json, os, sys
d = json.load(sys.stdin)
if "i-sub1" in json.dumps(d.get("tool_input") or {}):
    open(os.environ["E2E_MARKS"] + "/halted", "w").close()
    print(json.dumps({"continue": False, "stopReason": "stand-in halt", "hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny", "permissionDecisionReason": "stand-in halt"}}))
"""
STANDIN_POST = """#!/usr/bin/env python3
import json, os, sys
json.load(sys.stdin)
if os.path.exists(os.environ["E2E_MARKS"] + "/halted"):
    print(json.dumps({"continue": False, "stopReason": "stand-in halt after the subagent"}))
"""


def observe_subagent_halt(c, post):
    """The halt answer inside a subagent: what does the session do next?"""
    hooks = {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": c.script("pre.py", STANDIN_PRE)}]}]}
    if post:
        hooks["PostToolUse"] = [{"matcher": "Agent", "hooks": [{"type": "command", "command": c.script("post.py", STANDIN_POST)}]}]
    json.dump({"hooks": hooks}, open(os.path.join(c.cfgdir, "settings.json"), "w"))
    run = c.run_claude("E2E:subhalt Run the subhalt script.")
    reqs = c.requests()
    halted = [r for r in reqs if r["role"] == "subagent" and r["step"] == 1]
    after_halt = [r["role"] for r in reqs if halted and r["seq"] > halted[0]["seq"]]
    return (
        f"halt answer on a subagent's PreToolUse{' + PostToolUse(Agent) continue:false' if post else ''}: "
        f"{len(after_halt)} requests after the halted one {after_halt}, terminal_reason {run['result'].get('terminal_reason')}, "
        f"main tools that ran after it: {sorted(m for m in c.marked() if m.startswith('i-main'))}"
    )


def observe_background_halt(c):
    """octo-budget's `stop` halting a subagent that runs in the background
    (Claude Code's default): which requests follow the halt?"""
    c.install(f"monthly_usd_cap: {HARD_CAP}\naction_on_breach: stop\nalert_at_pct: 0")
    run = c.run_claude("E2E:subhalt-bg Run the script.")
    reqs = c.requests()
    seq, _ = breach_seq(c, Fraction(HARD_CAP) * Fraction(110, 100))
    sub = [r for r in reqs if r["role"] == "subagent"]
    halted = sub[-1]["seq"] if sub else None
    return (
        f"requests {[(r['role'], r['step']) for r in reqs]}; breach at seq {seq}, last subagent request seq {halted}; "
        f"after it: {[r['role'] for r in reqs if halted and r['seq'] > halted]}; terminal_reason {run['result'].get('terminal_reason')}; "
        f"tools that ran: {sorted(c.marked())}"
    )


def cost_states(c, sid):
    out = []
    for f in glob.glob(os.path.join(c.cfgdir, "projects", "*", f"{sid}.jsonl")):
        lines = [json.loads(line) for line in open(f)]
        for i, d in enumerate(lines):
            if d.get("type") == "cost-state":
                later = [x.get("type") for x in lines[i + 1:]]
                out.append((d, later))
    return out


def observe_cost_state(c, sig):
    """A run killed mid-way by `sig` (or not), then `--resume`d."""
    sid = str(uuid.uuid4())
    p = subprocess.Popen(
        c.claude_args("E2E:slow Run the slow script.", "--session-id", sid),
        env=c.env(), cwd=c.proj, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if sig:
        time.sleep(3)
        p.send_signal(getattr(signal, sig))
    p.communicate(timeout=CLAUDE_TIMEOUT)
    time.sleep(0.5)
    first = c.requests()
    billed1 = sum(cost_micros(r["usage"]) for r in first)
    states1 = cost_states(c, sid)
    line = f"{sig or 'no signal'}: exit {p.returncode}, {len(first)} requests (${float(billed1) / 1e6:.6f} at list prices); "
    if states1:
        d, later = states1[-1]
        line += f"cost-state ${d['totalCostUSD']:.6f} (= billed: {round(d['totalCostUSD'] * 1e6) == billed1}), lines after it: {later}; "
    else:
        line += "NO cost-state; "
    run2 = c.run_claude("E2E:slow continue", "--resume", sid)
    billed2 = sum(cost_micros(r["usage"]) for r in c.requests()[len(first):])
    states = cost_states(c, sid)
    d2 = states[-1][0] if states else None
    if d2:
        got = round(d2["totalCostUSD"] * 1e6)
        kind = "cumulative" if got == billed1 + billed2 else ("this run only" if got == billed2 else "neither")
        same = states1 and states1[-1][0]["startTime"] == d2["startTime"]
        line += f"after --resume: {len(states)} cost-states, the last ${d2['totalCostUSD']:.6f} = {kind}, startTime {'kept' if same else 'new'}, result total_cost_usd {run2['result'].get('total_cost_usd')}"
    return line


def observe_fork(c):
    """`--resume <id> --fork-session` of a session that used WebSearch and
    was compacted: the fork's file, its cost-state and startTime."""
    sid = str(uuid.uuid4())
    c.run_claude("E2E:compact Run the compact script.", "--session-id", sid)
    n1 = len(c.requests())
    billed1 = sum(cost_micros(r["usage"]) for r in c.requests()) + 10_000
    run2 = c.run_claude("E2E:plain fork it", "--resume", sid, "--fork-session")
    billed2 = sum(cost_micros(r["usage"]) for r in c.requests()[n1:])
    files = sorted(glob.glob(os.path.join(c.cfgdir, "projects", "*", "*.jsonl")))
    out = [f"parent billed ${float(billed1) / 1e6:.6f}, fork run billed ${float(billed2) / 1e6:.6f}; result total_cost_usd {run2['result'].get('total_cost_usd')}"]
    parent_start = None
    for f in files:
        lines = [json.loads(line) for line in open(f)]
        name = os.path.basename(f)[:-6]
        states = [(i, d) for i, d in enumerate(lines) if d.get("type") == "cost-state"]
        sids = sorted({d.get("sessionId") for d in lines if d.get("sessionId")})
        desc = []
        for i, d in states:
            desc.append(f"line {i + 1}/{len(lines)} sessionId {'own' if d.get('sessionId') == name else d.get('sessionId')} ${d['totalCostUSD']:.6f} startTime {d['startTime']}")
        if name == sid:
            parent_start = states[-1][1]["startTime"] if states else None
        out.append(f"{'parent' if name == sid else 'fork'} file: {len(lines)} lines, sessionIds {['own' if s == name else s for s in sids]}, cost-states [{'; '.join(desc)}]")
    out.append(f"parent startTime {parent_start}")
    return " | ".join(out)


def observe_interactive(c):
    """An interactive session (no -p, in a pseudo-terminal): when is
    `cost-state` written: after each turn, or when the process ends?"""
    import pty
    import threading
    sid = str(uuid.uuid4())
    key = c.env()["ANTHROPIC_API_KEY"]
    json.dump(
        {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            "bypassPermissionsModeAccepted": True,
            "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
            "projects": {c.proj: {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        },
        open(os.path.join(c.cfgdir, ".claude.json"), "w"),
    )
    master, slave = pty.openpty()
    env = dict(c.env(), TERM="xterm-256color", COLUMNS="120", LINES="40")
    p = subprocess.Popen(
        [c.claude, "--permission-mode", "bypassPermissions", "--model", MODEL, "--session-id", sid],
        env=env, cwd=c.proj, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )
    os.close(slave)
    screen = []

    def pump():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            screen.append(data.decode(errors="replace"))

    threading.Thread(target=pump, daemon=True).start()

    def wait_requests(n, secs=30):
        t = time.time()
        while time.time() - t < secs:
            if len(c.requests()) >= n:
                time.sleep(2)
                return True
            time.sleep(0.3)
        return False

    def typed(text):
        for ch in text:
            os.write(master, ch.encode())
            time.sleep(0.01)
        time.sleep(0.3)
        os.write(master, b"\r")

    def states():
        return [(d["totalCostUSD"], d["startTime"]) for d, _ in cost_states(c, sid)]

    out = []
    time.sleep(6)
    typed("E2E:compact Run the compact script.")
    ok1 = wait_requests(5)
    out.append(f"turn 1 ({len(c.requests())} requests, done {ok1}): cost-states {states()}")
    typed("E2E:plain more")
    ok2 = wait_requests(6)
    out.append(f"turn 2 ({len(c.requests())} requests, done {ok2}): cost-states {states()}")
    typed("/exit")
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    time.sleep(0.5)
    billed = sum(cost_micros(r["usage"]) for r in c.requests()) + 10_000 * len(c.requests("websearch"))
    out.append(f"after /exit (exit {p.returncode}): cost-states {states()}, billed ${float(billed) / 1e6:.6f}")
    if not ok1:
        out.append("screen: " + re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", "".join(screen))[-600:])
    return "; ".join(out)


def observe_hook_killed(c, on_failure):
    """A PreToolUse hook that dies of SIGKILL (what no hook can answer):
    does the tool run, with and without `onFailure: block`?"""
    hook = {"type": "command", "command": c.script("dies.sh", "#!/bin/sh\ncat >/dev/null\nkill -KILL $$\n")}
    if on_failure:
        hook["onFailure"] = "block"
    hooks = {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}
    json.dump({"hooks": hooks}, open(os.path.join(c.cfgdir, "settings.json"), "w"))
    run = c.run_claude("E2E:plain Run the plain script.")
    main = [r for r in c.requests("main") if r["tool_uses"]]
    tr = c.result_for(c.tool_use_id(main[0])) if main else None
    return (
        f"Bash {'ran' if 'p0' in c.marked() else 'did not run'}; its tool_result: "
        f"{(tr or {}).get('is_error')} {str((tr or {}).get('content'))[:120]!r}; terminal_reason {run['result'].get('terminal_reason')}"
    )


def observe(args):
    global RATES
    RATES = price_rates(MODEL)
    jobs = [
        j
        for j in [
        ("subagent halt", lambda c: observe_subagent_halt(c, False)),
        ("subagent halt + PostToolUse", lambda c: observe_subagent_halt(c, True)),
        ("background subagent halted by octo-budget", observe_background_halt),
        ("cost-state, clean run", lambda c: observe_cost_state(c, None)),
        ("cost-state, SIGTERM", lambda c: observe_cost_state(c, "SIGTERM")),
        ("cost-state, SIGINT", lambda c: observe_cost_state(c, "SIGINT")),
        ("cost-state, SIGKILL", lambda c: observe_cost_state(c, "SIGKILL")),
        ("cost-state, fork", observe_fork),
        ("cost-state, interactive", observe_interactive),
        ("hook killed by SIGKILL, no onFailure", lambda c: observe_hook_killed(c, False)),
        ("hook killed by SIGKILL, onFailure block", lambda c: observe_hook_killed(c, True)),
        ]
        if not args.cases or any(k in j[0] for k in args.cases)
    ]
    for name, fn in jobs:
        c = Case("observe", args.octo, args.claude, args.keep)
        try:
            log(f"observe: {name}: {fn(c)}")
        except Exception as e:  # an observation that could not be made
            log(f"observe: {name}: could not observe ({type(e).__name__}: {e}); kept {c.dir}")
            c.keep = True
        c.close(True)
    return 0

# ---------------------------------------------------------------- main ---
def interfaces():
    """Network interfaces of this process's namespace."""
    lines = open("/proc/self/net/dev").read().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def mock_selfcheck():
    """The mock's answers to what Claude Code did not send in our runs but
    may (HEAD /api/hello, count_tokens, a non-streaming request, title
    generation), and the shape of a streamed response. Returns problems."""
    api = mock_api.MockApi()
    url = api.start()
    problems = []

    def call(method, path, body=None):
        req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()

    try:
        st, _, _ = call("HEAD", "/api/hello")
        problems += [] if st == 200 else [f"HEAD /api/hello: {st}"]
        st, _, b = call("POST", "/v1/messages/count_tokens?beta=true", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        problems += [] if st == 200 and json.loads(b).get("input_tokens", -1) >= 0 else [f"count_tokens: {st} {b}"]
        title = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "E2E:plain title please"}]}
        st, h, b = call("POST", "/v1/messages", title)
        m = json.loads(b)
        problems += [] if m.get("type") == "message" and h.get("request-id") and m["usage"]["output_tokens"] > 0 else [f"non-streaming: {b[:200]}"]
        tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
        st, h, b = call("POST", "/v1/messages", dict(title, stream=True, tools=tools))
        kinds = [line[7:] for line in b.splitlines() if line.startswith("event: ")]
        want = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
        problems += [] if kinds == want and h.get("content-type") == "text/event-stream" and h.get("request-id") else [f"stream: {kinds}"]
        roles = [r["role"] for r in api.records]
        problems += [] if roles == ["other", "count_tokens", "aux", "main"] else [f"recorded roles {roles}"]
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        api.stop()
    return problems


def inner(args):
    global RATES
    if interfaces() != ["lo"]:
        log(f"e2e: not in a loopback-only network namespace (interfaces {interfaces()}); refusing to run")
        log("e2e: 0 passed, 1 failed")
        return 1
    RATES = price_rates(MODEL)
    t0 = time.time()
    passed = failed = 0
    problems = mock_selfcheck()
    if problems:
        log(f"FAIL the mock's own answers: {'; '.join(problems)}")
        failed += 1
    selected = [c for c in CASES if not args.cases or c[0] in args.cases]
    for key, title, fn in selected:
        case = Case(key, args.octo, args.claude, args.keep)
        ok, info = False, {}
        t = time.time()
        try:
            info = fn(case) or {}
            ok = True
        except CaseError as e:
            info = {"error": str(e)}
        except Exception as e:  # a bug in the suite is a failure too
            info = {"error": f"{type(e).__name__}: {e}"}
        reqs = len(case.requests())
        case.close(ok)
        ab = info.get("after_breach", case.after_breach)
        head = f"{'ok  ' if ok else 'FAIL'} {key}. {title}: {reqs} model requests"
        if ab is not None:
            head += f", {ab} after the breach"
        head += f" ({time.time() - t:.1f}s)"
        log(head)
        if info.get("info"):
            log(f"       {info['info']}")
        if not ok:
            log(f"       {info['error']}")
            log(f"       kept: {case.dir}")
        passed += ok
        failed += not ok
    log(f"e2e: wall time {time.time() - t0:.1f}s, Claude Code {CLAUDE_VERSION}, model {MODEL}")
    log(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description="octo-budget against the real Claude Code")
    ap.add_argument("cases", nargs="*", help="case letters (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep every case's temp folder")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--observe", action="store_true", help="measure Claude Code itself (subagent halts, cost-state on kill/resume); asserts nothing")
    ap.add_argument("--octo", help=argparse.SUPPRESS)
    ap.add_argument("--claude", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.list:
        for k, t, _ in CASES:
            print(f"{k}. {t}")
        return 0
    if os.environ.get(IN_NS) == "1":
        return observe(args) if args.observe else inner(args)
    need = missing_prerequisites()
    if need:
        msg = f"e2e: needs {', '.join(need)} (Claude Code {CLAUDE_VERSION} from npm, run in a loopback-only network namespace)"
        if ci():
            log(msg + "; CI=true, so this is a failure")
            log("e2e: 0 passed, 1 failed")
            return 1
        log(msg + ": skipped")
        return 0
    claude = install_claude()
    octo = octo_binary()
    ip = shutil.which("ip") or "/usr/sbin/ip"
    cmd = [sys.executable, os.path.abspath(__file__), "--octo", octo, "--claude", claude, *args.cases]
    if args.keep:
        cmd.append("--keep")
    if args.observe:
        cmd.append("--observe")
    env = dict(os.environ, **{IN_NS: "1"})
    script = f'"{ip}" link set lo up && exec "$@"'
    r = subprocess.run(["unshare", "-rn", "sh", "-c", script, "sh", *cmd], env=env, stdin=subprocess.DEVNULL)
    if r.returncode not in (0, 1):
        log(f"e2e: the namespaced run exited {r.returncode} (unshare -rn not permitted here?)")
        log("e2e: 0 passed, 1 failed")
        return 1
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
