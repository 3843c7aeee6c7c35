//! Model ids come in many spellings; the table is keyed by one.

/// Normalises a model id: lower case, no provider prefix (Bedrock
/// `us.anthropic.`, `anthropic/`, ...), no `[1m]` suffix, no Vertex
/// `@date`, no Bedrock `-v1:0`, no `-YYYYMMDD` date and no `-latest`.
///
/// `us.anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5`.
pub fn normalise(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    if let Some(i) = m.find('[') {
        m.truncate(i);
    }
    if let Some(i) = m.find('@') {
        m.truncate(i);
    }
    // "anthropic/claude-x", "bedrock/...": the last path segment names it.
    if let Some(i) = m.rfind('/') {
        m = m[i + 1..].to_owned();
    }
    // Bedrock region and vendor prefixes: "us.anthropic.claude-...".
    if let Some(i) = m.find("claude-") {
        m = m[i..].to_owned();
    }
    // Bedrock version suffix: "-v1:0", "-v2".
    if let Some(i) = m.find(':') {
        m.truncate(i);
    }
    loop {
        let before = m.len();
        if let Some(s) = m.strip_suffix("-latest") {
            m = s.to_owned();
        }
        if let Some((head, tail)) = m.rsplit_once('-') {
            let is_date = tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit());
            let is_version = tail.len() >= 2
                && tail.starts_with('v')
                && tail[1..].bytes().all(|b| b.is_ascii_digit());
            if is_date || is_version {
                m = head.to_owned();
            }
        }
        if m.len() == before {
            break;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalises_every_spelling() {
        for (raw, want) in [
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-opus-4-6", "claude-opus-4-6"),
            (
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5",
            ),
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                "claude-3-5-haiku",
            ),
            ("claude-opus-4-1@20250805", "claude-opus-4-1"),
            ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
            ("claude-opus-4-6[1m]", "claude-opus-4-6"),
            ("Claude-Sonnet-4-5[1M]", "claude-sonnet-4-5"),
            ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
            ("anthropic/claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("gpt-5", "gpt-5"),
        ] {
            assert_eq!(normalise(raw), want, "{raw}");
        }
    }
}
