#!/usr/bin/env python3
"""Generate a synthetic Claude Code transcript tree for benchmarking octo-budget.

    python3 bench/gen_tree.py --out DIR --size-mb N [--seed S] [--arms 40]
    python3 bench/gen_tree.py --verify DIR

Writes
  DIR/claude/projects/<encoded-project>/...   (DIR/claude is a CLAUDE_CONFIG_DIR)
  DIR/budgets.yaml                            (one budget per arm)
  DIR/expected.json                           (de-duplicated totals of what was written)
  DIR/manifest.json                           (one entry per file: kind, session, cwd, arm)

The file-size distribution follows a measured heavy user's profile (3,142 files,
1.24 GB).  Everything is deterministic for a given (size, seed, arms).
Python 3 standard library only.

The tree holds what a careful tool must price exactly (prices.md): `null`
fields in assistant lines (treat as absent; never drop the line), streaming
placeholders (an early line of a response with a placeholder
`output_tokens`, the final value in a later line: keep the maximum), prompts
over 200k tokens (Sonnet 4/4.5 long-context rates on EVERY token of the
request; the boundary at exactly 200,000 and 200,001 is always present),
and web search ($10 per 1,000 `web_search_requests`).  No /btw replays.
Costs are summed in integer picodollars per response, rounded once per
total to micro-dollars (half away from zero).  Duplicated responses come from
(a) one line per content block, (b) resumed sessions replaying a prefix of
another session verbatim, (c) `progress` lines in a parent session nesting a
subagent's assistant record that also sits in the subagent's own file.
"""

import argparse
import calendar
import json
import math
import os
import random
import re
import shutil
import sys
import time

GENERATOR_VERSION = 3

# ---------------------------------------------------------------- constants
PROFILE_FILES = 3142
PROFILE_BYTES = 1.24e9
# (quantile, bytes) measured on the real profile
QUANTILES = [(0.0, 236), (0.5, 105267), (0.75, 233572), (0.9, 653972),
             (0.95, 1504757), (0.99, 5383751), (1.0, 87033471)]
MIN_FILES = 30

MONTH_START = calendar.timegm((2026, 10, 1, 0, 0, 0)) * 1000
MONTH_LIMIT = calendar.timegm((2026, 10, 31, 21, 0, 0)) * 1000  # keep < --now 23:00
MONTH = "2026-10"

HOME_BASE = "/home/dev/clients"

# model id -> (input, output, write5m, write1h, read) USD per million tokens
PRICES = {
    "claude-sonnet-4-5-20250929": (3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-sonnet-4-6": (3.0, 15.0, 3.75, 6.0, 0.30),
    "claude-opus-4-6": (5.0, 25.0, 6.25, 10.0, 0.50),
    "claude-opus-4-5-20251101": (5.0, 25.0, 6.25, 10.0, 0.50),
    "claude-haiku-4-5-20251001": (1.0, 5.0, 1.25, 2.0, 0.10),
    "claude-opus-4-1-20250805": (15.0, 75.0, 18.75, 30.0, 1.50),
}
MAIN_MODELS = [("claude-sonnet-4-5-20250929", 40), ("claude-opus-4-6", 28),
               ("claude-sonnet-4-6", 10), ("claude-opus-4-5-20251101", 8),
               ("claude-opus-4-1-20250805", 6), ("claude-haiku-4-5-20251001", 8)]
HAIKU = "claude-haiku-4-5-20251001"
# Sonnet 4 / 4.5 above 200k prompt tokens: every token of the request at these rates
LONG_CONTEXT = {
    "claude-sonnet-4-5-20250929": (6.0, 22.5, 7.5, 12.0, 0.60),
}
LONG_CONTEXT_THRESHOLD = 200000
WEB_SEARCH_PICOS = 10 ** 10  # $0.01 per request
PICOS_PER_MICRO = 10 ** 6

VERSIONS = ["2.1.81", "2.1.84", "2.1.88", "2.1.90", "2.1.92", "2.1.95",
            "2.1.97", "2.1.101", "2.1.104", "2.1.108", "2.1.112"]
BRANCHES = ["main", "main", "main", "develop", "feature/billing", "fix/login-redirect",
            "feat/search-index", "chore/deps", "release/3.2", "wip/refactor-api"]

ARM_NAMES = [
    "acme", "acme-web", "acme-web-admin", "globex", "globex-api", "initech",
    "umbrella", "umbrella-labs", "hooli", "hooli-mobile", "stark", "wayne",
    "wonka", "cyberdyne", "tyrell", "soylent", "massive-dynamic", "vandelay",
    "pied-piper", "pied-piper-infra", "oscorp", "aperture", "black-mesa",
    "monarch", "nakatomi", "gringotts", "dunder", "dunder-mifflin", "prestige",
    "virtucon", "bluth", "sterling", "cogswell", "spacely", "duff", "krusty",
    "lacroix", "zorg", "ollivander", "weyland",
]
SUBFOLDERS = ["web", "api", "services/api", "services/worker", "packages/ui",
              "infra", "docs", "mobile", "cli", "backend", "frontend/app", "tools"]

WORDS = ("the a to of and in is for on that with this it as be are by from at "
         "or an not we can will if should function return value error test file "
         "build config update fix add remove check parse token budget ledger "
         "session cache request response model input output read write path "
         "module struct impl trait async await result option vector string "
         "index query table column migrate schema handler route server client "
         "user account invoice payment order cart product search filter sort "
         "page render component state props hook effect memo layout style "
         "deploy docker image container cluster node pod service ingress "
         "log metric trace span latency timeout retry backoff queue worker job").split()

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def encode_project(path):
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def fmt_ts(ms):
    s, m = divmod(ms, 1000)
    t = time.gmtime(s)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], m)


# ---------------------------------------------------------------- sizes
def quantile_fn(k):
    logs = [(u, math.log(x)) for u, x in QUANTILES]

    def q(u):
        for (a, x), (b, y) in zip(logs, logs[1:]):
            if u <= b:
                t = (u - a) / (b - a)
                if b == 1.0:
                    t = t ** k  # the top 1% is concentrated near p99, with one outlier
                return math.exp(x + t * (y - x))
        return math.exp(logs[-1][1])
    return q


def calibrate_tail():
    """Exponent of the top segment so that the profile's 3,142 files sum to 1.24 GB."""
    lo, hi = 1.0, 40.0
    for _ in range(60):
        k = (lo + hi) / 2
        q = quantile_fn(k)
        s = sum(q(i / (PROFILE_FILES - 1)) for i in range(PROFILE_FILES))
        if s > PROFILE_BYTES:
            lo = k
        else:
            hi = k
    return (lo + hi) / 2


def plan_sizes(total_bytes):
    n = max(MIN_FILES, int(round(PROFILE_FILES * total_bytes / PROFILE_BYTES)))
    q = quantile_fn(calibrate_tail())
    sizes = [q(i / (n - 1)) for i in range(n)]
    cap = min(QUANTILES[-1][1], total_bytes * 0.12)
    for _ in range(8):  # cap the largest files for small trees, then rescale
        sizes = [min(s, cap) for s in sizes]
        f = total_bytes / sum(sizes)
        sizes = [s * f for s in sizes]
        if max(sizes) <= cap * 1.001:
            break
    sizes = [max(200, int(round(s))) for s in sizes]
    return sizes


def quantiles_of(values):
    v = sorted(values)
    n = len(v)

    def qq(p):
        x = p * (n - 1)
        i = int(math.floor(x))
        j = min(i + 1, n - 1)
        return v[i] + (v[j] - v[i]) * (x - i)
    return {"min": v[0], "p50": round(qq(0.5)), "p75": round(qq(0.75)), "p90": round(qq(0.9)),
            "p95": round(qq(0.95)), "p99": round(qq(0.99)), "max": v[-1],
            "mean": round(sum(v) / n)}


# ---------------------------------------------------------------- text material
def build_filler(rng, nbytes=6 * 1024 * 1024):
    """A big, already JSON-escaped text: code/log-like lines joined by \\n.
    The only backslashes are the escape sequences \\n and \\t, so any slice is a
    valid JSON string body once a trailing lone backslash is dropped."""
    parts = []
    total = 0
    idents = ["fn", "let", "pub", "impl", "match", "if", "else", "for", "while", "use",
              "def", "class", "import", "const", "var", "export", "async", "await"]
    ln = 1
    while total < nbytes:
        kind = rng.random()
        if kind < 0.45:
            indent = "\\t" * rng.randint(0, 3)
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
            s = "%6d%s%s %s(%s);" % (ln, indent, rng.choice(idents), body.replace(" ", "_", 1), rng.choice(WORDS))
        elif kind < 0.75:
            s = "2026-10-%02dT%02d:%02d:%02d.%03dZ INFO %s: %s" % (
                rng.randint(1, 31), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                rng.randint(0, 999), rng.choice(WORDS), " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))))
        else:
            s = "src/%s/%s.rs:%d:%d: %s" % (rng.choice(WORDS), rng.choice(WORDS), rng.randint(1, 2000),
                                             rng.randint(1, 120), " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))))
        parts.append(s)
        total += len(s) + 2
        ln += 1
    return "\\n".join(parts)


class Material:
    def __init__(self, rng):
        self.rng = rng
        self.filler = build_filler(rng)
        self.flen = len(self.filler)
        sent = []
        for _ in range(3000):
            w = [rng.choice(WORDS) for _ in range(rng.randint(5, 22))]
            sent.append(" ".join(w).capitalize() + ".")
        self.sentences = sent
        self.sigs = []
        for _ in range(64):
            self.sigs.append("".join(rng.choices(B62 + "+/", k=rng.randint(200, 900))))

    def text(self, n):
        """JSON-safe text of about n bytes."""
        if n <= 0:
            return ""
        return self.slice(n)

    def slice(self, n):
        f = self.filler
        if n <= self.flen - 1:
            o = self.rng.randrange(0, self.flen - n)
            s = f[o:o + n]
        else:
            reps = n // self.flen + 1
            s = (f + "\\n") * reps
            s = s[:n]
        if s.endswith("\\"):
            s = s[:-1]
        return s

    def prose(self, nsent):
        rng = self.rng
        return " ".join(rng.choice(self.sentences) for _ in range(nsent))


# ---------------------------------------------------------------- ids
class Ids:
    def __init__(self, rng):
        self.rng = rng

    def uuid(self):
        h = "%032x" % self.rng.getrandbits(128)
        return "%s-%s-4%s-%x%s-%s" % (h[0:8], h[8:12], h[13:16], 8 | (int(h[16], 16) & 3), h[17:20], h[20:32])

    def b62(self, n):
        return "".join(self.rng.choices(B62, k=n))

    def msg(self):
        return "msg_01" + self.b62(22)

    def req(self):
        return "req_011C" + self.b62(20)

    def toolu(self):
        return "toolu_01" + self.b62(22)

    def agent(self):
        return "a" + "%015x" % self.rng.getrandbits(60)


# ---------------------------------------------------------------- line builders
def envelope(parent, sidechain, cwd, sid, version, branch, agent_id):
    """Everything of a record before "type"/"message", without the opening brace."""
    p = ('"parentUuid":"%s"' % parent) if parent else '"parentUuid":null'
    a = (',"agentId":"%s"' % agent_id) if agent_id else ""
    return ('%s,"isSidechain":%s,"userType":"external","cwd":"%s","sessionId":"%s","version":"%s","gitBranch":"%s"%s'
            % (p, "true" if sidechain else "false", cwd, sid, version, branch, a))


def usage_json(inp, out, c5, c1, cr, ws=0, nulls=False):
    """The usage object; `nulls` writes the optional fields as null (as some
    versions do) where that does not change the price."""
    if nulls:
        stu = '"server_tool_use":null' if ws == 0 else (
            '"server_tool_use":{"web_search_requests":%d,"web_fetch_requests":null}' % ws)
        tail = '"service_tier":null,"speed":null,"inference_geo":null'
    else:
        stu = '"server_tool_use":{"web_search_requests":%d,"web_fetch_requests":0}' % ws
        tail = '"service_tier":"standard","speed":"standard","inference_geo":"not_available"'
    return ('{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,'
            '"cache_creation":{"ephemeral_5m_input_tokens":%d,"ephemeral_1h_input_tokens":%d},'
            '"output_tokens":%d,%s,%s}'
            % (inp, c5 + c1, cr, c5, c1, out, stu, tail))


def assistant_line(env, model, msg_id, req_id, block_json, stop_reason, usage, uuid, ts, nulls=False):
    stop = "null" if stop_reason is None else '"%s"' % stop_reason
    extra = ',"stop_sequence":null,"container":null' if nulls else ""
    return ('{%s,"message":{"model":"%s","id":"%s","type":"message","role":"assistant","content":[%s],'
            '"stop_reason":%s%s,"usage":%s},"requestId":"%s","type":"assistant","uuid":"%s","timestamp":"%s"}\n'
            % (env, model, msg_id, block_json, stop, extra, usage, req_id, uuid, ts))


def simple_assistant_response(ids, mat, env_fn, parent, model, ms, usage_t):
    """Used by measure.py to append complete new responses: returns (lines, msg_id, req_id, last_uuid)."""
    msg_id, req_id = ids.msg(), ids.req()
    u = usage_json(*usage_t)
    nblocks = 1 + ids.rng.randrange(3)
    lines = []
    for b in range(nblocks):
        uid = ids.uuid()
        if b == nblocks - 1:
            block = '{"type":"text","text":"%s"}' % mat.prose(2)
        else:
            block = ('{"type":"tool_use","id":"%s","name":"Bash","input":{"command":"cargo test --quiet","description":"Run tests"}}'
                     % ids.toolu())
        lines.append(assistant_line(env_fn(parent), model, msg_id, req_id, block,
                                    "end_turn" if b == nblocks - 1 else "tool_use", u, uid, fmt_ts(ms + b)))
        parent = uid
    return lines, msg_id, req_id, parent


# ---------------------------------------------------------------- accounting
class Ledger:
    def __init__(self):
        self.seen = set()
        self.tokens = [0, 0, 0, 0, 0]  # input, output, c5, c1, read
        self.responses = 0
        self.assistant_lines = 0
        self.per_model = {}
        self.per_arm = {}
        self.web_search = 0
        self.long_prompts = 0

    def add(self, key, model, arm, t):
        """t: (input, output, write5m, write1h, read[, web_search_requests])."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.responses += 1
        ws = t[5] if len(t) > 5 else 0
        for i in range(5):
            self.tokens[i] += t[i]
        self.web_search += ws
        if t[0] + t[2] + t[3] + t[4] > LONG_CONTEXT_THRESHOLD:
            self.long_prompts += 1
        for d, k in ((self.per_model, model), (self.per_arm, arm)):
            e = d.get(k)
            if e is None:
                e = d[k] = [0, 0, 0, 0, 0, 0, 0, 0]  # 5 tokens, responses, picodollars, web searches
            for i in range(5):
                e[i] += t[i]
            e[5] += 1
            e[6] += cost_picos(model, t)
            e[7] += ws
        return True


def picos_per_token(usd_per_mtok):
    """USD per million tokens -> integer picodollars per token (exact for list prices)."""
    v = round(usd_per_mtok * 1e6)
    assert abs(v - usd_per_mtok * 1e6) < 1e-6, usd_per_mtok
    return v


def cost_picos(model, t):
    """Exact cost of one de-duplicated response in picodollars (prices.md):
    Sonnet 4/4.5 prompts over 200k tokens price every token at the long-context
    rates; web search adds $0.01 per request."""
    prompt = t[0] + t[2] + t[3] + t[4]
    p = LONG_CONTEXT[model] if (model in LONG_CONTEXT and prompt > LONG_CONTEXT_THRESHOLD) else PRICES[model]
    c = sum(t[i] * picos_per_token(p[i]) for i in range(5))
    ws = t[5] if len(t) > 5 else 0
    return c + ws * WEB_SEARCH_PICOS


def micros_of(picos):
    """Rounded half away from zero, like octo-budget's Picos::to_micros."""
    half = PICOS_PER_MICRO // 2
    return (picos + half) // PICOS_PER_MICRO if picos >= 0 else -((-picos + half) // PICOS_PER_MICRO)


def cost_of(model, t):
    """Dollars (float, for display) of one response."""
    return cost_picos(model, t) / 1e12


def per_entry(v):
    """expected.json's per-model / per-arm entry from a Ledger row."""
    return dict(tok_dict(v[:5]), responses=v[5], web_search_requests=v[7], cost_picos=v[6],
                cost_micros=micros_of(v[6]), cost_usd=micros_of(v[6]) / 1e6)


def tok_dict(t):
    return {"input": t[0], "output": t[1], "cache_creation": t[2] + t[3],
            "cache_creation_5m": t[2], "cache_creation_1h": t[3], "cache_read": t[4],
            "total": t[0] + t[1] + t[2] + t[3] + t[4]}


# ---------------------------------------------------------------- the generator
TOOLS = ["Bash", "Read", "Read", "Edit", "Grep", "Glob", "Bash", "Read", "Write", "Task"]


class Gen:
    def __init__(self, out, total_bytes, seed, n_arms, payload_scale=1.0):
        self.out = out
        self.total_bytes = total_bytes
        self.seed = seed
        # Scales the typical tool output: below 1, more responses per byte
        # (0.1 gives about 200k responses per GiB, near the 211k of the measured profile).
        self.payload_scale = payload_scale
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.mat = Material(random.Random(seed * 7919 + 1))
        self.ledger = Ledger()
        self.n_arms = n_arms
        self.manifest = []
        self.written_bytes = 0
        # each case appears at least once, whatever the size of the tree
        self.specials = ["lc_200000", "lc_200001", "lc_other", "ws", "nulls", "placeholder"]

    def take_special(self, model):
        """The next forced case this response can carry (long-context ones need a model
        with / without the surcharge), or None."""
        for sp in self.specials:
            lc_model = model in LONG_CONTEXT
            if sp in ("lc_200000", "lc_200001") and not lc_model:
                continue
            if sp == "lc_other" and lc_model:
                continue
            self.specials.remove(sp)
            return sp
        return None

    # -------------------------------------------------- planning
    def plan(self):
        rng = self.rng
        names = list(ARM_NAMES)
        while len(names) < self.n_arms:
            names.append("client-%02d" % len(names))
        names = names[: self.n_arms]
        self.arms = names
        weights = [1.0 / (i + 1) ** 0.8 for i in range(len(names))]
        rng.shuffle(weights)
        # projects: (arm, launch cwd); acme/web encodes exactly like acme-web
        projects = []
        for arm, w in zip(names, weights):
            base = "%s/%s" % (HOME_BASE, arm)
            projects.append((arm, base, w * 0.7))
            subs = rng.sample(SUBFOLDERS, rng.randint(0, 2))
            if arm == "acme":
                subs = ["web"] + [s for s in subs if s != "web"]
            for s in subs:
                projects.append((arm, base + "/" + s, w * 0.3 / max(1, len(subs))))
        self.projects = projects

        sizes = plan_sizes(self.total_bytes)
        n = len(sizes)
        order = sorted(range(n), key=lambda i: sizes[i])
        n_meta = max(1, int(round(n * 0.015)))
        n_toolres = max(1, int(round(n * 0.02)))
        meta_sizes = [sizes[i] for i in order[:n_meta]]
        rest = [sizes[i] for i in order[n_meta:]]
        rng.shuffle(rest)
        toolres_sizes = rest[:n_toolres]
        tsizes = rest[n_toolres:]
        nt = len(tsizes)
        n_sub = max(2, int(round(nt * 0.36)))
        n_flat = max(1, int(round(nt * 0.05)))
        n_sess = nt - n_sub - n_flat
        kinds = ["session"] * n_sess + ["subagent"] * n_sub + ["flat"] * n_flat
        pw = [p[2] for p in projects]
        files = [{"kind": kind, "size": size} for size, kind in zip(tsizes, kinds)]
        sessions = [f for f in files if f["kind"] == "session"]
        for f in sessions:
            f["project"] = rng.choices(range(len(projects)), pw)[0]
        # /home/dev/clients/acme/web and /home/dev/clients/acme-web share one folder name
        forced = [i for i, p in enumerate(projects) if p[1] in (HOME_BASE + "/acme/web", HOME_BASE + "/acme-web")]
        for f, i in zip(sessions, forced):
            f["project"] = i
        sessions_by_proj = {}
        for f in sessions:
            sessions_by_proj.setdefault(f["project"], []).append(f)
            f["sid"] = self.ids.uuid()
            f["cwd"] = projects[f["project"]][1]
            f["arm"] = projects[f["project"]][0]
            f["model"] = rng.choices([m for m, _ in MAIN_MODELS], [w for _, w in MAIN_MODELS])[0]
            f["version"] = rng.choice(VERSIONS)
            f["branch"] = rng.choice(BRANCHES)
            f["children"] = []
        sw = [c["size"] ** 0.5 for c in sessions]
        for f in files:
            if f["kind"] in ("subagent", "flat"):
                parent = rng.choices(sessions, sw)[0]
                f["parent"] = parent
                f["project"] = parent["project"]
                parent["children"].append(f)
                f["sid"] = parent["sid"]
                f["agent"] = self.ids.agent()
                f["cwd"] = parent["cwd"]
                f["arm"] = parent["arm"]
                f["model"] = HAIKU if rng.random() < 0.45 else parent["model"]
                f["version"] = parent["version"]
                f["branch"] = parent["branch"]
        # resumed sessions: replay a prefix of another session of the same project
        n_res = max(1, int(round(len(sessions) * 0.08)))
        cands = [f for f in sessions if f["size"] > 20000]
        rng.shuffle(cands)
        made = 0
        for f in cands:
            if made >= n_res:
                break
            if f.get("is_source"):
                continue
            # a source is never itself resumed, so it is written before its replays
            others = [g for g in sessions_by_proj[f["project"]]
                      if g is not f and g.get("resume_of") is None and g["size"] > 8000]
            if not others:
                continue
            src = rng.choice(others)
            src["is_source"] = True
            f["resume_of"] = src
            made += 1
        if made == 0 and len(sessions) >= 2 and not any(s.get("is_source") for s in sessions):
            # tiny trees: force one resume
            multi = [v for v in sessions_by_proj.values() if len(v) >= 2]
            pool = max(multi, key=len) if multi else sessions
            a, b = sorted(pool, key=lambda s: -s["size"])[:2]
            a["resume_of"] = b
            b["is_source"] = True
        # non-transcript files
        others = []
        subs = [f for f in files if f["kind"] == "subagent"]
        hosts = rng.sample(subs, min(len(subs), len(meta_sizes)))
        for i, s in enumerate(meta_sizes):
            host = hosts[i] if i < len(hosts) else rng.choice(sessions)  # else: meta of a vanished agent
            others.append({"kind": "meta", "size": s, "host": host})
        for s in toolres_sizes:
            others.append({"kind": "toolres", "size": s, "host": rng.choice(sessions)})
        self.files = files
        self.sessions = sessions
        self.others = others
        self.planned_sizes = sizes

    # -------------------------------------------------- paths
    def proj_dir(self, f):
        return os.path.join(self.out, "claude", "projects", encode_project(self.projects[f["project"]][1]))

    def path_of(self, f):
        d = self.proj_dir(f)
        if f["kind"] == "session":
            return os.path.join(d, f["sid"] + ".jsonl")
        if f["kind"] == "subagent":
            return os.path.join(d, f["sid"], "subagents", "agent-%s.jsonl" % f["agent"])
        return os.path.join(d, "agent-%s.jsonl" % f["agent"])

    # -------------------------------------------------- writing
    def write_file(self, path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="ascii", newline="\n") as fh:
            fh.write(data)
        self.written_bytes += len(data)

    def run(self):
        t0 = time.time()
        self.plan()
        claude = os.path.join(self.out, "claude")
        if os.path.exists(claude):
            shutil.rmtree(claude)
        os.makedirs(os.path.join(claude, "projects"))
        # subagents first (parents embed progress lines pointing at their records)
        for f in self.files:
            if f["kind"] in ("subagent", "flat"):
                self.gen_transcript(f)
        for f in self.sessions:
            if f.get("resume_of") is None:
                self.gen_transcript(f)
        for f in self.sessions:
            if f.get("resume_of") is not None:
                self.gen_transcript(f)
        for o in self.others:
            self.gen_other(o)
        self.write_budgets()
        self.write_expected(time.time() - t0)

    def gen_other(self, o):
        host = o["host"]
        d = self.proj_dir(host)
        if o["kind"] == "meta":
            if host["kind"] == "subagent":
                path = os.path.join(d, host["sid"], "subagents", "agent-%s.meta.json" % host["agent"])
            else:
                path = os.path.join(d, host["sid"], "subagents", "agent-%s.meta.json" % self.ids.agent())
            base = '{"agentType":"general-purpose","description":"%s"}\n'
            pad = max(0, o["size"] - len(base) + 2)
            data = base % self.mat.prose(40)[:pad]
        else:
            path = os.path.join(d, host["sid"], "tool-results", "toolu_01%s.txt" % self.ids.b62(22))
            data = self.mat.text(o["size"]).replace("\\n", "\n ").replace("\\t", "\t ")[: o["size"]]
        self.write_file(path, data)
        self.manifest.append({"path": os.path.relpath(path, self.out), "kind": o["kind"],
                              "bytes": len(data), "transcript": False})

    def gen_transcript(self, f):
        rng = self.rng
        ids = self.ids
        mat = self.mat
        ledger = self.ledger
        target = f["size"]
        kind = f["kind"]
        sidechain = kind != "session"
        agent_id = f.get("agent")
        sid = f["sid"]
        cwd = f["cwd"]
        arm = f["arm"]
        model = f["model"]
        version = f["version"]
        branch = f["branch"]
        out = []
        size = 0
        responses = 0
        keep_records = [] if sidechain else None  # subagent assistant records for the parent's progress lines

        # time plan: lines ~ size/2500; spread within the month
        est_lines = max(1, target // 2600)
        span = MONTH_LIMIT - MONTH_START
        if kind == "session" and f.get("resume_of") is None:
            step = min(20000, int(span * 0.6 / est_lines))
            dur = step * est_lines
            start = MONTH_START + rng.randrange(0, max(1, span - dur))
        elif sidechain:
            p = f["parent"]
            start = p.get("t_start") or (MONTH_START + rng.randrange(0, span // 2))
            step = min(8000, int(span * 0.3 / est_lines))
            start += rng.randrange(0, 3600 * 1000)
        else:
            step = min(20000, int(span * 0.3 / est_lines))
            start = None
        f["t_start"] = start

        cur = {"cwd": cwd}

        def env(parent):
            return envelope(parent, sidechain, cur["cwd"], sid, version, branch, agent_id)

        parent = None
        if kind == "session" and f.get("resume_of") is not None:
            src = f["resume_of"]
            spath = self.path_of(src)
            with open(spath, "r", encoding="ascii") as fh:
                src_data = fh.read()
            want = int(min(len(src_data) * rng.uniform(0.3, 1.0), target * 0.6))
            cut = src_data.rfind("\n", 0, max(want, 1))
            if cut <= 0:
                cut = src_data.find("\n")
            prefix = src_data[: cut + 1]
            # continue after the last replayed record
            last_ts = None
            for line in reversed(prefix.splitlines()[-50:]):
                m = re.search(r'"timestamp":"([0-9T:.\-]+)Z"', line)
                if m:
                    last_ts = m.group(1)
                    um = re.search(r'"uuid":"([0-9a-f\-]{36})"', line)
                    parent = um.group(1) if um else None
                    break
            out.append(prefix)
            size += len(prefix)
            if last_ts:
                tt = time.strptime(last_ts[:19], "%Y-%m-%dT%H:%M:%S")
                start = calendar.timegm(tt) * 1000 + 60000
            else:
                start = MONTH_START + rng.randrange(0, span // 2)
            f["replayed_bytes"] = len(prefix)
        now = start
        if now >= MONTH_LIMIT:
            now = MONTH_LIMIT - 3600 * 1000

        def tick(scale=1.0):
            nonlocal now
            now += 1 + int(rng.expovariate(1.0 / max(1, step * scale)))
            if now > MONTH_LIMIT:
                now = MONTH_LIMIT
            return fmt_ts(now)

        if kind == "session" and f.get("resume_of") is None and rng.random() < 0.25 and target > 1500:
            line = '{"type":"summary","summary":"%s","leafUuid":"%s"}\n' % (mat.prose(1)[:80], ids.uuid())
            out.append(line)
            size += len(line)

        # usage state
        ctx = rng.randint(8000, 30000)
        cache_mode = rng.choices(["5m", "1h", "mix"], [35, 45, 20])[0]
        pending_progress = []
        if kind == "session":
            for ch in f["children"]:
                pending_progress.extend(ch.get("records", []))
            rng.shuffle(pending_progress)

        first = True
        while True:
            remaining = target - size
            if remaining < 2600 and not (first and remaining > 1800):
                break
            # ---- user prompt (a subagent gets one task prompt, then loops on tools)
            if first or not sidechain:
                if not first and cur["cwd"] == cwd and rng.random() < 0.03:
                    cur["cwd"] = cwd + "/" + rng.choice(("src", "tests", "scripts", "crates/core"))
                uid = ids.uuid()
                ts = tick()
                prompt = mat.prose(rng.randint(1, 4))
                if first and kind == "session" and f.get("resume_of") is None:
                    snap = ('{"type":"file-history-snapshot","messageId":"%s","snapshot":{"messageId":"%s",'
                            '"trackedFileBackups":{},"timestamp":"%s"},"isSnapshotUpdate":false}\n' % (uid, uid, ts))
                    out.append(snap)
                    size += len(snap)
                line = ('{%s,"type":"user","message":{"role":"user","content":"%s"},"uuid":"%s","timestamp":"%s"%s}\n'
                        % (env(parent), prompt, uid, ts,
                           ',"permissionMode":"default"' if not sidechain else ""))
                out.append(line)
                size += len(line)
                parent = uid
            first = False
            turn_resp = 1 + int(rng.expovariate(1 / 6.0))
            new_tokens = rng.randint(20, 3000)
            for _r in range(turn_resp):
                remaining = target - size
                if remaining < 2200:
                    break
                if rng.random() < 0.01:
                    model = rng.choices([m for m, _ in MAIN_MODELS], [w for _, w in MAIN_MODELS])[0] if not sidechain else model
                # ---- usage
                inp = rng.choice((1, 2, 3, 3, 3, 4, 5, 6, 8, 10, 12)) if rng.random() < 0.93 else rng.randint(20, 4000)
                cc = min(new_tokens + rng.randint(0, 400), 60000) if rng.random() < 0.92 else 0
                out_t = max(1, min(16000, int(rng.lognormvariate(math.log(180), 1.1))))
                if ctx + cc + inp > 185000:
                    # auto-compaction
                    ctx = rng.randint(12000, 30000)
                    cl = ('{%s,"type":"system","subtype":"compact_boundary","content":"Conversation compacted",'
                          '"isMeta":false,"level":"info","uuid":"%s","timestamp":"%s","compactMetadata":{"trigger":"auto","preTokens":%d}}\n'
                          % (env(parent), ids.uuid(), tick(0.1), 180000 + rng.randint(0, 9000)))
                    out.append(cl)
                    size += len(cl)
                cr = ctx if rng.random() < 0.97 else 0
                if inp + cc + cr >= 199000:
                    cr = 199000 - inp - cc - 1
                if cache_mode == "5m":
                    c5, c1 = cc, 0
                elif cache_mode == "1h":
                    c5, c1 = 0, cc
                else:
                    c5 = rng.randint(0, cc)
                    c1 = cc - c5
                ctx += cc + out_t
                # ---- the cases a careful tool must price exactly (each forced once, then at random)
                special = self.take_special(model)
                prompt = None
                if special == "lc_200000":
                    prompt = LONG_CONTEXT_THRESHOLD  # not above: base rates
                elif special in ("lc_200001", "lc_other"):
                    prompt = LONG_CONTEXT_THRESHOLD + 1
                elif rng.random() < 0.004:
                    prompt = rng.randint(LONG_CONTEXT_THRESHOLD - 2000, 2 * LONG_CONTEXT_THRESHOLD)
                if prompt is not None:
                    cr = prompt - inp - c5 - c1
                ws = rng.randint(1, 5) if (special == "ws" or rng.random() < 0.02) else 0
                nulls = special == "nulls" or rng.random() < 0.05
                placeholder = special == "placeholder" or rng.random() < 0.1
                t = (inp, out_t, c5, c1, cr, ws)
                u = usage_json(inp, out_t, c5, c1, cr, ws, nulls)
                msg_id, req_id = ids.msg(), ids.req()
                ledger.add((msg_id, req_id), model, arm, t)
                responses += 1
                # ---- blocks
                nb = rng.choices((1, 2, 3, 4), (35, 35, 20, 10))[0]
                if placeholder:
                    nb = max(nb, 2)
                    # an early streaming snapshot: placeholder output_tokens, no stop_reason yet
                    u_early = usage_json(inp, min(out_t, rng.choice((1, 2, 3))), c5, c1, cr, ws, nulls)
                has_thinking = nb >= 2 and rng.random() < 0.5
                blocks = []
                tool_uses = []
                is_last_resp = _r == turn_resp - 1
                for b in range(nb):
                    if b == 0 and has_thinking:
                        blocks.append('{"type":"thinking","thinking":"%s","signature":"%s"}'
                                      % (mat.prose(rng.randint(1, 6)), rng.choice(mat.sigs)))
                    elif b == nb - 1 and is_last_resp:
                        blocks.append('{"type":"text","text":"%s"}' % mat.prose(rng.randint(1, 5)))
                    elif b == nb - 1 or rng.random() < 0.7:
                        tool = rng.choice(TOOLS)
                        if tool == "Task" and not pending_progress and sidechain:
                            tool = "Grep"
                        tid = ids.toolu()
                        tool_uses.append((tid, tool))
                        blocks.append(self.tool_use_json(tid, tool, cwd))
                    else:
                        blocks.append('{"type":"text","text":"%s"}' % mat.prose(rng.randint(1, 3)))
                stop = "tool_use" if tool_uses else "end_turn"
                for b, block in enumerate(blocks):
                    auid = ids.uuid()
                    if placeholder and b < len(blocks) - 1:
                        line = assistant_line(env(parent), model, msg_id, req_id, block, None, u_early, auid,
                                              tick(0.3), nulls)
                    else:
                        line = assistant_line(env(parent), model, msg_id, req_id, block, stop, u, auid, tick(0.3),
                                              nulls)
                    out.append(line)
                    size += len(line)
                    parent = auid
                    ledger.assistant_lines += 1
                    if keep_records is not None and len(keep_records) < 3 and rng.random() < 0.3:
                        keep_records.append(line[:-1])
                # ---- tool results
                new_tokens = 0
                for tid, tool in tool_uses:
                    if tool == "Task" and pending_progress:
                        for _k in range(min(len(pending_progress), rng.randint(1, 3))):
                            rec = pending_progress.pop()
                            pl = ('{%s,"type":"progress","data":{"message":%s,"normalizedMessages":[],"type":"agent_progress",'
                                  '"prompt":"%s","agentId":"%s"},"toolUseID":"agent_msg_01%s","parentToolUseID":"%s","uuid":"%s","timestamp":"%s"}\n'
                                  % (env(parent), rec, mat.prose(1)[:60], rec.split('"agentId":"', 1)[1][:16],
                                     ids.b62(22), tid, ids.uuid(), tick(0.2)))
                            out.append(pl)
                            size += len(pl)
                    remaining = target - size
                    p = self.payload_size(remaining)
                    if p < 0:
                        break
                    ruid = ids.uuid()
                    line = self.tool_result_line(env(parent), tid, tool, p, cwd, ruid, tick())
                    out.append(line)
                    size += len(line)
                    parent = ruid
                    new_tokens += p // 3 + rng.randint(10, 200)
                if not tool_uses:
                    break
        # flush leftover progress (parent shorter than expected): keep domain exact, they are duplicates anyway
        while pending_progress and kind == "session":
            rec = pending_progress.pop()
            pl = ('{%s,"type":"progress","data":{"message":%s,"normalizedMessages":[],"type":"agent_progress",'
                  '"prompt":"%s","agentId":"%s"},"toolUseID":"agent_msg_01%s","parentToolUseID":"toolu_01%s","uuid":"%s","timestamp":"%s"}\n'
                  % (env(parent), rec, mat.prose(1)[:60], rec.split('"agentId":"', 1)[1][:16],
                     ids.b62(22), ids.b62(22), ids.uuid(), tick(0.2)))
            out.append(pl)
            size += len(pl)
        # pad to the target with a queue-operation line
        remaining = target - size
        if remaining >= 140 or size == 0:
            base = '{"type":"queue-operation","operation":"enqueue","timestamp":"%s","sessionId":"%s","content":"%s"}\n'
            if sidechain:
                base = base[:-2] + (',"isSidechain":true,"agentId":"%s"}\n' % agent_id)
            ts = tick()
            fixed = len(base % (ts, sid, ""))
            line = base % (ts, sid, mat.text(max(1, remaining - fixed)))
            out.append(line)
            size += len(line)
        if keep_records is not None:
            f["records"] = keep_records
        path = self.path_of(f)
        data = "".join(out)
        self.write_file(path, data)
        entry = {"path": os.path.relpath(path, self.out), "kind": kind, "transcript": True,
                 "bytes": len(data), "session_id": sid, "cwd": cwd, "arm": arm,
                 "model": f["model"], "version": version, "git_branch": branch, "responses": responses}
        if agent_id:
            entry["agent_id"] = agent_id
        if f.get("resume_of") is not None:
            entry["resumes"] = self.path_of(f["resume_of"])[len(self.out) + 1:]
            entry["replayed_bytes"] = f.get("replayed_bytes", 0)
        self.manifest.append(entry)

    def payload_size(self, remaining):
        """Bytes of one tool output (written twice: content and toolUseResult)."""
        rng = self.rng
        avail = (remaining - 700) // 2
        if avail < 50:
            return -1
        if rng.random() < 0.003:
            p = int(rng.randint(200000, 3000000) * self.payload_scale)
        else:
            p = int(rng.lognormvariate(math.log(1000 * self.payload_scale), 1.3))
        if avail - p < 1300:
            # close to the end: fill the file exactly
            p = avail
        return max(1, min(p, avail))

    def tool_use_json(self, tid, tool, cwd):
        rng = self.rng
        w = rng.choice(WORDS)
        if tool == "Bash":
            inp = '{"command":"cd %s && cargo test %s -- --nocapture","description":"Run %s tests"}' % (cwd, w, w)
        elif tool == "Read":
            inp = '{"file_path":"%s/src/%s/%s.rs"}' % (cwd, w, rng.choice(WORDS))
        elif tool == "Edit":
            inp = '{"file_path":"%s/src/%s.rs","old_string":"%s","new_string":"%s"}' % (
                cwd, w, self.mat.text(rng.randint(40, 600)), self.mat.text(rng.randint(40, 800)))
        elif tool == "Write":
            inp = '{"file_path":"%s/src/%s_new.rs","content":"%s"}' % (cwd, w, self.mat.text(rng.randint(200, 3000)))
        elif tool == "Grep":
            inp = '{"pattern":"%s","path":"%s","output_mode":"content","-n":true}' % (w, cwd)
        elif tool == "Glob":
            inp = '{"pattern":"**/*%s*.rs","path":"%s"}' % (w, cwd)
        else:
            inp = '{"description":"Investigate %s","prompt":"%s","subagent_type":"general-purpose"}' % (
                w, self.mat.prose(2))
        return '{"type":"tool_use","id":"%s","name":"%s","input":%s}' % (tid, tool, inp)

    def tool_result_line(self, env, tid, tool, p, cwd, uid, ts):
        payload = self.mat.text(p)
        if tool == "Read":
            nl = payload.count("\\n") + 1
            tur = ('{"type":"text","file":{"filePath":"%s/src/%s.rs","content":"%s","numLines":%d,"startLine":1,"totalLines":%d}}'
                   % (cwd, self.rng.choice(WORDS), payload, nl, nl))
        elif tool == "Grep":
            nl = payload.count("\\n") + 1
            tur = '{"mode":"content","numFiles":%d,"filenames":[],"content":"%s","numLines":%d}' % (
                self.rng.randint(1, 40), payload, nl)
        else:
            tur = '{"stdout":"%s","stderr":"","interrupted":false,"isImage":false}' % payload
        return ('{%s,"type":"user","message":{"role":"user","content":[{"tool_use_id":"%s","type":"tool_result","content":"%s","is_error":false}]},'
                '"uuid":"%s","timestamp":"%s","toolUseResult":%s}\n' % (env, tid, payload, uid, ts, tur))

    # -------------------------------------------------- outputs
    def write_budgets(self):
        rng = self.rng
        lines = ["# generated by bench/gen_tree.py (seed %d)" % self.seed, "timezone: UTC", "default:",
                 "  grace_pct: 110", "  action_on_breach: warn", "budgets:"]
        # caps relative to each arm's generated spend: a fixed share of the arms
        # with spend is over (0.5x, 0.9x) or near (1.05x) its cap, the rest under
        spent = [a for a in self.arms if a in self.ledger.per_arm]
        k = len(spent)
        factors = ([0.5] * max(1, k // 10) + [0.9] * max(1, k // 10) + [1.05] * max(1, k // 20))[:k]
        factors += [(1.6, 3.0, 6.0)[i % 3] for i in range(k - len(factors))]
        rng.shuffle(factors)
        factor_of = dict(zip(spent, factors))
        for arm in self.arms:
            e = self.ledger.per_arm.get(arm)
            cost = e[6] / 1e12 if e else 0.0
            cap = max(0.01, round(cost * factor_of[arm], 2)) if arm in factor_of else 5.0
            lines.append("  - arm: %s" % arm)
            lines.append("    monthly_usd_cap: %.2f" % cap)
            lines.append("    path: %s/%s" % (HOME_BASE, arm))
        data = "\n".join(lines) + "\n"
        with open(os.path.join(self.out, "budgets.yaml"), "w") as fh:
            fh.write(data)

    def write_expected(self, elapsed):
        L = self.ledger
        files = self.manifest
        tfiles = [m for m in files if m["transcript"]]
        kinds = {}
        for m in files:
            kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
        picos = sum(e[6] for e in L.per_model.values())
        exp = {
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "payload_scale": self.payload_scale,
            "size_mb": self.total_bytes / 1048576,
            "month": MONTH,
            "config_dir": "claude",
            "files": len(files),
            "bytes": sum(m["bytes"] for m in files),
            "transcript_files": len(tfiles),
            "transcript_bytes": sum(m["bytes"] for m in tfiles),
            "kinds": kinds,
            "arms": len(self.arms),
            "responses": L.responses,
            "assistant_lines": L.assistant_lines,
            "tokens": tok_dict(L.tokens),
            "web_search_requests": L.web_search,
            "long_context_responses": L.long_prompts,
            "cost_picos": picos,
            "cost_micros": micros_of(picos),
            "cost_usd": micros_of(picos) / 1e6,
            "per_model": {k: per_entry(v) for k, v in sorted(L.per_model.items())},
            "per_arm": {k: per_entry(v) for k, v in sorted(L.per_arm.items())},
            "size_quantiles": quantiles_of([m["bytes"] for m in files]),
            "generation_seconds": round(elapsed, 2),
            "prices_usd_per_mtok": {k: dict(zip(["input", "output", "write_5m", "write_1h", "read"], v))
                                    for k, v in PRICES.items()},
        }
        with open(os.path.join(self.out, "expected.json"), "w") as fh:
            json.dump(exp, fh, indent=1, sort_keys=False)
            fh.write("\n")
        with open(os.path.join(self.out, "manifest.json"), "w") as fh:
            json.dump({"files": files}, fh, separators=(",", ":"))
            fh.write("\n")
        return exp


# ---------------------------------------------------------------- verify
def verify(out):
    """Re-read the tree independently and check expected.json and the domain rules."""
    with open(os.path.join(out, "expected.json")) as fh:
        exp = json.load(fh)
    root = os.path.join(out, "claude", "projects")
    seen = {}
    nfiles = nbytes = 0
    bad = []
    sizes = []
    nulls = 0
    by_type = {}
    lines_by_type = {}
    for dp, _dn, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            nfiles += 1
            sz = os.path.getsize(p)
            nbytes += sz
            sizes.append(sz)
            if not fn.endswith(".jsonl"):
                continue
            is_sub = "/subagents/" in p or fn.startswith("agent-")
            with open(p, "rb") as fh:
                for ln, raw in enumerate(fh, 1):
                    if not raw.endswith(b"\n"):
                        bad.append("%s:%d partial line" % (p, ln))
                    try:
                        rec = json.loads(raw)
                    except ValueError as e:
                        bad.append("%s:%d bad json %s" % (p, ln, e))
                        continue
                    if is_sub and "sessionId" in rec and (not rec.get("isSidechain") or not rec.get("agentId")):
                        bad.append("%s:%d subagent line without isSidechain/agentId" % (p, ln))
                    recs = []
                    ty = rec.get("type") if isinstance(rec, dict) else None
                    if ty == "user" and isinstance(rec["message"]["content"], list):
                        ty = "user(tool_result)"
                    by_type[ty] = by_type.get(ty, 0) + len(raw)
                    lines_by_type[ty] = lines_by_type.get(ty, 0) + 1
                    if rec.get("type") == "assistant":
                        recs.append(rec)
                        if b":null" in raw:
                            nulls += 1
                    elif rec.get("type") == "progress":
                        recs.append(rec["data"]["message"])
                    for r in recs:
                        m = r["message"]
                        u = m["usage"]
                        cc = u["cache_creation"]
                        if u["cache_creation_input_tokens"] != cc["ephemeral_5m_input_tokens"] + cc["ephemeral_1h_input_tokens"]:
                            bad.append("%s:%d cache split mismatch" % (p, ln))
                        if not r["timestamp"].startswith(MONTH):
                            bad.append("%s:%d timestamp outside month" % (p, ln))
                        key = (m["id"], r["requestId"])
                        stu = u.get("server_tool_use") or {}
                        t = [u["input_tokens"], u["output_tokens"], cc["ephemeral_5m_input_tokens"],
                             cc["ephemeral_1h_input_tokens"], u["cache_read_input_tokens"],
                             stu.get("web_search_requests") or 0, m["model"]]
                        if key in seen:
                            o = seen[key]
                            if o[:1] + o[2:] != t[:1] + t[2:]:
                                bad.append("%s:%d duplicate response with different usage" % (p, ln))
                            t[1] = max(t[1], o[1])  # streaming placeholders: the maximum counts
                        seen[key] = t
    tot = [0] * 5
    picos = 0
    for t in seen.values():
        for i in range(5):
            tot[i] += t[i]
        picos += cost_picos(t[6], t[:6])
    got = {"files": nfiles, "bytes": nbytes, "responses": len(seen), "tokens": tok_dict(tot),
           "cost_micros": micros_of(picos), "assistant_lines_with_null": nulls}
    ok = True
    for k in ("files", "bytes", "responses", "cost_micros"):
        if got[k] != exp[k]:
            ok = False
            print("MISMATCH %s: tree %s expected %s" % (k, got[k], exp[k]))
    for k, v in got["tokens"].items():
        if exp["tokens"][k] != v:
            ok = False
            print("MISMATCH tokens.%s: tree %s expected %s" % (k, v, exp["tokens"][k]))
    for b in bad[:20]:
        print("BAD", b)
    if bad:
        ok = False
        print("%d problems" % len(bad))
    got["bytes_by_line_type"] = by_type
    got["lines_by_type"] = lines_by_type
    print(json.dumps({"verified": ok, **got, "size_quantiles": quantiles_of(sizes)}, indent=1))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--size-mb", type=float, default=None, help="total size in MiB")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arms", type=int, default=40)
    ap.add_argument("--payload-scale", type=float, default=1.0,
                    help="scale of tool outputs; 0.1 gives about 200k responses per GiB (the measured profile had 211k)")
    ap.add_argument("--verify", metavar="DIR", help="re-read a generated tree and check expected.json")
    ap.add_argument("--is-current", metavar="DIR",
                    help="exit 0 if DIR holds a complete tree made by this generator version")
    a = ap.parse_args()
    if a.is_current:
        try:
            with open(os.path.join(a.is_current, "expected.json")) as fh:
                ok = json.load(fh).get("generator_version") == GENERATOR_VERSION
            ok = ok and os.path.exists(os.path.join(a.is_current, "manifest.json"))
        except (OSError, ValueError):
            ok = False
        sys.exit(0 if ok else 1)
    if a.verify:
        sys.exit(0 if verify(a.verify) else 1)
    if not a.out or a.size_mb is None:
        ap.error("--out and --size-mb are required")
    if a.size_mb <= 0 or a.arms < 2:
        ap.error("--size-mb must be > 0 and --arms >= 2")
    os.makedirs(a.out, exist_ok=True)
    for fn in ("expected.json", "manifest.json", "budgets.yaml"):
        p = os.path.join(a.out, fn)
        if os.path.exists(p):
            os.remove(p)
    g = Gen(a.out, int(a.size_mb * 1048576), a.seed, a.arms, a.payload_scale)
    g.run()
    with open(os.path.join(a.out, "expected.json")) as fh:
        exp = json.load(fh)
    print("generated %d files, %.1f MiB, %d responses in %.1fs -> %s" % (
        exp["files"], exp["bytes"] / 1048576, exp["responses"], exp["generation_seconds"], a.out))


if __name__ == "__main__":
    main()
