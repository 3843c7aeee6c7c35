#!/usr/bin/env python3
"""A local mock of the Anthropic Messages API for the e2e suite.

It answers on 127.0.0.1 (port 0: the OS picks one) and plays scripted
conversations to the real Claude Code:

- a conversation is chosen by a marker in its first user message:
  `E2E:<script>` for the main agent, `E2E-SUB:<script>` for a subagent
  (the main script puts that marker in the Agent tool's prompt);
- the step within it is the number of tool_result blocks the request
  carries (each answered tool call, allowed or refused, moves it on);
- WebSearch's own request (its `tools` hold the `web_search_*` server
  tool) gets a search answer; a request whose prompt asks for a summary of
  the conversation (auto-compaction) gets a summary; anything else (title
  generation, count_tokens, `HEAD /api/hello`, ...) gets a small sane
  answer.

Every streamed response carries DISTINCT deterministic usage (input,
output, cache writes split 5m/1h, cache reads), a function of the script,
the role and the step, so the runner can compute what octo-budget must
report. Every request answered and every tool_result received is recorded
(`MockApi.records`, or `--record FILE` when run on its own).

Run alone: `python3 tests/e2e/mock_api.py [--port N] [--record FILE]`.
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "claude-sonnet-4-6"


def usage_for(script, role, step, scale=1, web_search=0, nth=0):
    """Distinct deterministic usage for one response.

    `scale` multiplies the output tokens only: a big spend without a big
    prompt (a prompt near the context window would set off compaction).

    Every token kind is priced to a whole number of micro-dollars on
    claude-sonnet-4-6 ($3 in, $15 out, $3.75 5m write, $6 1h write, $0.30
    read per million): 5m writes are multiples of 4, reads multiples of
    10, so the expected dollars are exact.
    """
    h = int.from_bytes(hashlib.sha256(f"{script}/{role}/{step}/{nth}".encode()).digest()[:4], "big")
    j = h % 97  # spreads requests apart, deterministic
    base = {"main": 0, "subagent": 500, "websearch": 900, "aux": 1300, "compact": 1700}.get(role, 2100)
    w5 = (40 + base + 8 * step + j) * 4
    w1 = (300 + base + 13 * step + j)
    return {
        "input_tokens": 7 + base + 3 * step + j,
        "output_tokens": (120 + base + 17 * step + j) * scale,
        "cache_creation_input_tokens": w5 + w1,
        "cache_read_input_tokens": (1000 + base + 31 * step + j) * 10,
        "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
        "server_tool_use": {"web_search_requests": web_search, "web_fetch_requests": 0},
        "service_tier": "standard",
    }


# Scripts. Each is a list of steps; step i answers the request that carries
# i tool_result blocks. A step is {"blocks": [...], "scale": n}; a block is
# ("text", str) or ("tool", name, input). Past the end: a final text.
def bash(cmd):
    return ("tool", "Bash", {"command": cmd, "description": "e2e step"})


def agent(sub, background=False):
    return (
        "tool",
        "Agent",
        {
            "description": "e2e subagent",
            "prompt": f"E2E-SUB:{sub} Do the scripted task.",
            "subagent_type": "general-purpose",
            "run_in_background": background,
        },
    )


def websearch(q="octo-budget e2e"):
    return ("tool", "WebSearch", {"query": q})


def mark(name):
    """A Bash call that leaves a marker file: proof that the tool ran."""
    return bash(f'touch "$E2E_MARKS/{name}"')


SCRIPTS = {
    # a: every kind of tool; report must equal the usage served.
    "account": [
        {"blocks": [("text", "Running a command."), mark("a0")]},
        {"blocks": [agent("account-sub")]},
        {"blocks": [websearch()]},
        {"blocks": [("text", "Done: accounted.")]},
    ],
    "account-sub": [
        {"blocks": [mark("a-sub0")]},
        {"blocks": [("text", "Subagent finished.")]},
    ],
    # b: the first response alone costs more than the hard stop.
    "hardstop": [
        {"blocks": [mark("b0")], "scale": 100},
        {"blocks": [mark("b1")]},
        {"blocks": [mark("b2")]},
        {"blocks": [agent("hardstop-sub")]},
        {"blocks": [websearch()]},
        {"blocks": [mark("b5")]},
        {"blocks": [("text", "Done after refusals.")]},
    ],
    "hardstop-sub": [
        {"blocks": [mark("b-sub0")]},
        {"blocks": [("text", "Subagent should never have run.")]},
    ],
    # c: a session that spends (over the hard stop) without tools.
    "spend": [
        {"blocks": [("text", "Spent.")], "scale": 100},
    ],
    # d, e: cheap tools after a breach: the session must be halted.
    "halt": [
        {"blocks": [mark("h0")], "scale": 100},
        {"blocks": [mark("h1")]},
        {"blocks": [mark("h2")]},
        {"blocks": [mark("h3")]},
        {"blocks": [mark("h4")]},
        {"blocks": [mark("h5")]},
        {"blocks": [mark("h6")]},
        {"blocks": [("text", "Never halted.")]},
    ],
    # f: the binary is moved away by the first tool; every later call must be refused.
    "moved": [
        {"blocks": [bash('mv "$E2E_BIN" "$E2E_BIN.moved" && touch "$E2E_MARKS/f0"')]},
        {"blocks": [mark("f1")]},
        {"blocks": [agent("moved-sub")]},
        {"blocks": [websearch()]},
        {"blocks": [("text", "Done after refusals.")]},
    ],
    "moved-sub": [
        {"blocks": [mark("f-sub0")]},
        {"blocks": [("text", "Subagent should never have run.")]},
    ],
    # g: a warn arm crosses its cap: one systemMessage, tools keep running.
    "warn": [
        {"blocks": [mark("g0")], "scale": 100},
        {"blocks": [mark("g1")]},
        {"blocks": [mark("g2")]},
        {"blocks": [agent("warn-sub")]},
        {"blocks": [websearch()]},
        {"blocks": [agent("warn-sub")]},
        {"blocks": [mark("g6")]},
        {"blocks": [("text", "Done with warnings.")]},
    ],
    "warn-sub": [
        {"blocks": [mark("g-sub0")]},
        {"blocks": [("text", "Subagent done.")]},
    ],
    # h: the subagent's own spend crosses the hard stop; its WebSearch is refused.
    "subspend": [
        {"blocks": [agent("subspend-sub")]},
        {"blocks": [mark("s-main1")]},
        {"blocks": [("text", "Main done.")]},
    ],
    "subspend-sub": [
        {"blocks": [mark("s-sub0")], "scale": 100},
        {"blocks": [mark("s-sub1")]},
        {"blocks": [mark("s-sub2")]},
        {"blocks": [websearch("subagent search")]},
        {"blocks": [mark("s-sub4")]},
        {"blocks": [("text", "Subagent done.")]},
    ],
    # i: a stop arm breached inside a subagent: the whole session must end.
    "subhalt": [
        {"blocks": [agent("subhalt-sub")]},
        {"blocks": [mark("i-main1")]},
        {"blocks": [mark("i-main2")]},
        {"blocks": [("text", "Main never halted.")]},
    ],
    "subhalt-sub": [
        {"blocks": [mark("i-sub0")], "scale": 100},
        {"blocks": [mark("i-sub1")]},
        {"blocks": [mark("i-sub2")]},
        {"blocks": [mark("i-sub3")]},
        {"blocks": [mark("i-sub4")]},
        {"blocks": [("text", "Subagent never halted.")]},
    ],
    # Auto-compaction: the first response reports a prompt near the context
    # window, so Claude Code compacts before its next request.
    "compact": [
        {"blocks": [mark("c0")], "prompt": 190_000},
        {"blocks": [websearch()]},
        {"blocks": [("text", "Compacted and searched.")]},
    ],
    # i, as Claude Code runs subagents by default: in the background.
    "subhalt-bg": [
        {"blocks": [agent("subhalt-sub", background=True)]},
        {"blocks": [bash(f'sleep 1; touch "$E2E_MARKS/i-main1"')]},
        {"blocks": [bash(f'sleep 1; touch "$E2E_MARKS/i-main2"')]},
        {"blocks": [("text", "Main never halted.")]},
    ],
    # A plain conversation: one Bash call, then text (cost-state probes).
    "plain": [
        {"blocks": [mark("p0")]},
        {"blocks": [("text", "Plain done.")]},
    ],
    # Long: Bash calls that sleep, so a run can be killed mid-way.
    "slow": [{"blocks": [bash(f'sleep 0.5; touch "$E2E_MARKS/slow{i}"')]} for i in range(12)]
    + [{"blocks": [("text", "Slow done.")]}],
    # As slow, then a WebSearch: a run killed during the Bash calls and
    # resumed makes its unwritten request in the resumed run.
    # Step 3 sleeps longer and marks its start: the window in which a
    # runner kills it with every earlier response already transcribed.
    "slowsearch": [
        {"blocks": [bash(f'touch "$E2E_MARKS/slowstart{i}"; sleep {4 if i == 3 else 0.5}; touch "$E2E_MARKS/slow{i}"')]}
        for i in range(8)
    ]
    + [{"blocks": [websearch()]}, {"blocks": [("text", "Slow search done.")]}],
}


def _text_of(content):
    if isinstance(content, str):
        return content
    out = []
    for b in content or []:
        if isinstance(b, dict):
            if b.get("type") == "text":
                out.append(b.get("text", ""))
            elif b.get("type") == "tool_result":
                out.append(_text_of(b.get("content")))
    return "\n".join(out)


def _marker(text, prefix):
    i = text.find(prefix)
    if i < 0:
        return None
    rest = text[i + len(prefix):]
    name = ""
    for ch in rest:
        if ch.isalnum() or ch in "-_@":
            name += ch
        else:
            break
    return name or None


class MockApi:
    """The mock server. `start()` returns its base URL."""

    def __init__(self, record_path=None, model=MODEL):
        self.model = model
        self.records = []  # every request answered
        self.tool_results = []  # every tool_result received (deduplicated by tool_use_id)
        self._seen_results = set()
        self.lock = threading.Lock()
        self.counter = 0
        self.repeats = {}  # (script, role, step) -> times served: a repeated step gets new usage
        self.record_path = record_path
        self.server = None
        self.bodies_dir = None  # debugging: write every /v1/messages body here

    # ---- classification -------------------------------------------------
    def classify(self, body):
        """(role, script, step) of a /v1/messages request."""
        tools = body.get("tools") or []
        tool_types = [t.get("type", "") for t in tools if isinstance(t, dict)]
        msgs = body.get("messages") or []
        if any(t.startswith("web_search") for t in tool_types):
            return "websearch", None, 0
        # The markers are looked for in the user's own text (not in tool results).
        user_text = "\n".join(
            b.get("text", "") if isinstance(b, dict) else ""
            for m in msgs
            if m.get("role") == "user"
            for b in (m.get("content") if isinstance(m.get("content"), list) else [{"type": "text", "text": m.get("content") or ""}])
            if isinstance(b, dict) and b.get("type") == "text"
        )
        last = _text_of(msgs[-1].get("content")) if msgs else ""
        results = sum(
            1
            for m in msgs
            if m.get("role") == "user" and isinstance(m.get("content"), list)
            for b in m["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        )
        role, script = "aux", None
        for prefix, r in (("E2E-SUB:", "subagent"), ("E2E:", "main")):
            name = _marker(user_text, prefix)
            if name:
                role, script = r, name
                break
        if script and "@" in script:  # after a compaction: `E2E:<script>@<steps already done>`
            script, done = script.split("@", 1)
            results += int(done)
        if "summary of the conversation so far" in last.lower():
            return "compact", script, results
        if not tools:
            return "aux", None, results
        return role, script, results

    # ---- responses ------------------------------------------------------
    def plan(self, body):
        role, script, step = self.classify(body)
        blocks, scale, web, prompt = [], 1, 0, None
        steps = SCRIPTS.get(script) if script else None
        if role == "websearch":
            q = _text_of((body.get("messages") or [{}])[-1].get("content"))
            web = 1
            blocks = [
                ("server_tool_use", "web_search", {"query": q[-80:]}),
                ("web_search_tool_result",),
                ("text", "Search results: nothing relevant (e2e mock)."),
            ]
        elif role == "compact":
            tag = "E2E-SUB" if script and script.endswith("-sub") else "E2E"
            cont = f"{tag}:{script}@{step}" if script else "nothing scripted"
            blocks = [("text", f"<analysis>mock</analysis>\n<summary>The e2e conversation so far; continue with {cont} .</summary>")]
        elif steps is not None and role in ("main", "subagent"):
            if step < len(steps):
                blocks = steps[step]["blocks"]
                scale = steps[step].get("scale", 1)
                prompt = steps[step].get("prompt")
            else:
                blocks = [("text", f"{script}: past the end of the script.")]
        elif role == "aux":
            blocks = [("text", "E2e title")]
        else:
            blocks = [("text", "Unknown script.")]
        key = (script or role, role, step)
        with self.lock:
            nth = self.repeats.get(key, 0)
            self.repeats[key] = nth + 1
        usage = usage_for(script or role, role, step, scale, web, nth)
        if prompt:  # a prompt this big in all: the rest are cache reads (a multiple of 10)
            rest = prompt - usage["input_tokens"] - usage["cache_creation_input_tokens"]
            usage["cache_read_input_tokens"] = rest - rest % 10
        return role, script, step, blocks, usage

    def record(self, entry, body):
        with self.lock:
            self.counter += 1
            entry["seq"] = self.counter
            entry["t"] = time.time()
            for m in (body or {}).get("messages") or []:
                if m.get("role") != "user" or not isinstance(m.get("content"), list):
                    continue
                for b in m["content"]:
                    if isinstance(b, dict) and b.get("type") == "tool_result":
                        tid = b.get("tool_use_id")
                        if tid in self._seen_results:
                            continue
                        self._seen_results.add(tid)
                        self.tool_results.append(
                            {
                                "tool_use_id": tid,
                                "is_error": bool(b.get("is_error")),
                                "content": _text_of(b.get("content"))[:2000],
                                "seen_in_seq": self.counter,
                                "role": entry.get("role"),
                                "script": entry.get("script"),
                            }
                        )
            self.records.append(entry)
            if self.record_path:
                self.dump(self.record_path)
            return self.counter

    def dump(self, path):
        with open(path + ".tmp", "w") as f:
            json.dump({"requests": self.records, "tool_results": self.tool_results}, f, indent=1)
        os.replace(path + ".tmp", path)

    def reset(self):
        with self.lock:
            self.records = []
            self.tool_results = []
            self._seen_results = set()

    def start(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, ctype, payload, extra=None):
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _body(self):
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw or b"{}")
                except ValueError:
                    return {}

            def do_HEAD(self):
                api.record({"method": "HEAD", "path": self.path, "role": "other"}, None)
                self._send(200, "application/json", b"")

            def do_GET(self):
                api.record({"method": "GET", "path": self.path, "role": "other"}, None)
                self._send(200, "application/json", b"{}")

            def do_POST(self):
                body = self._body()
                path = self.path.split("?")[0]
                if path.endswith("/count_tokens"):
                    n = len(json.dumps(body)) // 4
                    api.record({"method": "POST", "path": path, "role": "count_tokens", "model": body.get("model")}, None)
                    return self._send(200, "application/json", json.dumps({"input_tokens": n}).encode())
                if not path.endswith("/v1/messages"):
                    api.record({"method": "POST", "path": path, "role": "other"}, None)
                    return self._send(200, "application/json", b"{}")
                role, script, step, blocks, usage = api.plan(body)
                entry = {
                    "method": "POST",
                    "path": path,
                    "role": role,
                    "script": script,
                    "step": step,
                    "model_asked": body.get("model"),
                    "model": api.model,
                    "stream": bool(body.get("stream")),
                    "tools": [t.get("name") or t.get("type") for t in body.get("tools") or []],
                    "usage": usage,
                    "tool_uses": [b[1] for b in blocks if b[0] == "tool"],
                }
                seq = api.record(entry, body)
                msg_id = f"msg_e2e{seq:04d}{hashlib.sha1(f'{time.time()}/{seq}'.encode()).hexdigest()[:10]}"
                req_id = f"req_e2e{seq:04d}{hashlib.sha1(msg_id.encode()).hexdigest()[:12]}"
                with api.lock:
                    entry["id"] = msg_id
                    entry["request_id"] = req_id
                    if api.record_path:
                        api.dump(api.record_path)
                if api.bodies_dir:
                    with open(f"{api.bodies_dir}/{seq:04d}-{role}.json", "w") as f:
                        json.dump(body, f, indent=1)
                content = []
                for i, b in enumerate(blocks):
                    if b[0] == "text":
                        content.append({"type": "text", "text": b[1]})
                    elif b[0] == "tool":
                        content.append({"type": "tool_use", "id": f"toolu_e2e{seq:04d}_{i}", "name": b[1], "input": b[2]})
                    elif b[0] == "server_tool_use":
                        content.append({"type": "server_tool_use", "id": f"srvtoolu_e2e{seq:04d}", "name": b[1], "input": b[2]})
                    elif b[0] == "web_search_tool_result":
                        content.append(
                            {
                                "type": "web_search_tool_result",
                                "tool_use_id": f"srvtoolu_e2e{seq:04d}",
                                "content": [
                                    {
                                        "type": "web_search_result",
                                        "title": "octo-budget",
                                        "url": "https://example.invalid/octo-budget",
                                        "encrypted_content": "e2e",
                                        "page_age": None,
                                    }
                                ],
                            }
                        )
                stop = "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn"
                headers = {"request-id": req_id}
                if not body.get("stream"):
                    msg = {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": api.model,
                        "content": content,
                        "stop_reason": stop,
                        "stop_sequence": None,
                        "usage": usage,
                    }
                    return self._send(200, "application/json", json.dumps(msg).encode(), headers)
                self._send(200, "text/event-stream", sse(msg_id, api.model, content, stop, usage), headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def sse(msg_id, model, content, stop, usage):
    out = []

    def ev(kind, data):
        out.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n")

    start_usage = dict(usage)
    start_usage["output_tokens"] = 1  # the real API's placeholder; the final count is in message_delta
    ev(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    for i, c in enumerate(content):
        if c["type"] == "text":
            ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            ev("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": c["text"]}})
        elif c["type"] in ("tool_use", "server_tool_use"):
            ev(
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": {"type": c["type"], "id": c["id"], "name": c["name"], "input": {}}},
            )
            ev(
                "content_block_delta",
                {"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": json.dumps(c["input"])}},
            )
        else:
            ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": c})
        ev("content_block_stop", {"type": "content_block_stop", "index": i})
    ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage})
    ev("message_stop", {"type": "message_stop"})
    return "".join(out).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", help="write the record (JSON) here after every request")
    ap.add_argument("--bodies", help="debugging: write every /v1/messages request body into this folder")
    args = ap.parse_args()
    api = MockApi(record_path=args.record)
    api.bodies_dir = args.bodies
    print(api.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
