//! Reads complete lines of a transcript from a byte offset.
//!
//! A file being written can end in a partial line; it is never handed out
//! and the returned offset stops before it, so the next read starts there.
//! A final line without a newline that parses as one complete JSON object
//! is complete (files copied or written without the last newline): it is
//! handed out and the offset moves past it, so the newline that may arrive
//! later only ends an empty line and the line is never counted twice.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes read at a time: a quarter of a MiB stays in a core's L2 cache
/// between the kernel's copy and the scan of its lines (a MiB did not, on
/// the benchmark machine: ~3% more CPU time for a first load).
const CHUNK: usize = 1 << 18;
/// The largest buffer a thread keeps for its next file: one grown for a
/// line longer than a chunk is kept up to this size (growing it again for
/// every long line would zero and copy megabytes each time); a larger one
/// is let go.
const KEEP: usize = 16 << 20;

/// Calls `f(line, offset_of_line)` for every complete line (newline-
/// terminated, or a final line that is one whole JSON object) from `start`
/// to the end of the file and returns the offset just past the last
/// complete line. Lines longer than a chunk are assembled
/// whole, however long.
#[cfg_attr(not(test), allow(dead_code))]
pub fn for_each_line(file: &mut File, start: u64, f: impl FnMut(&[u8], u64)) -> io::Result<u64> {
    for_each_line_until(file, start, || false, f).map(|(end, _)| end)
}

/// [`for_each_line`], asking `stop` after each chunk whose lines were
/// handed out whether to stop there (before the end of the file). Returns
/// the offset just past the last line handed out, and whether it stopped.
pub fn for_each_line_until(
    file: &mut File,
    start: u64,
    mut stop: impl FnMut() -> bool,
    mut f: impl FnMut(&[u8], u64),
) -> io::Result<(u64, bool)> {
    let remaining = file.metadata()?.len().saturating_sub(start);
    file.seek(SeekFrom::Start(start))?;
    // One buffer per thread, reused from file to file (a cold scan reads
    // thousands of files); one that grew past KEEP is let go.
    BUF.with(|cell| {
        let mut buf = cell.take();
        let want = (remaining as usize).saturating_add(1).clamp(4096, CHUNK);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let result = lines(file, start, &mut buf, &mut stop, &mut f);
        if buf.len() <= KEEP {
            cell.replace(buf);
        }
        result
    })
}

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn lines(
    file: &mut File,
    start: u64,
    buf: &mut Vec<u8>,
    stop: &mut impl FnMut() -> bool,
    f: &mut impl FnMut(&[u8], u64),
) -> io::Result<(u64, bool)> {
    // `buf[begin..end]` is read but not yet handed out (the start of an
    // unterminated line); `base` is the file offset of `buf[0]`. The buffer
    // grows only for a line longer than itself.
    let (mut begin, mut end) = (0usize, 0usize);
    let mut base = start;
    loop {
        if end == buf.len() {
            if begin > 0 {
                buf.copy_within(begin..end, 0);
                base += begin as u64;
                end -= begin;
                begin = 0;
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        // At most a chunk at a time, even into a larger buffer: the lines
        // are scanned while the bytes are still in the CPU's cache.
        let read_end = buf.len().min(end + CHUNK);
        let n = read_some(file, &mut buf[end..read_end])?;
        if n == 0 {
            break;
        }
        let scan_from = end;
        end += n;
        let mut handed_out = false;
        for nl in memchr::memchr_iter(b'\n', &buf[scan_from..end]) {
            let line_end = scan_from + nl;
            f(&buf[begin..line_end], base + begin as u64);
            begin = line_end + 1;
            handed_out = true;
        }
        // After lines were handed out: a place where a bounded read may stop.
        if handed_out && stop() {
            return Ok((base + begin as u64, true));
        }
    }
    if begin < end && is_whole_object(&buf[begin..end]) {
        f(&buf[begin..end], base + begin as u64);
        begin = end;
    }
    Ok((base + begin as u64, false))
}

/// True when `bytes` is one complete JSON object (and nothing else but
/// whitespace): no more bytes could belong to the same line without making
/// it invalid, so the line is whole even before its newline.
pub fn is_whole_object(bytes: &[u8]) -> bool {
    let t = bytes.trim_ascii();
    t.first() == Some(&b'{')
        && t.last() == Some(&b'}')
        && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_ok()
}

fn read_some(file: &mut File, out: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reads up to `len` bytes from the start of the file (fewer if shorter).
pub fn read_head(file: &mut File, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut out = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(content: &[u8], start: u64) -> (Vec<(String, u64)>, u64) {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(content).unwrap();
        let mut got = Vec::new();
        let end = for_each_line(&mut tmp, start, |l, off| {
            got.push((String::from_utf8_lossy(l).into_owned(), off))
        })
        .unwrap();
        (got, end)
    }

    #[test]
    fn stops_before_a_partial_last_line() {
        let (got, end) = lines_of(b"a\nbb\nccc", 0);
        assert_eq!(got, vec![("a".into(), 0), ("bb".into(), 2)]);
        assert_eq!(end, 5);
        let (got, end) = lines_of(b"{\"a\":1}\n{\"b\":", 0);
        assert_eq!(got, vec![("{\"a\":1}".into(), 0)]);
        assert_eq!(end, 8);
    }

    #[test]
    fn a_whole_final_object_counts_once() {
        let (got, end) = lines_of(b"{\"a\":1}\n{\"b\":2}", 0);
        assert_eq!(got, vec![("{\"a\":1}".into(), 0), ("{\"b\":2}".into(), 8)]);
        assert_eq!(end, 15);
        // The newline arriving later ends an empty line, nothing else.
        let (got, end) = lines_of(b"{\"a\":1}\n{\"b\":2}\n", 15);
        assert_eq!(got, vec![("".into(), 15)]);
        assert_eq!(end, 16);
        // Valid JSON that is not an object is not a whole record yet.
        let (got, _) = lines_of(b"123", 0);
        assert!(got.is_empty());
    }

    #[test]
    fn resumes_from_an_offset() {
        let (got, end) = lines_of(b"a\nbb\nccc\n", 2);
        assert_eq!(got, vec![("bb".into(), 2), ("ccc".into(), 5)]);
        assert_eq!(end, 9);
    }

    #[test]
    fn a_bounded_read_stops_after_a_chunk_at_a_line_boundary() {
        // Three chunks of 100-byte lines: stopping after the first chunk
        // ends on a line boundary, and resuming there reads the rest.
        let line = format!("{}\n", "z".repeat(99));
        let content = line.repeat(3 * CHUNK / 100);
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(content.as_bytes()).unwrap();
        let mut first = 0u64;
        let (end, stopped) = for_each_line_until(&mut tmp, 0, || true, |_, _| first += 1).unwrap();
        assert!(stopped);
        assert!(end > 0 && end < content.len() as u64);
        assert_eq!(end % 100, 0);
        assert_eq!(first, end / 100);
        let mut rest = 0u64;
        let (end2, stopped2) =
            for_each_line_until(&mut tmp, end, || false, |_, _| rest += 1).unwrap();
        assert!(!stopped2);
        assert_eq!(end2, content.len() as u64);
        assert_eq!(first + rest, (3 * CHUNK / 100) as u64);
    }

    #[test]
    fn assembles_lines_longer_than_a_chunk() {
        let mut content = vec![b'x'; CHUNK * 3 + 17];
        content.push(b'\n');
        content.extend_from_slice(b"tail\n");
        let (got, end) = lines_of(&content, 0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), CHUNK * 3 + 17);
        assert_eq!(got[1], ("tail".into(), (CHUNK * 3 + 18) as u64));
        assert_eq!(end, content.len() as u64);
    }
}
