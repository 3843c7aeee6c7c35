//! The fast path of [`super::parse::parse_line`] for lines that may carry
//! usage: one pass over the bytes that fills the same [`RawLine`] serde_json
//! would, borrowing every string, or gives up.
//!
//! It accepts only what serde_json accepts into these types, and reads it
//! the same way: whenever a line leaves the plain shape Claude Code writes
//! (an escape in a string we keep, a key spelled with an escape or not
//! UTF-8, a known field repeated or of another type, a number that is not
//! a plain integer, nesting deeper than a record ever has, ...) it returns
//! `None` and the caller parses the line with serde_json, which decides.
//! So a line is a response, skipped or counted exactly as serde_json alone
//! would have it; the tests below hold both parsers to that.
//!
//! Values of fields we do not read are checked as serde_json's
//! `IgnoredAny` checks them: JSON syntax, no control characters in
//! strings, valid escapes; their strings are not checked for UTF-8 (nor
//! are they by serde_json).

use std::borrow::Cow;

use super::parse::{
    RawCacheCreation, RawData, RawIteration, RawLine, RawMessage, RawServerToolUse, RawUsage,
};

/// Records nested in records (a progress line relays one): deeper is left
/// to serde_json.
const MAX_RECORD_DEPTH: u32 = 4;
/// Nesting of ignored values handled here; deeper is left to serde_json.
const MAX_SKIP_DEPTH: u32 = 64;

/// The record a trimmed line holds, as serde_json would deserialize it, or
/// None when the line is left to serde_json.
pub(super) fn raw_line(line: &[u8]) -> Option<RawLine<'_>> {
    let mut s = Scan { b: line, i: 0 };
    let mut raw = RawLine::default();
    s.line(0, &mut raw)?;
    match s.ws() {
        None => Some(raw),
        Some(_) => None,
    }
}

/// How far into a line [`leading_type`] looks for its `"type"`.
const LEADING_TYPE_WITHIN: usize = 1024;

/// A line's top-level `"type"`, when the line names it first among its
/// plain fields (Claude Code writes a user record's `type` after a few
/// scalar fields, and an assistant record's after its `message`): the
/// string, borrowed. Only a prefix that cannot hide structure counts: the
/// line's `{`, then up to `"type":"` (in the first KiB) no other `{`, no
/// `[`, no backslash and no control character, and an even number of
/// quotes (so the match is outside any string and at the top level); the
/// type itself without an escape or a control character. Anything else
/// gives None, and the caller reads the line as it otherwise would. A few
/// passes over a few hundred bytes: cheaper than the search for `"usage"`
/// it saves on a long line.
pub(super) fn leading_type(line: &[u8]) -> Option<&str> {
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"type\":\""));
    let head = &line[..line.len().min(LEADING_TYPE_WITHIN)];
    let open = head
        .iter()
        .position(|c| !matches!(c, b' ' | b'\n' | b'\t' | b'\r'))?;
    if head[open] != b'{' {
        return None;
    }
    let body = &head[open + 1..];
    // Only before the first nested value or escape (the key holds
    // neither, so it cannot straddle that point): an assistant record,
    // whose `message` comes first, is given up after a few hundred bytes.
    let plain = memchr::memchr3(b'{', b'[', b'\\', body).unwrap_or(body.len());
    let at = KEY.find(&body[..plain])?;
    let rest = &body[..at];
    // A control character (a tab included) is invalid in a JSON string:
    // such a line is read as it otherwise would be.
    let control = |s: &[u8]| s.iter().fold(false, |any, &c| any | (c < 0x20));
    if !memchr::memchr_iter(b'"', rest).count().is_multiple_of(2) || control(rest) {
        return None;
    }
    let value = &line[open + 1 + at + 8..];
    let end = memchr::memchr2(b'"', b'\\', value)?;
    if value[end] != b'"' || control(&value[..end]) {
        return None;
    }
    std::str::from_utf8(&value[..end]).ok()
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

/// Marks field `bit` seen; None (give up) when it was seen already (serde
/// refuses a repeated field).
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    if *seen & (1 << bit) != 0 {
        return None;
    }
    *seen |= 1 << bit;
    Some(())
}

impl<'a> Scan<'a> {
    /// Skips JSON whitespace; the next byte, if any.
    #[inline]
    fn ws(&mut self) -> Option<u8> {
        // Claude Code writes no whitespace between tokens: one test for
        // the usual case (every JSON whitespace byte is below b'!').
        let c = *self.b.get(self.i)?;
        if c > b' ' {
            return Some(c);
        }
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// An object: calls `field` with each key, the scanner just past its
    /// colon; `field` reads or skips the value.
    #[inline]
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        if self.ws()? != b'{' {
            return None;
        }
        self.i += 1;
        if self.ws()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.ws()? != b'"' {
                return None;
            }
            self.i += 1;
            let key = self.key()?;
            if self.ws()? != b':' {
                return None;
            }
            self.i += 1;
            field(self, key)?;
            match self.ws()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The rest of a key after its opening quote, when it is plain ASCII
    /// (no escape, no control character): compared as bytes.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        // One pass finds the closing quote and any byte that is not ASCII.
        let end = start + special_or_high(&self.b[start..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    /// The rest of a string after its opening quote, when it has no
    /// escape and no control character and is UTF-8 (serde_json borrows
    /// such a string as is).
    #[inline]
    fn plain_str(&mut self) -> Option<&'a str> {
        let start = self.i;
        // Most strings are ASCII: one pass finds their end.
        let ascii_end = start + special_or_high(&self.b[start..])?;
        if self.b[ascii_end] == b'"' {
            self.i = ascii_end + 1;
            // SAFETY: every byte before the quote is ASCII, which is UTF-8.
            return Some(unsafe { std::str::from_utf8_unchecked(&self.b[start..ascii_end]) });
        }
        let end = ascii_end + special(&self.b[ascii_end..])?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        simdutf8::basic::from_utf8(&self.b[start..end]).ok()
    }

    /// The rest of an ignored string after its opening quote, checked as
    /// serde_json's `ignore_str` checks it.
    #[inline]
    fn skip_str(&mut self) -> Option<()> {
        loop {
            self.i += special(&self.b[self.i..])?;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    self.i += 1;
                    match *self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// A value of a field we do not read.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.ws()? {
            b'"' => {
                self.i += 1;
                self.skip_str()
            }
            b'{' => {
                if depth >= MAX_SKIP_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.ws()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if self.ws()? != b'"' {
                        return None;
                    }
                    self.i += 1;
                    self.skip_str()?;
                    if self.ws()? != b':' {
                        return None;
                    }
                    self.i += 1;
                    self.skip(depth + 1)?;
                    match self.ws()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth >= MAX_SKIP_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.ws()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.ws()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' => {
                self.i += 1;
                self.skip_number()
            }
            b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// A number's digits after its sign, as serde_json's `ignore_integer`
    /// (and decimal, exponent) accept them.
    fn skip_number(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Skips ASCII digits; how many.
    #[inline]
    fn digits(&mut self) -> usize {
        let n = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.i += n;
        n
    }

    /// `Option<Cow<str>>`: null or a plain string.
    #[inline]
    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.ws()? {
            b'"' => {
                self.i += 1;
                Some(Some(Cow::Borrowed(self.plain_str()?)))
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// `Option<u64>`: null or a plain non-negative integer of at most 19
    /// digits (which fits: serde_json reads it the same).
    #[inline]
    fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.ws()? {
            b'0'..=b'9' => {
                let start = self.i;
                let n = self.digits();
                let digits = &self.b[start..self.i];
                if n > 19 || (n > 1 && digits[0] == b'0') {
                    return None;
                }
                if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
                    return None;
                }
                let v = digits
                    .iter()
                    .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
                Some(Some(v))
            }
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    #[inline]
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.ws()? {
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    /// `Option<T>` of a struct: null, or an object `read` fills in place
    /// (no moves of the large record structs).
    #[inline]
    fn opt_obj<T: Default>(
        &mut self,
        slot: &mut Option<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        match self.ws()? {
            b'{' => read(self, slot.insert(T::default())),
            b'n' => {
                *slot = None;
                self.literal(b"null")
            }
            _ => None,
        }
    }

    fn line(&mut self, depth: u32, r: &mut RawLine<'a>) -> Option<()> {
        if depth > MAX_RECORD_DEPTH {
            return None;
        }
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"type" => {
                    once(&mut seen, 0)?;
                    r.kind = s.opt_str()?;
                }
                b"message" => {
                    once(&mut seen, 1)?;
                    s.opt_obj(&mut r.message, Scan::message)?;
                }
                b"requestId" => {
                    once(&mut seen, 2)?;
                    r.request_id = s.opt_str()?;
                }
                b"sessionId" => {
                    once(&mut seen, 3)?;
                    r.session_id = s.opt_str()?;
                }
                b"cwd" => {
                    once(&mut seen, 4)?;
                    r.cwd = s.opt_str()?;
                }
                b"gitBranch" => {
                    once(&mut seen, 5)?;
                    r.git_branch = s.opt_str()?;
                }
                b"timestamp" => {
                    once(&mut seen, 6)?;
                    r.timestamp = s.opt_str()?;
                }
                b"uuid" => {
                    once(&mut seen, 7)?;
                    r.uuid = s.opt_str()?;
                }
                b"isSidechain" => {
                    once(&mut seen, 8)?;
                    r.is_sidechain = s.opt_bool()?;
                }
                b"data" => {
                    once(&mut seen, 9)?;
                    s.opt_obj(&mut r.data, |s, d| s.data(depth, d))?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    fn data(&mut self, depth: u32, d: &mut RawData<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"message" => {
                    once(&mut seen, 0)?;
                    s.opt_obj(&mut d.message, |s, r| s.line(depth + 1, r))?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    fn message(&mut self, m: &mut RawMessage<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"id" => {
                    once(&mut seen, 0)?;
                    m.id = s.opt_str()?;
                }
                b"model" => {
                    once(&mut seen, 1)?;
                    m.model = s.opt_str()?;
                }
                b"usage" => {
                    once(&mut seen, 2)?;
                    s.opt_obj(&mut m.usage, Scan::usage)?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    fn usage(&mut self, u: &mut RawUsage<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"input_tokens" => {
                    once(&mut seen, 0)?;
                    u.input_tokens = s.opt_u64()?;
                }
                b"output_tokens" => {
                    once(&mut seen, 1)?;
                    u.output_tokens = s.opt_u64()?;
                }
                b"cache_creation_input_tokens" => {
                    once(&mut seen, 2)?;
                    u.cache_creation_input_tokens = s.opt_u64()?;
                }
                b"cache_read_input_tokens" => {
                    once(&mut seen, 3)?;
                    u.cache_read_input_tokens = s.opt_u64()?;
                }
                b"cache_creation" => {
                    once(&mut seen, 4)?;
                    s.opt_obj(&mut u.cache_creation, Scan::cache_creation)?;
                }
                b"server_tool_use" => {
                    once(&mut seen, 5)?;
                    s.opt_obj(&mut u.server_tool_use, Scan::server_tool_use)?;
                }
                b"speed" => {
                    once(&mut seen, 6)?;
                    u.speed = s.opt_str()?;
                }
                b"inference_geo" => {
                    once(&mut seen, 7)?;
                    u.inference_geo = s.opt_str()?;
                }
                b"iterations" => {
                    once(&mut seen, 8)?;
                    s.iterations(&mut u.iterations)?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    fn cache_creation(&mut self, c: &mut RawCacheCreation) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"ephemeral_5m_input_tokens" => {
                    once(&mut seen, 0)?;
                    c.ephemeral_5m_input_tokens = s.opt_u64()?;
                }
                b"ephemeral_1h_input_tokens" => {
                    once(&mut seen, 1)?;
                    c.ephemeral_1h_input_tokens = s.opt_u64()?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    fn server_tool_use(&mut self, t: &mut RawServerToolUse) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"web_search_requests" => {
                    once(&mut seen, 0)?;
                    t.web_search_requests = s.opt_u64()?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }

    /// `Option<Vec<RawIteration>>`: null, or an array of objects.
    fn iterations(&mut self, slot: &mut Option<Vec<RawIteration<'a>>>) -> Option<()> {
        match self.ws()? {
            b'n' => {
                *slot = None;
                return self.literal(b"null");
            }
            b'[' => self.i += 1,
            _ => return None,
        }
        let out = slot.insert(Vec::new());
        if self.ws()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.ws()? != b'{' {
                return None;
            }
            out.push(RawIteration::default());
            self.iteration(out.last_mut()?)?;
            match self.ws()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn iteration(&mut self, it: &mut RawIteration<'a>) -> Option<()> {
        let mut seen = 0u32;
        self.object(|s, key| {
            match key {
                b"type" => {
                    once(&mut seen, 0)?;
                    it.kind = s.opt_str()?;
                }
                b"model" => {
                    once(&mut seen, 1)?;
                    it.model = s.opt_str()?;
                }
                b"input_tokens" => {
                    once(&mut seen, 2)?;
                    it.input_tokens = s.opt_u64()?;
                }
                b"output_tokens" => {
                    once(&mut seen, 3)?;
                    it.output_tokens = s.opt_u64()?;
                }
                b"cache_creation_input_tokens" => {
                    once(&mut seen, 4)?;
                    it.cache_creation_input_tokens = s.opt_u64()?;
                }
                b"cache_read_input_tokens" => {
                    once(&mut seen, 5)?;
                    it.cache_read_input_tokens = s.opt_u64()?;
                }
                b"cache_creation" => {
                    once(&mut seen, 6)?;
                    s.opt_obj(&mut it.cache_creation, Scan::cache_creation)?;
                }
                _ => s.skip(0)?,
            }
            Some(())
        })
    }
}

/// The index of the first `"`, `\` or control character (below 0x20) in
/// `b`, if any: where a JSON string ends or needs a closer look.
#[inline]
fn special(b: &[u8]) -> Option<usize> {
    find_special::<false>(b)
}

/// [`special`], stopping at a byte that is not ASCII (0x80 and above) too.
#[inline]
fn special_or_high(b: &[u8]) -> Option<usize> {
    find_special::<true>(b)
}

/// Whether `c` is `"`, `\`, a control character, or (with `HIGH`) not
/// ASCII.
#[inline]
fn is_special<const HIGH: bool>(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20 || (HIGH && c >= 0x80)
}

/// The index of the first byte of `b` that [`is_special`].
#[inline]
fn find_special<const HIGH: bool>(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        special_sse2::<HIGH>(b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        b.iter().position(|&c| is_special::<HIGH>(c))
    }
}

/// [`find_special`], 16 bytes at a time (SSE2 is part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[inline]
fn special_sse2<const HIGH: bool>(b: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // Bit k set when byte k of the 16 at `at` is special.
    // SAFETY (of each call below): SSE2 is always available on x86_64, and
    // every load reads 16 bytes inside `b` (at + 16 <= b.len()).
    let mask = |at: usize| unsafe {
        let x = _mm_loadu_si128(b.as_ptr().add(at).cast::<__m128i>());
        // x <= 0x1f (unsigned) exactly when min(x, 0x1f) == x.
        let ctrl = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
        let hit = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8)),
            ),
            ctrl,
        );
        // A byte's top bit set: not ASCII.
        let high = if HIGH { _mm_movemask_epi8(x) as u32 } else { 0 };
        _mm_movemask_epi8(hit) as u32 | high
    };
    let mut i = 0;
    while i + 16 <= b.len() {
        let m = mask(i);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    if i < b.len() && b.len() >= 16 {
        // The last bytes (fewer than 16 left, as at a line's end): the
        // last 16 of `b` at once, those already scanned shifted out.
        let last = b.len() - 16;
        let m = mask(last) >> (i - last);
        return (m != 0).then(|| i + m.trailing_zeros() as usize);
    }
    b[i..]
        .iter()
        .position(|&c| is_special::<HIGH>(c))
        .map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD search finds what a byte-by-byte one finds, from every
    /// start, at every length (the loop, the overlapping last load and
    /// the short tail), with and without stopping at non-ASCII bytes.
    #[test]
    fn special_finds_what_a_plain_search_finds() {
        let bytes: Vec<u8> = (0..80u32)
            .map(|i| match (i * 37 + 11) % 23 {
                0 => b'"',
                1 => b'\\',
                2 => 0x1f,
                3 => 0xc3,
                4 => 0x7f,
                n => b'a' + n as u8,
            })
            .collect();
        for len in 0..=bytes.len() {
            for start in 0..=len {
                let b = &bytes[start..len];
                let plain = |high: bool| {
                    b.iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20 || (high && c >= 0x80))
                };
                assert_eq!(special(b), plain(false), "{start}..{len}");
                assert_eq!(special_or_high(b), plain(true), "{start}..{len}");
            }
        }
        // Nothing special at all, at lengths around the SIMD width.
        for len in [15, 16, 17, 31, 32, 33] {
            assert_eq!(special(&vec![b'x'; len]), None);
        }
    }

    /// What serde_json makes of the line (None when it fails).
    fn serde(line: &[u8]) -> Option<RawLine<'_>> {
        serde_json::from_slice(line).ok()
    }

    /// The fast path never accepts a line serde_json refuses, and reads
    /// what it accepts exactly as serde_json does.
    fn agrees(line: &[u8]) -> bool {
        match raw_line(line) {
            Some(fast) => {
                let slow = serde(line);
                assert_eq!(
                    Some(&fast),
                    slow.as_ref(),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn leading_type_reads_a_plain_prefix_only() {
        let cases: &[(&str, Option<&str>)] = &[
            // Claude Code's user record: scalars, then the type.
            (
                r#"{"parentUuid":"d2","isSidechain":false,"userType":"external","cwd":"/x","sessionId":"s","version":"2.1.84","gitBranch":"main","agentId":null,"n":-1.5e3,"type":"user","message":{"role":"user"}}"#,
                Some("user"),
            ),
            (r#" {"type":"system", "x": 1}"#, Some("system")),
            (
                r#"{"type":"cost-state","sessionId":"s"}"#,
                Some("cost-state"),
            ),
            // Its assistant record names the type after its message.
            (
                r#"{"parentUuid":"d2","message":{"type":"message","usage":{}},"type":"assistant"}"#,
                None,
            ),
            (r#"{"a":[1],"type":"user"}"#, None),
            // Inside a string, not a field.
            (r#"{"a":"x\"type\":\"user","type":"assistant"}"#, None),
            (
                r#"{"a":"x","b":"\"type\":\"user\"","type":"assistant"}"#,
                None,
            ),
            (r#"{"a":"{","type":"user"}"#, None),
            (r#"{"a":"b "type":"user"}"#, None),
            (r#"{"type":"us\u0065r"}"#, None),
            (r#"{"ty\u0070e":"user"}"#, None),
            (r#"{"type" : "user"}"#, None),
            (r#"{"type":7}"#, None),
            ("{\"type\":\"us\u{0}er\"}", None),
            ("{\"a\":\"\tb\",\"type\":\"user\"}", None),
            (r#"["type":"user"]"#, None),
            (r#"x{"type":"user"}"#, None),
            (r#"{}"#, None),
        ];
        for (line, want) in cases {
            assert_eq!(leading_type(line.as_bytes()), *want, "{line}");
        }
        // Past the first KiB: not looked for.
        let far = format!(r#"{{"a":"{}","type":"user"}}"#, "x".repeat(1100));
        assert_eq!(leading_type(far.as_bytes()), None);
    }

    const LINES: &[&str] = &[
        r#"{"parentUuid":"d2d8","isSidechain":false,"userType":"external","cwd":"/home/dev/acme","sessionId":"39f7","version":"2.1.112","gitBranch":"main","message":{"model":"claude-sonnet-4-6","id":"msg_01","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"Input \"render\"\n\tmigrate \u00e9 \\ done","signature":"jnm7/+="},{"type":"tool_use","id":"toolu_01","name":"Write","input":{"file_path":"/x/y.rs","n":-1.5e-3,"ok":true,"none":null,"list":[1,0,[],{}]}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"cache_creation_input_tokens":2004,"cache_read_input_tokens":27939,"cache_creation":{"ephemeral_5m_input_tokens":2004,"ephemeral_1h_input_tokens":0},"output_tokens":257,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","speed":"standard","inference_geo":"not_available"}},"requestId":"req_01","type":"assistant","uuid":"168a","timestamp":"2026-10-25T08:41:48.233Z"}"#,
        r#"{"type":"progress","sessionId":"parent","cwd":"/x/acme","timestamp":"2026-11-02T10:00:05Z","data":{"type":"agent_progress","message":{"type":"assistant","requestId":"req_s","timestamp":"2026-11-02T10:00:04Z","message":{"id":"msg_s","model":"claude-haiku-4-5","usage":{"input_tokens":10,"output_tokens":2}}}}}"#,
        r#"{"type":"assistant","timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"claude-sonnet-4-6","usage":{"input_tokens":100,"output_tokens":10,"iterations":[{"type":"message","input_tokens":100,"output_tokens":10},{"type":"advisor_message","model":"claude-opus-4-6","input_tokens":500,"output_tokens":50,"cache_creation":{"ephemeral_1h_input_tokens":7}}]}}}"#,
        r#"{"type":"assistant","requestId":null,"cwd":null,"timestamp":"2026-11-02T10:00:00Z","message":{"id":"m","model":"x","usage":{"input_tokens":null,"output_tokens":5,"cache_creation":null,"server_tool_use":null,"speed":null,"iterations":null}}}"#,
        r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t","type":"tool_result","content":"ok"}]},"toolUseResult":{"usage":{"input_tokens":5},"totalTokens":9}}"#,
        r#"{ "type" : "assistant" , "timestamp":"2026-11-02T10:00:00Z" , "message" : { "id" : "mé" , "usage" : { } } , "x" : [ ] }"#,
        r#"{"timestamp":"2025-01-02T10:00:00Z","uuid":"u9","message":{"model":"claude-3-5-sonnet-20241022","usage":{"input_tokens":9999999999999999999}}}"#,
        r#"{"type":"assistant","cwd":"/home/dév/ü","message":{"id":"m","model":"x","usage":{"input_tokens":0}},"timestamp":"2026-11-02T10:00:00Z","isSidechain":true}"#,
    ];

    #[test]
    fn reads_the_usual_lines_as_serde_json_does() {
        for line in LINES {
            assert!(agrees(line.as_bytes()), "fast path gave up on {line}");
        }
    }

    #[test]
    fn gives_up_where_serde_json_would_refuse_or_read_otherwise() {
        for line in [
            // A repeated known field (serde refuses it).
            r#"{"type":"assistant","type":"user","message":{"usage":{}}}"#,
            r#"{"message":{"usage":{"input_tokens":1,"input_tokens":2}}}"#,
            // An escape in a kept string or a key (serde unescapes).
            r#"{"type":"assist\u0061nt","message":{"usage":{}}}"#,
            r#"{"typ\u0065":"assistant","message":{"usage":{}}}"#,
            // Numbers that are not plain u64s.
            r#"{"message":{"usage":{"input_tokens":-1}}}"#,
            r#"{"message":{"usage":{"input_tokens":1.0}}}"#,
            r#"{"message":{"usage":{"input_tokens":1e3}}}"#,
            r#"{"message":{"usage":{"input_tokens":01}}}"#,
            r#"{"message":{"usage":{"input_tokens":18446744073709551615}}}"#,
            r#"{"message":{"usage":{"input_tokens":"1"}}}"#,
            // Wrong shapes.
            r#"{"message":{"usage":[]}}"#,
            r#"{"message":"usage"}"#,
            r#"{"message":{"usage":{"iterations":[null]}}}"#,
            r#"{"isSidechain":"yes","message":{"usage":{}}}"#,
            r#"["usage"]"#,
            // Broken JSON.
            r#"{"message":{"usage":{}},}"#,
            r#"{"message":{"usage":{}}} x"#,
            r#"{"message":{"usage":{}},"x":[1,]}"#,
            r#"{"message":{"usage":{}},"x":"a\qb"}"#,
            r#"{"message":{"usage":{}},"x":"\u12G4"}"#,
            r#"{"message":{"usage":{}},"x":01}"#,
            r#"{"message":{"usage":{}},"x":1.}"#,
            r#"{"message":{"usage":{}},"x":-}"#,
            r#"{"message":{"usage":{}},"x":nul}"#,
            r#"{"message":{"usage":{}},"x":{"a"}}"#,
            r#"{"message":{"usage":{}},"x":{1:2}}"#,
            "{\"message\":{\"usage\":{}},\"x\":\"tab\there\"}",
            "{\"message\":{\"usage\":{}},\"cwd\":\"\u{1}\"}",
        ] {
            assert!(raw_line(line.as_bytes()).is_none(), "{line}");
        }
        // Not UTF-8 in a kept string or a key: serde refuses; given up.
        assert!(raw_line(b"{\"cwd\":\"\xff\",\"message\":{\"usage\":{}}}").is_none());
        assert!(raw_line(b"{\"\xff\":1,\"message\":{\"usage\":{}}}").is_none());
        // Not UTF-8 in an ignored string: serde does not look; neither do we.
        assert!(agrees(b"{\"x\":\"\xff\",\"message\":{\"usage\":{}}}"));
        // Deep ignored nesting is left to serde_json.
        let deep = format!(
            r#"{{"x":{}{},"message":{{"usage":{{}}}}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(raw_line(deep.as_bytes()).is_none());
        assert!(serde(deep.as_bytes()).is_some());
    }

    /// Every single-byte change, deletion or doubling of the usual lines
    /// (and a pseudo-random sample of two at once): whatever the fast path
    /// accepts, serde_json reads the same.
    #[test]
    fn mutated_lines_agree() {
        const BYTES: &[u8] = b"\"\\{}[],: 0-.eEnul1\x01\xff\xc3a/";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut accepted, mut total) = (0, 0);
        for line in LINES {
            let line = line.as_bytes();
            let mut variants: Vec<Vec<u8>> = Vec::new();
            for i in 0..line.len() {
                let mut del = line.to_vec();
                del.remove(i);
                variants.push(del);
                let mut dup = line.to_vec();
                dup.insert(i, line[i]);
                variants.push(dup);
                for &b in BYTES {
                    let mut v = line.to_vec();
                    v[i] = b;
                    variants.push(v);
                }
            }
            for _ in 0..2000 {
                let mut v = line.to_vec();
                for _ in 0..2 {
                    let i = (next() % v.len() as u64) as usize;
                    v[i] = BYTES[(next() % BYTES.len() as u64) as usize];
                }
                variants.push(v);
            }
            for v in &variants {
                total += 1;
                accepted += usize::from(agrees(v));
            }
        }
        // Most changes land in ignored text, which the fast path reads.
        assert!(accepted > total / 4, "{accepted} of {total}");
    }
}
