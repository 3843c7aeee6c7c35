//! One transcript line in, one costed [`Response`] (or a reason) out.
//!
//! Pure: no files, no clock. Lines that cannot carry usage are recognised
//! by a byte search and never fully parsed, which keeps a cold scan of a
//! large profile cheap; every other line is parsed with borrowed strings,
//! by a one-pass reader (`fast.rs`) that hands any line it does not
//! read exactly as serde_json would to serde_json.

use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use super::{Advisor, CostState, Response, Usage};

/// The most tokens one usage field of one response may hold: 10 million,
/// ten times the largest context window (1M tokens), which leaves room for
/// a response whose server-tool iterations re-read a full window several
/// times. A line that claims more is corrupt (skipped and counted), not
/// allowed to put up to $1,000,000 on one line.
pub const MAX_TOKENS_PER_FIELD: u64 = 10_000_000;
/// The most web searches one response may report (Claude Code's searches
/// run a handful per response).
pub const MAX_WEB_SEARCHES: u64 = 1_000;

/// The outcome of parsing one complete line.
// A `Line` lives only until the caller matches it, one per line read:
// boxing the response would cost an allocation per response for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A costed response.
    Response(Response),
    /// Claude Code's own totals of a session's requests (`cost-state`).
    CostState(CostState),
    /// A valid record that carries no cost (user, summary, `<synthetic>`,
    /// unknown types, ...). Skipped silently.
    NoCost,
    /// Not a JSON object, or a costed record with unusable fields. Skipped
    /// and counted.
    Malformed(&'static str),
}

/// [`Line`] with the response's strings borrowed from the line where
/// they can be: a reader that merges copies of a response (one line per
/// content block) builds owned strings only for the first copy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRef<'a> {
    Response(ResponseRef<'a>),
    CostState(CostState),
    NoCost,
    Malformed(&'static str),
}

/// A [`Response`] whose strings may borrow from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRef<'a> {
    pub message_id: Cow<'a, str>,
    pub request_id: Cow<'a, str>,
    pub session_id: Option<Cow<'a, str>>,
    pub cwd: Option<Cow<'a, str>>,
    pub branch: Option<Cow<'a, str>>,
    pub model: Cow<'a, str>,
    pub ts_ms: i64,
    pub sidechain: bool,
    pub fast: bool,
    pub us_geo: bool,
    pub usage: Usage,
    pub advisors: Vec<Advisor>,
}

impl ResponseRef<'_> {
    pub fn into_owned(self) -> Response {
        Response {
            message_id: self.message_id.into_owned(),
            request_id: self.request_id.into_owned(),
            session_id: self.session_id.map(Cow::into_owned),
            cwd: self.cwd.map(Cow::into_owned),
            branch: self.branch.map(Cow::into_owned),
            model: self.model.into_owned(),
            ts_ms: self.ts_ms,
            sidechain: self.sidechain,
            fast: self.fast,
            us_geo: self.us_geo,
            usage: self.usage,
            advisors: self.advisors,
        }
    }
}

impl From<LineRef<'_>> for Line {
    fn from(l: LineRef<'_>) -> Line {
        match l {
            LineRef::Response(r) => Line::Response(r.into_owned()),
            LineRef::CostState(c) => Line::CostState(c),
            LineRef::NoCost => Line::NoCost,
            LineRef::Malformed(why) => Line::Malformed(why),
        }
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawLine<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) message: Option<RawMessage<'a>>,
    #[serde(rename = "requestId", borrow, default)]
    pub(super) request_id: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default)]
    pub(super) session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) cwd: Option<Cow<'a, str>>,
    #[serde(rename = "gitBranch", borrow, default)]
    pub(super) git_branch: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) uuid: Option<Cow<'a, str>>,
    #[serde(rename = "isSidechain", default)]
    pub(super) is_sidechain: Option<bool>,
    #[serde(borrow, default)]
    pub(super) data: Option<RawData<'a>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawData<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<Box<RawLine<'a>>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawMessage<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) usage: Option<RawUsage<'a>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawUsage<'a> {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation: Option<RawCacheCreation>,
    #[serde(default)]
    pub(super) server_tool_use: Option<RawServerToolUse>,
    #[serde(borrow, default)]
    pub(super) speed: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) inference_geo: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) iterations: Option<Vec<RawIteration<'a>>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawCacheCreation {
    #[serde(default)]
    pub(super) ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawServerToolUse {
    #[serde(default)]
    pub(super) web_search_requests: Option<u64>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct RawIteration<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation: Option<RawCacheCreation>,
}

/// True when a line might carry usage and needs a full parse.
pub fn may_carry_usage(line: &[u8]) -> bool {
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    USAGE.find(line).is_some()
}

/// A cheap check that a line has the shape of a JSON object and is UTF-8.
/// Lines that cannot carry usage are only checked this far.
pub fn looks_like_object(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    t.first() == Some(&b'{') && t.last() == Some(&b'}') && simdutf8::basic::from_utf8(t).is_ok()
}

/// Parses one complete line (without its newline).
pub fn parse_line(line: &[u8]) -> Line {
    parse_line_ref(line).into()
}

/// [`parse_line`], borrowing the response's strings from the line.
pub fn parse_line_ref(line: &[u8]) -> LineRef<'_> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return LineRef::NoCost;
    }
    // A record of a type that never carries cost, named early among plain
    // fields (`fast::leading_type`: a user record, the bulk of a
    // transcript's bytes), is checked for its shape only: its bytes are
    // not searched.
    if super::fast::leading_type(trimmed)
        .is_some_and(|kind| !matches!(kind, "assistant" | "progress" | "cost-state"))
    {
        return if looks_like_object(trimmed) {
            LineRef::NoCost
        } else {
            LineRef::Malformed("not a JSON object")
        };
    }
    if !may_carry_usage(trimmed) {
        if is_cost_state(trimmed) {
            return cost_state(trimmed).into();
        }
        return if looks_like_object(trimmed) {
            LineRef::NoCost
        } else {
            LineRef::Malformed("not a JSON object")
        };
    }
    if let Some(raw) = super::fast::raw_line(trimmed) {
        return from_raw(&raw, trimmed);
    }
    let raw: RawLine<'_> = match serde_json::from_slice(trimmed) {
        Ok(raw) => raw,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            // Valid JSON whose shape differs from a transcript record. Only a
            // costed record with unusable fields is an error; anything else
            // (another record type that happens to mention "usage") is not.
            return classify_unusual(trimmed).into();
        }
        Err(_) => return LineRef::Malformed("invalid JSON"),
    };
    from_raw(&raw, trimmed)
}

impl From<Line> for LineRef<'_> {
    /// For lines that never hold a response.
    fn from(l: Line) -> Self {
        match l {
            Line::Response(r) => LineRef::Response(ResponseRef {
                message_id: Cow::Owned(r.message_id),
                request_id: Cow::Owned(r.request_id),
                session_id: r.session_id.map(Cow::Owned),
                cwd: r.cwd.map(Cow::Owned),
                branch: r.branch.map(Cow::Owned),
                model: Cow::Owned(r.model),
                ts_ms: r.ts_ms,
                sidechain: r.sidechain,
                fast: r.fast,
                us_geo: r.us_geo,
                usage: r.usage,
                advisors: r.advisors,
            }),
            Line::CostState(c) => LineRef::CostState(c),
            Line::NoCost => LineRef::NoCost,
            Line::Malformed(why) => LineRef::Malformed(why),
        }
    }
}

fn from_raw<'a>(raw: &RawLine<'a>, origin: &[u8]) -> LineRef<'a> {
    match raw.kind.as_deref() {
        Some("assistant") => record(raw, None, origin, false),
        None if raw.message.as_ref().is_some_and(|m| m.usage.is_some()) => {
            record(raw, None, origin, false)
        }
        Some("progress") => match raw.data.as_ref().and_then(|d| d.message.as_deref()) {
            // A subagent's response relayed into the parent's file.
            Some(inner) if inner.message.as_ref().is_some_and(|m| m.usage.is_some()) => {
                record(inner, Some(raw), origin, true)
            }
            _ => LineRef::NoCost,
        },
        _ => LineRef::NoCost,
    }
}

/// Builds a response from `rec`, falling back to the `outer` envelope for
/// fields a nested (progress) record leaves out.
fn record<'a>(
    rec: &RawLine<'a>,
    outer: Option<&RawLine<'a>>,
    origin: &[u8],
    nested: bool,
) -> LineRef<'a> {
    let Some(msg) = rec.message.as_ref() else {
        return LineRef::NoCost;
    };
    let Some(u) = msg.usage.as_ref() else {
        return LineRef::NoCost;
    };
    let model: Cow<'a, str> = match &msg.model {
        Some(Cow::Borrowed(m)) => Cow::Borrowed(m.trim()),
        Some(Cow::Owned(m)) => Cow::Owned(m.trim().to_owned()),
        None => Cow::Borrowed(""),
    };
    if model == "<synthetic>" {
        return LineRef::NoCost;
    }
    let pick =
        |f: for<'r> fn(&'r RawLine<'a>) -> &'r Option<Cow<'a, str>>| -> Option<Cow<'a, str>> {
            f(rec)
                .as_ref()
                .filter(|s| !s.is_empty())
                .or_else(|| outer.and_then(|o| f(o).as_ref()).filter(|s| !s.is_empty()))
                .cloned()
        };
    let Some(ts) = pick(|r| &r.timestamp) else {
        return LineRef::Malformed("no timestamp");
    };
    let Ok(ts) = DateTime::parse_from_rfc3339(&ts) else {
        return LineRef::Malformed("unparseable timestamp");
    };
    let usage = match usage_of(
        u.input_tokens,
        u.output_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
        u.cache_creation.as_ref(),
        u.server_tool_use
            .as_ref()
            .and_then(|s| s.web_search_requests),
    ) {
        Some(usage) => usage,
        None => return LineRef::Malformed("implausible token count"),
    };
    let mut advisors = Vec::new();
    for it in u.iterations.iter().flatten() {
        if it.kind.as_deref() != Some("advisor_message") {
            continue;
        }
        let Some(usage) = usage_of(
            it.input_tokens,
            it.output_tokens,
            it.cache_creation_input_tokens,
            it.cache_read_input_tokens,
            it.cache_creation.as_ref(),
            None,
        ) else {
            return LineRef::Malformed("implausible token count");
        };
        advisors.push(Advisor {
            model: it.model.as_deref().unwrap_or("").to_owned(),
            usage,
        });
    }
    let request_id = pick(|r| &r.request_id).unwrap_or_default();
    let message_id = match msg.id.as_ref().filter(|s| !s.is_empty()) {
        Some(id) => id.clone(),
        None => match pick(|r| &r.uuid) {
            Some(uuid) => Cow::Owned(format!("uuid:{uuid}")),
            // Nothing identifies it but its bytes: the same line read
            // through another path, or again after a rewrite, is the same
            // record and must not count twice.
            None => Cow::Owned(format!("line:{:032x}", xxhash_rust::xxh3::xxh3_128(origin))),
        },
    };
    LineRef::Response(ResponseRef {
        message_id,
        request_id,
        session_id: pick(|r| &r.session_id),
        cwd: pick(|r| &r.cwd),
        branch: pick(|r| &r.git_branch),
        model,
        ts_ms: ts.timestamp_millis(),
        sidechain: nested || rec.is_sidechain.unwrap_or(false),
        fast: u.speed.as_deref() == Some("fast"),
        us_geo: u.inference_geo.as_deref() == Some("us"),
        usage,
        advisors,
    })
}

fn usage_of(
    input: Option<u64>,
    output: Option<u64>,
    cache_creation_total: Option<u64>,
    cache_read: Option<u64>,
    split: Option<&RawCacheCreation>,
    web_search: Option<u64>,
) -> Option<Usage> {
    let fields = [input, output, cache_creation_total, cache_read];
    let split5 = split.and_then(|s| s.ephemeral_5m_input_tokens);
    let split1 = split.and_then(|s| s.ephemeral_1h_input_tokens);
    if fields
        .iter()
        .chain([split5, split1].iter())
        .any(|f| f.is_some_and(|v| v > MAX_TOKENS_PER_FIELD))
        || web_search.is_some_and(|w| w > MAX_WEB_SEARCHES)
    {
        return None;
    }
    let (w5, w1) = match (split5, split1) {
        (None, None) => (cache_creation_total.unwrap_or(0), 0),
        (s5, s1) => {
            let s5 = s5.unwrap_or(0);
            let s1 = s1.unwrap_or(0);
            // One version wrote a zero total beside a populated split; another
            // may write a total larger than the split. The larger is the total,
            // and what the split does not explain is a 5-minute write.
            let total = cache_creation_total.unwrap_or(0).max(s5 + s1);
            (total - s1, s1)
        }
    };
    Some(Usage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_write_5m: w5,
        cache_write_1h: w1,
        cache_read: cache_read.unwrap_or(0),
        web_search: web_search.unwrap_or(0),
    })
}

/// True when a line may be a `cost-state` record (a byte search).
fn is_cost_state(line: &[u8]) -> bool {
    static KIND: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"cost-state\""));
    KIND.find(line).is_some()
}

#[derive(Deserialize)]
struct RawCostState<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(rename = "startTime", default)]
    start_time: Option<Value>,
    #[serde(rename = "modelUsage", default)]
    model_usage: Option<std::collections::BTreeMap<String, Option<RawModelUsage>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawModelUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(rename = "cacheCreationEphemeral5mInputTokens", default)]
    cache_creation_5m: Option<u64>,
    #[serde(rename = "cacheCreationEphemeral1hInputTokens", default)]
    cache_creation_1h: Option<u64>,
    #[serde(default)]
    web_search_requests: Option<u64>,
}

/// The most tokens of one kind a `cost-state` may hold per model: the
/// per-response bound times 100,000 responses (it sums a whole session).
const MAX_COST_STATE_TOKENS: u64 = MAX_TOKENS_PER_FIELD * 100_000;

/// Parses a line that mentions `"cost-state"`: a `cost-state` record, or
/// any other record (a user quoting the word) that costs nothing.
fn cost_state(line: &[u8]) -> Line {
    let raw: RawCostState<'_> = match serde_json::from_slice(line) {
        Ok(raw) => raw,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            // Another shape; a cost-state with unusable fields is counted.
            return match serde_json::from_slice::<Value>(line) {
                Ok(v) if v.get("type").and_then(Value::as_str) == Some("cost-state") => {
                    Line::Malformed("wrong type in a cost-state field")
                }
                Ok(v) if v.is_object() => Line::NoCost,
                _ => Line::Malformed("not a JSON object"),
            };
        }
        Err(_) => return Line::Malformed("invalid JSON"),
    };
    if raw.kind.as_deref() != Some("cost-state") {
        return Line::NoCost;
    }
    let Some(session_id) = raw.session_id.filter(|s| !s.is_empty()) else {
        return Line::Malformed("cost-state without sessionId");
    };
    let start_ms = match raw.start_time {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    };
    let Some(start_ms) = start_ms else {
        return Line::Malformed("cost-state without startTime");
    };
    let mut models = Vec::new();
    for (model, u) in raw.model_usage.unwrap_or_default() {
        let u = u.unwrap_or_default();
        let fields = [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
            u.cache_creation_5m,
            u.cache_creation_1h,
        ];
        if fields
            .iter()
            .any(|f| f.is_some_and(|v| v > MAX_COST_STATE_TOKENS))
            || u.web_search_requests
                .is_some_and(|w| w > MAX_WEB_SEARCHES * 100_000)
        {
            return Line::Malformed("implausible token count");
        }
        let model = model.trim();
        if model.is_empty() || model == "<synthetic>" {
            continue;
        }
        // The same rules as a response's usage: the larger of the total and
        // the split is the total; what the split leaves is 5-minute writes.
        let (w5, w1) = match (u.cache_creation_5m, u.cache_creation_1h) {
            (None, None) => (u.cache_creation_input_tokens.unwrap_or(0), 0),
            (s5, s1) => {
                let (s5, s1) = (s5.unwrap_or(0), s1.unwrap_or(0));
                let total = u.cache_creation_input_tokens.unwrap_or(0).max(s5 + s1);
                (total - s1, s1)
            }
        };
        models.push((
            model.to_owned(),
            Usage {
                input: u.input_tokens.unwrap_or(0),
                output: u.output_tokens.unwrap_or(0),
                cache_write_5m: w5,
                cache_write_1h: w1,
                cache_read: u.cache_read_input_tokens.unwrap_or(0),
                web_search: u.web_search_requests.unwrap_or(0),
            },
        ));
    }
    Line::CostState(CostState {
        session_id: session_id.into_owned(),
        start_ms,
        models,
    })
}

/// A syntactically valid line whose shape did not fit: is it a costed
/// record (then its fields are unusable: count it) or something else?
fn classify_unusual(line: &[u8]) -> Line {
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return Line::Malformed("invalid JSON");
    };
    let Some(obj) = v.as_object() else {
        return Line::Malformed("not a JSON object");
    };
    let has_usage = |rec: &Value| {
        rec.get("message")
            .and_then(|m| m.get("usage"))
            .is_some_and(|u| !u.is_null())
    };
    let costed = match obj.get("type").and_then(Value::as_str) {
        Some("assistant") => has_usage(&v),
        None => has_usage(&v),
        Some("progress") => v
            .get("data")
            .and_then(|d| d.get("message"))
            .is_some_and(has_usage),
        Some(_) => false,
    };
    if costed {
        Line::Malformed("wrong type in a usage field")
    } else {
        Line::NoCost
    }
}

/// Where a session ran, as one record says: its `sessionId`, `cwd` and
/// timestamp (ms; `i64::MAX` when the record has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCwd {
    pub session_id: String,
    pub cwd: String,
    pub ts_ms: i64,
}

/// The [`SessionCwd`] of a record that carries no cost, for sessions whose
/// responses lack a `cwd`. Parses the whole line, so callers ask only until
/// they know the answer.
pub fn envelope_cwd(line: &[u8]) -> Option<SessionCwd> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "sessionId", borrow, default)]
        session_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        cwd: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        timestamp: Option<Cow<'a, str>>,
    }
    let e: Envelope<'_> = serde_json::from_slice(line.trim_ascii()).ok()?;
    let ts_ms = e
        .timestamp
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(i64::MAX, |t| t.timestamp_millis());
    match (e.session_id, e.cwd) {
        (Some(s), Some(c)) if !s.is_empty() && !c.is_empty() => Some(SessionCwd {
            session_id: s.into_owned(),
            cwd: c.into_owned(),
            ts_ms,
        }),
        _ => None,
    }
}

/// The session, `gitBranch` and timestamp of a record that carries no
/// cost (a prompt names the branch before any response does), if the line
/// mentions a branch at all (a byte search first; the line is parsed only
/// then). The branch is None when it is empty (not a git repository).
pub fn envelope_branch(line: &[u8]) -> Option<(String, Option<String>, i64)> {
    static BRANCH: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"gitBranch\""));
    BRANCH.find(line)?;
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "sessionId", borrow, default)]
        session_id: Option<Cow<'a, str>>,
        #[serde(rename = "gitBranch", borrow, default)]
        git_branch: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        timestamp: Option<Cow<'a, str>>,
    }
    let e: Envelope<'_> = serde_json::from_slice(line.trim_ascii()).ok()?;
    let ts_ms = e
        .timestamp
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.timestamp_millis())?;
    let session = e.session_id.filter(|s| !s.is_empty())?;
    Some((
        session.into_owned(),
        e.git_branch.filter(|b| !b.is_empty()).map(Cow::into_owned),
        ts_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(line: &str) -> Response {
        match parse_line(line.as_bytes()) {
            Line::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// A record whose type, named early among plain fields, carries no
    /// cost is not read past its type: only its shape is checked. What
    /// serde_json makes of the whole line agrees on every valid one: no
    /// response, no cost-state.
    #[test]
    fn a_record_of_a_type_without_cost_is_not_read_past_its_type() {
        let cases: &[(&str, Line)] = &[
            (
                r#"{"cwd":"/x","type":"user","message":{"role":"user","content":"the usage of it"}}"#,
                Line::NoCost,
            ),
            (
                r#"{"type":"user","message":{"id":"m","model":"x","usage":{"input_tokens":5}},"timestamp":"2026-11-02T10:00:00Z"}"#,
                Line::NoCost,
            ),
            (
                r#"{"type":"system","content":"\"cost-state\"","sessionId":"s"}"#,
                Line::NoCost,
            ),
            (
                r#"{"type":"user","message":"usage"#,
                Line::Malformed("not a JSON object"),
            ),
            // Not JSON past its type: the shape alone is checked.
            (r#"{"type":"user","message":{"usage":}}"#, Line::NoCost),
            (r#"{"type":"user","message":{"usage":5}"#, Line::NoCost),
            // Two types: the first decides.
            (
                r#"{"type":"user","type":"assistant","message":{"id":"m","model":"x","usage":{"input_tokens":5}},"timestamp":"2026-11-02T10:00:00Z"}"#,
                Line::NoCost,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_line(line.as_bytes()), want, "{line}");
            if let Ok(raw) = serde_json::from_slice::<RawLine<'_>>(line.as_bytes()) {
                assert_eq!(
                    Line::from(from_raw(&raw, line.as_bytes())),
                    Line::NoCost,
                    "{line}"
                );
            }
        }
        // The types that carry cost are read as before.
        assert!(matches!(
            parse_line(
                br#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"input_tokens":5}}}"#
            ),
            Line::Response(_)
        ));
        assert!(matches!(
            parse_line(
                br#"{"type":"cost-state","sessionId":"s","startTime":1796022850297,"modelUsage":{"x":{"inputTokens":1}}}"#
            ),
            Line::CostState(_)
        ));
    }

    #[test]
    fn assistant_line_with_cache_split() {
        let r = resp(
            r#"{"type":"assistant","sessionId":"s1","cwd":"/x/acme","requestId":"req_1","timestamp":"2026-11-02T10:00:00.000Z","message":{"id":"msg_1","model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":3,"cache_creation_input_tokens":2849,"cache_read_input_tokens":9493,"output_tokens":527,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2849},"server_tool_use":{"web_search_requests":2},"speed":"fast","inference_geo":"us"}}}"#,
        );
        assert_eq!(r.message_id, "msg_1");
        assert_eq!(r.request_id, "req_1");
        assert_eq!(r.usage.cache_write_5m, 0);
        assert_eq!(r.usage.cache_write_1h, 2849);
        assert_eq!(r.usage.web_search, 2);
        assert!(r.fast && r.us_geo && !r.sidechain);
        assert_eq!(r.ts_ms, 1_793_613_600_000);
    }

    #[test]
    fn git_branch_is_kept_and_empty_is_none() {
        let r = resp(
            r#"{"type":"assistant","gitBranch":"fix/typo","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#,
        );
        assert_eq!(r.branch.as_deref(), Some("fix/typo"));
        let r = resp(
            r#"{"type":"assistant","gitBranch":"","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#,
        );
        assert_eq!(r.branch, None);
        // A progress line's nested record takes the envelope's branch.
        let r = resp(
            r#"{"type":"progress","gitBranch":"feat/x","timestamp":"2026-11-02T10:00:00Z","data":{"message":{"message":{"id":"m","model":"x","usage":{"input_tokens":1}}}}}"#,
        );
        assert_eq!(r.branch.as_deref(), Some("feat/x"));
    }

    #[test]
    fn zero_total_beside_split_uses_the_split() {
        let r = resp(
            r#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"cache_creation_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":5}}}}"#,
        );
        assert_eq!((r.usage.cache_write_5m, r.usage.cache_write_1h), (10, 5));
    }

    #[test]
    fn no_split_counts_all_writes_as_five_minute() {
        let r = resp(
            r#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"cache_creation_input_tokens":40}}}"#,
        );
        assert_eq!((r.usage.cache_write_5m, r.usage.cache_write_1h), (40, 0));
    }

    #[test]
    fn nulls_count_as_absent_and_keep_the_line() {
        let r = resp(
            r#"{"type":"assistant","requestId":null,"cwd":null,"timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"input_tokens":null,"output_tokens":5,"cache_creation":null,"server_tool_use":null,"speed":null}}}"#,
        );
        assert_eq!(r.usage.output, 5);
        assert_eq!(r.request_id, "");
        assert_eq!(r.cwd, None);
    }

    #[test]
    fn untyped_old_line_with_usage_is_costed() {
        let r = resp(
            r#"{"timestamp":"2025-01-02T10:00:00Z","uuid":"u9","message":{"model":"claude-3-5-sonnet-20241022","usage":{"input_tokens":1}}}"#,
        );
        assert_eq!(r.message_id, "uuid:u9");
    }

    #[test]
    fn missing_id_and_uuid_falls_back_to_the_line_itself() {
        let line = r#"{"type":"assistant","timestamp":"2025-01-02T10:00:00Z","message":{"model":"m","usage":{"input_tokens":1}}}"#;
        let r = resp(line);
        assert!(r.message_id.starts_with("line:"), "{}", r.message_id);
        // The same bytes (another path, a re-read) are the same record;
        // surrounding whitespace does not matter, other bytes do.
        assert_eq!(resp(&format!("  {line}\r")).message_id, r.message_id);
        let other = line.replace("\"input_tokens\":1", "\"input_tokens\":2");
        assert_ne!(resp(&other).message_id, r.message_id);
    }

    #[test]
    fn progress_line_nests_a_subagent_response() {
        let r = resp(
            r#"{"type":"progress","sessionId":"parent","cwd":"/x/acme","timestamp":"2026-11-02T10:00:05Z","data":{"type":"agent_progress","message":{"type":"assistant","requestId":"req_s","timestamp":"2026-11-02T10:00:04Z","message":{"id":"msg_s","model":"claude-haiku-4-5","usage":{"input_tokens":10,"output_tokens":2}}}}}"#,
        );
        assert_eq!(r.message_id, "msg_s");
        assert_eq!(r.request_id, "req_s");
        assert_eq!(r.session_id.as_deref(), Some("parent"));
        assert_eq!(r.cwd.as_deref(), Some("/x/acme"));
        assert!(r.sidechain);
        assert_eq!(r.ts_ms, 1_793_613_604_000);
    }

    #[test]
    fn advisor_iterations_are_extra_usage_at_their_model() {
        let r = resp(
            r#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"claude-sonnet-4-6","usage":{"input_tokens":100,"output_tokens":10,"iterations":[{"type":"message","input_tokens":100,"output_tokens":10},{"type":"advisor_message","model":"claude-opus-4-6","input_tokens":500,"output_tokens":50}]}}}"#,
        );
        assert_eq!(r.usage.input, 100);
        assert_eq!(r.advisors.len(), 1);
        assert_eq!(r.advisors[0].model, "claude-opus-4-6");
        assert_eq!(r.advisors[0].usage.input, 500);
    }

    #[test]
    fn synthetic_and_non_costed_records_cost_nothing() {
        let syn = r#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","isApiErrorMessage":true,"message":{"id":"m","model":"<synthetic>","usage":{"input_tokens":0}}}"#;
        assert_eq!(parse_line(syn.as_bytes()), Line::NoCost);
        let user = r#"{"type":"user","message":{"role":"user","content":"what is \"usage\"?"}}"#;
        assert_eq!(parse_line(user.as_bytes()), Line::NoCost);
        let odd = r#"{"type":"progress","data":{"message":"still working on \"usage\""}}"#;
        assert_eq!(parse_line(odd.as_bytes()), Line::NoCost);
        assert_eq!(parse_line(br#"{"type":"summary"}"#), Line::NoCost);
    }

    #[test]
    fn broken_lines_are_malformed() {
        for bad in [
            &b"[1,2,3]"[..],
            b"{\"type\":\"assistant\",\"message\":{\"usage\":",
            b"\xff\xfe garbage",
            b"{\"a\":\"\xff\"}",
        ] {
            assert!(matches!(parse_line(bad), Line::Malformed(_)), "{bad:?}");
        }
    }

    #[test]
    fn wrong_types_in_usage_are_malformed() {
        for field in [
            "\"12\"",
            "-5",
            "1.5",
            "1e300",
            "123456789012345678901234567890",
            "2000000000000",
        ] {
            let line = format!(
                r#"{{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{{"id":"m","model":"x","usage":{{"input_tokens":{field}}}}}}}"#
            );
            assert!(
                matches!(parse_line(line.as_bytes()), Line::Malformed(_)),
                "{field}"
            );
        }
    }

    #[test]
    fn usage_beyond_what_the_api_returns_is_malformed() {
        let line = |usage: &str| {
            format!(
                r#"{{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{{"id":"m","model":"x","usage":{usage}}}}}"#
            )
        };
        let ok = |usage: &str| matches!(parse_line(line(usage).as_bytes()), Line::Response(_));
        let bad = |usage: &str| {
            parse_line(line(usage).as_bytes()) == Line::Malformed("implausible token count")
        };
        for field in [
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ] {
            assert!(ok(&format!(r#"{{"{field}":10000000}}"#)), "{field}");
            assert!(bad(&format!(r#"{{"{field}":10000001}}"#)), "{field}");
        }
        for split in ["ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"] {
            assert!(ok(&format!(
                r#"{{"cache_creation":{{"{split}":10000000}}}}"#
            )));
            assert!(bad(&format!(
                r#"{{"cache_creation":{{"{split}":10000001}}}}"#
            )));
        }
        assert!(ok(r#"{"server_tool_use":{"web_search_requests":1000}}"#));
        assert!(bad(r#"{"server_tool_use":{"web_search_requests":1001}}"#));
        // An advisor iteration is bounded the same way.
        assert!(bad(
            r#"{"input_tokens":1,"iterations":[{"type":"advisor_message","model":"y","output_tokens":10000001}]}"#
        ));
    }

    #[test]
    fn missing_or_bad_timestamp_is_malformed() {
        let no_ts =
            r#"{"type":"assistant","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#;
        assert_eq!(
            parse_line(no_ts.as_bytes()),
            Line::Malformed("no timestamp")
        );
        let bad_ts = r#"{"type":"assistant","timestamp":"yesterday","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#;
        assert_eq!(
            parse_line(bad_ts.as_bytes()),
            Line::Malformed("unparseable timestamp")
        );
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let costed = format!(
            r#"{{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{{"id":"m","model":"x","usage":{{"input_tokens":{deep}}}}}}}"#
        );
        assert!(matches!(parse_line(costed.as_bytes()), Line::Malformed(_)));
        // Deep nesting elsewhere in a valid record that carries no cost.
        let other = format!(r#"{{"type":"user","usage":{deep}}}"#);
        assert_eq!(parse_line(other.as_bytes()), Line::NoCost);
    }

    /// A real `cost-state` line of Claude Code 2.1.328 (from the e2e
    /// suite's fork observation): every field the totals need.
    #[test]
    fn cost_state_of_claude_code_2_1_328() {
        let line = br#"{"type":"cost-state","sessionId":"794dd8a8","totalCostUSD":0.22098099999999998,"totalAPIDuration":221,"totalDuration":928,"startTime":1796022850297,"modelUsage":{"claude-sonnet-4-6":{"inputTokens":2878,"outputTokens":3499,"thinkingTokens":0,"cacheReadInputTokens":258730,"cacheCreationInputTokens":16635,"cacheCreationEphemeral5mInputTokens":12252,"cacheCreationEphemeral1hInputTokens":4383,"webSearchRequests":1,"costUSD":0.22098099999999998}},"hasUnknownModelCost":false}"#;
        let Line::CostState(c) = parse_line(line) else {
            panic!("not a cost-state: {:?}", parse_line(line));
        };
        assert_eq!(c.session_id, "794dd8a8");
        assert_eq!(c.start_ms, 1_796_022_850_297);
        assert_eq!(
            c.models,
            vec![(
                "claude-sonnet-4-6".to_string(),
                Usage {
                    input: 2878,
                    output: 3499,
                    cache_write_5m: 12252,
                    cache_write_1h: 4383,
                    cache_read: 258730,
                    web_search: 1,
                }
            )]
        );
    }

    #[test]
    fn odd_cost_states() {
        // No split: every write is a 5-minute write; nulls are absent.
        let Line::CostState(c) = parse_line(
            br#"{"type":"cost-state","sessionId":"s","startTime":5,"modelUsage":{"claude-haiku-4-5":{"inputTokens":7,"outputTokens":null,"cacheCreationInputTokens":40},"<synthetic>":{"inputTokens":1},"x":null}}"#,
        ) else {
            panic!()
        };
        assert_eq!(c.models.len(), 2);
        assert_eq!(c.models[0].0, "claude-haiku-4-5");
        assert_eq!((c.models[0].1.input, c.models[0].1.cache_write_5m), (7, 40));
        assert_eq!(c.models[1].1, Usage::default());
        // Without a session or a start the totals cannot be placed.
        for bad in [
            &br#"{"type":"cost-state","startTime":5,"modelUsage":{}}"#[..],
            br#"{"type":"cost-state","sessionId":"s","modelUsage":{}}"#,
            br#"{"type":"cost-state","sessionId":"s","startTime":5,"modelUsage":{"m":{"inputTokens":"9"}}}"#,
            br#"{"type":"cost-state","sessionId":"s","startTime":5,"modelUsage":{"m":{"inputTokens":1000000000000000}}}"#,
        ] {
            assert!(matches!(parse_line(bad), Line::Malformed(_)), "{bad:?}");
        }
        // Another record that holds the word is not a cost-state.
        let user = br#"{"type":"user","message":{"content":{"cost-state":1}}}"#;
        assert_eq!(parse_line(user), Line::NoCost);
        let quoted = br#"{"type":"user","message":{"content":"what is \"cost-state\"?"}}"#;
        assert_eq!(parse_line(quoted), Line::NoCost);
    }

    #[test]
    fn envelope_cwd_reads_session_and_cwd() {
        let l = br#"{"type":"user","sessionId":"s","cwd":"/x","timestamp":"1970-01-01T00:00:01Z","message":{"content":"hi"}}"#;
        let want = SessionCwd {
            session_id: "s".into(),
            cwd: "/x".into(),
            ts_ms: 1000,
        };
        assert_eq!(envelope_cwd(l), Some(want));
    }
}
