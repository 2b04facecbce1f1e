//! The incremental, bounded RESP request parser.
//!
//! Owns turning the bytes a client sends into argument vectors, exactly as Redis 7's
//! `processMultibulkBuffer` and `processInlineBuffer` do, with the same limits and the same
//! error texts. Two invariants matter more than speed:
//!
//! - Nothing is allocated from a length the client *declares*: a client that sends
//!   `$536870912\r\n` and stalls costs the bytes it actually sent, never 512 MB.
//! - Progress is kept between calls, so a large command arriving in many reads is scanned
//!   once, not re-parsed from the start on every read.
//!
//! "Incomplete" is a normal outcome (`Ok(None)`); an `Err` is a protocol error after which the
//! connection replies once and closes, as Redis does.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request, and longest `*<count>` / `$<len>` line (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_BYTES_MAX: usize = 64 * 1024;

/// Upper bound on the argument vector capacity reserved ahead of arrival. The vector still
/// grows to any count the protocol allows, but only as arguments actually arrive.
const ARGS_PREALLOC_MAX: usize = 1024;

/// Redis accepts a multibulk count up to INT_MAX.
const MULTIBULK_COUNT_MAX: i64 = i32::MAX as i64;

/// Before authentication Redis limits a request to 10 arguments of 16 KiB each, so that an
/// unauthenticated client cannot make the server buffer much.
const UNAUTH_COUNT_MAX: i64 = 10;
const UNAUTH_BULK_BYTES_MAX: i64 = 16 * 1024;

/// A protocol error: the text is sent as `-ERR <text>` and the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(text: &str) -> ProtocolError {
        ProtocolError(format!("Protocol error: {text}"))
    }
}

/// The limits that apply to one parse call; read from the config per batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub bulk_bytes_max: i64,
    /// False until the client authenticated, when `requirepass` or ACL users demand it.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// Where the parser is inside a multibulk request.
#[derive(Debug, Default)]
enum State {
    /// Between requests.
    #[default]
    Start,
    /// Inside `*<count>`: `remaining` arguments still to come; `bulk` is the declared length of
    /// the next argument once its `$<len>` line has been read.
    Multibulk {
        remaining: usize,
        bulk: Option<usize>,
    },
}

/// Parses requests out of a connection's query buffer, keeping progress between calls.
#[derive(Debug, Default)]
pub struct RequestParser {
    state: State,
    args: Vec<Bytes>,
    /// Requests parsed so far.
    completed: u64,
    /// Requests handed back (`unread`), returned again first, the last handed back first.
    unread: Vec<Vec<Bytes>>,
    /// A protocol error handed back (`unread_error`): returned once the unread requests are.
    error: Option<ProtocolError>,
}

impl RequestParser {
    pub fn new() -> RequestParser {
        RequestParser::default()
    }

    /// How many complete requests this parser has returned.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Hands back a request `parse` returned, to be returned again by the next call (the
    /// connection looks ahead for requests it may run together, and stops at one it may not).
    pub fn unread(&mut self, args: Vec<Bytes>) {
        debug_assert!(self.unread.len() < 1024);
        self.completed -= 1;
        self.unread.push(args);
    }

    /// Hands back the protocol error `parse` returned, to be returned again once the requests
    /// before it (handed back after it) have been.
    pub fn unread_error(&mut self, error: ProtocolError) {
        self.error = Some(error);
    }

    /// True while a request has been started but not finished: the client is mid-command.
    pub fn in_progress(&self) -> bool {
        matches!(self.state, State::Multibulk { .. })
    }

    /// Takes one complete request out of `buf`. `Ok(None)` means more bytes are needed;
    /// `Ok(Some(args))` may be empty only never: empty requests are skipped.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if let Some(args) = self.unread.pop() {
            self.completed += 1;
            return Ok(Some(args));
        }
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        loop {
            match self.state {
                State::Start => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if let Some(args) = take_whole(buf, limits) {
                        self.completed += 1;
                        return Ok(Some(args));
                    }
                    if buf[0] == b'*' {
                        match self.start_multibulk(buf, limits)? {
                            Some(true) => continue,
                            Some(false) => continue, // empty multibulk: skipped
                            None => return Ok(None),
                        }
                    }
                    match parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => {
                            self.completed += 1;
                            return Ok(Some(args));
                        }
                    }
                }
                State::Multibulk { remaining, bulk } => {
                    if remaining == 0 {
                        self.state = State::Start;
                        let args = std::mem::take(&mut self.args);
                        debug_assert!(!args.is_empty());
                        self.completed += 1;
                        return Ok(Some(args));
                    }
                    match bulk {
                        None => {
                            let Some(len) = self.read_bulk_len(buf, limits)? else {
                                return Ok(None);
                            };
                            self.state = State::Multibulk {
                                remaining,
                                bulk: Some(len),
                            };
                        }
                        Some(len) => {
                            if buf.len() < len + 2 {
                                // Make room for what is declared only as it arrives: the
                                // connection reads in bounded chunks.
                                return Ok(None);
                            }
                            let arg = buf.split_to(len).freeze();
                            buf.advance(2); // Redis does not check the CRLF after a bulk.
                            self.args.push(arg);
                            self.state = State::Multibulk {
                                remaining: remaining - 1,
                                bulk: None,
                            };
                        }
                    }
                }
            }
        }
    }

    /// Reads `*<count>\r\n`. Returns Some(true) when a request started, Some(false) when an
    /// empty request was skipped, None when the line is incomplete.
    fn start_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<bool>, ProtocolError> {
        let Some((count, line)) = multibulk_header(buf, limits)? else {
            return Ok(None);
        };
        buf.advance(line);
        if count <= 0 {
            return Ok(Some(false));
        }
        let count = count as usize;
        self.args = Vec::with_capacity(count.min(ARGS_PREALLOC_MAX));
        self.state = State::Multibulk {
            remaining: count,
            bulk: None,
        };
        Ok(Some(true))
    }

    /// Reads `$<len>\r\n`.
    fn read_bulk_len(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some((len, line)) = bulk_header(buf, limits)? else {
            return Ok(None);
        };
        buf.advance(line);
        Ok(Some(len))
    }
}

/// Where the header line at the start of `bytes` ends (its '\r'), None while it has not
/// wholly arrived; `too_big` is the error for a line over `INLINE_BYTES_MAX`.
fn header_line(bytes: &[u8], too_big: &str) -> Result<Option<usize>, ProtocolError> {
    match find_crlf(bytes) {
        Some(newline) if newline > INLINE_BYTES_MAX => Err(ProtocolError::new(too_big)),
        Some(newline) => Ok(Some(newline)),
        None if line_too_long(bytes) => Err(ProtocolError::new(too_big)),
        None => Ok(None),
    }
}

/// The `*<count>\r\n` line at the start of `bytes`: the count and the line's length with its
/// CRLF, or None while the line has not wholly arrived.
fn multibulk_header(bytes: &[u8], limits: Limits) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(newline) = header_line(bytes, "too big mbulk count string")? else {
        return Ok(None);
    };
    let count = match parse_i64(&bytes[1..newline]) {
        Some(count) if count <= MULTIBULK_COUNT_MAX => count,
        _ => return Err(ProtocolError::new("invalid multibulk length")),
    };
    if !limits.authenticated && count > UNAUTH_COUNT_MAX {
        return Err(ProtocolError::new("unauthenticated multibulk length"));
    }
    Ok(Some((count, newline + 2)))
}

/// The `$<len>\r\n` line at the start of `bytes`: the length and the line's length with its
/// CRLF, or None while the line has not wholly arrived.
fn bulk_header(bytes: &[u8], limits: Limits) -> Result<Option<(usize, usize)>, ProtocolError> {
    let Some(newline) = header_line(bytes, "too big bulk count string")? else {
        return Ok(None);
    };
    if bytes[0] != b'$' {
        return Err(ProtocolError(format!(
            "Protocol error: expected '$', got '{}'",
            bytes[0] as char
        )));
    }
    let len = match parse_i64(&bytes[1..newline]) {
        Some(len) if len >= 0 && len <= limits.bulk_bytes_max => len,
        _ => return Err(ProtocolError::new("invalid bulk length")),
    };
    if !limits.authenticated && len > UNAUTH_BULK_BYTES_MAX {
        return Err(ProtocolError::new("unauthenticated bulk length"));
    }
    Ok(Some((len as usize, newline + 2)))
}

/// Arguments of a request the fast path takes whole (`take_whole`) at most.
const WHOLE_ARGS_MAX: usize = 16;

/// The common case in one pass: a well-formed multibulk request of a few arguments that has
/// wholly arrived is taken out of `buf` with one split, its arguments slices of it, instead
/// of a split and two advances of the buffer per argument (at `-P 16`, the parser was an
/// eighth of PUBLISH's server CPU). Anything else (incomplete, malformed, empty, long) is
/// left untouched for the incremental parser, which decides it as before: this path only
/// ever returns what that parser would.
fn take_whole(buf: &mut BytesMut, limits: Limits) -> Option<Vec<Bytes>> {
    let bytes: &[u8] = buf;
    if bytes.first() != Some(&b'*') {
        return None;
    }
    // The headers are read as the incremental parser reads them; an error is its to report.
    let (count, mut at) = multibulk_header(bytes, limits).ok()??;
    if count <= 0 || count > WHOLE_ARGS_MAX as i64 {
        return None;
    }
    let mut ranges = [(0usize, 0usize); WHOLE_ARGS_MAX];
    for range in ranges.iter_mut().take(count as usize) {
        let (len, line) = bulk_header(bytes.get(at..)?, limits).ok()??;
        let start = at + line;
        let end = start.checked_add(len)?;
        // The two bytes after a bulk are not checked, as in Redis, but must have arrived.
        if bytes.len() < end.checked_add(2)? {
            return None;
        }
        *range = (start, end);
        at = end + 2;
    }
    let request = buf.split_to(at).freeze();
    Some(
        ranges[..count as usize]
            .iter()
            .map(|&(start, end)| request.slice(start..end))
            .collect(),
    )
}

/// Parses one inline request (`SET a b\r\n`), splitting arguments as `sdssplitargs` does.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_BYTES_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    if newline > INLINE_BYTES_MAX {
        return Err(ProtocolError::new("too big inline request"));
    }
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let args = split_args(&buf[..line_end])
        .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
    buf.advance(newline + 1);
    Ok(Some(args.into_iter().map(Bytes::from).collect()))
}

/// Redis's `sdssplitargs`: whitespace-separated words, "double quotes" with C escapes
/// (`\n`, `\xff`, ...), 'single quotes' with only `\'`. None on unbalanced quotes, or when a
/// closing quote is not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_c_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let c = *line.get(i)?;
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    current.push(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < line.len() && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    in_double = false;
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    in_single = false;
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => current.push(c),
                }
            }
            i += 1;
        }
        debug_assert!(!in_double && !in_single);
        args.push(current);
    }
}

/// C's `isspace`, which `sdssplitargs` uses between words and after a closing quote: it
/// includes '\v' and '\f', which Rust's `is_ascii_whitespace` leaves out (0x0b) or a word
/// does not end on (0x0c: inside an unquoted word only ' ', '\n', '\r' and '\t' end it).
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&c| c == needle)
}

/// Position of the '\r' of the first "\r\n", as Redis's `strchr(querybuf,'\r')` finds it.
fn find_crlf(buf: &[u8]) -> Option<usize> {
    let cr = memchr(b'\r', buf)?;
    if cr + 1 < buf.len() {
        Some(cr)
    } else {
        None
    }
}

/// Whether a buffer without a whole "\r\n" can no longer hold a line within the limit. A
/// '\r' that arrived last ends the line once its '\n' arrives, as Redis sees it, so only a
/// buffer without one is too long: otherwise the verdict would depend on how the bytes were
/// split into reads.
fn line_too_long(buf: &[u8]) -> bool {
    debug_assert!(find_crlf(buf).is_none());
    buf.len() > INLINE_BYTES_MAX && buf.last() != Some(&b'\r')
}

/// Redis's `string2ll`: optional '-', digits, no leading zeros (except "0"), no '+', no spaces.
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    let (negative, body) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if body.is_empty() || body.len() > 20 {
        return None;
    }
    if body.len() > 1 && body[0] == b'0' {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &c in body {
        if !c.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
        if body == b"0" {
            return None; // Redis rejects "-0".
        }
        Some((magnitude as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Most cut points a fuzz input may ask for: enough to split every line of a small request.
const FUZZ_CUTS_MAX: usize = 7;

/// Entry point for a fuzz target: any bytes must parse without panicking, and the requests
/// must not depend on how the bytes arrive. The first byte picks how many cut points follow
/// (two bytes each, little endian, taken modulo the body's length); the rest is the body.
/// The body is parsed whole and then fed piece by piece: the requests, and the error that
/// ends them, must be the same. It is also parsed once with the unauthenticated limits.
pub fn fuzz_requests(bytes: &[u8]) {
    let Some((&first, rest)) = bytes.split_first() else {
        return;
    };
    let cut_count = (first as usize % (FUZZ_CUTS_MAX + 1)).min(rest.len() / 2);
    let (cut_bytes, body) = rest.split_at(cut_count * 2);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    let whole = fuzz_feed(body, &[], Limits::default());
    let split = fuzz_feed(body, &cuts, Limits::default());
    assert_eq!(whole, split, "cut at {cuts:?}");
    let unauthenticated = Limits {
        authenticated: false,
        ..Limits::default()
    };
    let _ = fuzz_feed(body, &[], unauthenticated);
}

/// Feeds `body` cut at `cuts` (sorted), collecting requests until the first error.
fn fuzz_feed(
    body: &[u8],
    cuts: &[usize],
    limits: Limits,
) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&body.len())) {
        assert!(start <= end && end <= body.len());
        buf.extend_from_slice(&body[start..end]);
        start = end;
        // Each request consumes at least one byte, so this loop ends within the body.
        loop {
            match parser.parse(&mut buf, limits) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty(), "an empty request is skipped");
                    requests.push(args);
                }
                Ok(None) => break,
                Err(error) => return (requests, Some(error)),
            }
        }
    }
    (requests, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = parser.parse(&mut buf, Limits::default())? {
            out.push(args);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let reqs = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\nset \"a b\" 'c'\n").unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0], vec![Bytes::from("GET"), Bytes::from("a")]);
        assert_eq!(reqs[1], vec![Bytes::from("PING")]);
        assert_eq!(
            reqs[2],
            vec![Bytes::from("set"), Bytes::from("a b"), Bytes::from("c")]
        );
    }

    #[test]
    fn inline_spaces_are_sdssplitargs_spaces() {
        // Checked against Redis 7.0.15: '\v' and '\f' separate words only where `isspace`
        // is asked (before a word, after a closing quote); an unquoted word keeps them.
        let words = |line: &[u8]| split_args(line).map(|words| words.len());
        assert_eq!(
            split_args(b"\x0bECHO x"),
            Some(vec![b"ECHO".to_vec(), b"x".to_vec()])
        );
        assert_eq!(
            split_args(b"SET\x0cfk v"),
            Some(vec![b"SET\x0cfk".to_vec(), b"v".to_vec()])
        );
        assert_eq!(
            split_args(b"ECHO a\x0b"),
            Some(vec![b"ECHO".to_vec(), b"a\x0b".to_vec()])
        );
        assert_eq!(words(b"ECHO \"a\"\x0c"), Some(2));
        assert_eq!(words(b"ECHO 'a'\x0bb"), Some(3));
    }

    #[test]
    fn empty_requests_are_skipped() {
        let reqs = parse_all(b"*0\r\n*-1\r\n\r\n  \r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(reqs, vec![vec![Bytes::from("PING")]]);
    }

    #[test]
    fn errors_match_redis() {
        let err = |input: &[u8]| parse_all(input).unwrap_err().0;
        assert_eq!(err(b"*abc\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*3000000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(err(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$600000000\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(b"*1\r\n:1\r\n"),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(
            err(b"set \"a\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            err(&vec![b'a'; INLINE_BYTES_MAX + 1]),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn declared_length_is_not_allocated() {
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        assert_eq!(parser.parse(&mut buf, Limits::default()), Ok(None));
        assert!(parser.in_progress());
        assert!(buf.capacity() < 4096, "capacity {}", buf.capacity());
        assert!(parser.args.capacity() <= ARGS_PREALLOC_MAX);
    }

    #[test]
    fn a_line_ending_at_the_limit_does_not_depend_on_the_split() {
        // The '\r' lands at the limit and arrives last in its read: as in Redis, the line is
        // incomplete (its '\n' is on the way), not too long.
        for prefix in [&b"*"[..], b"*1\r\n$"] {
            let mut line = prefix.to_vec();
            line.resize(prefix.len() + INLINE_BYTES_MAX - 1, b'1');
            line.push(b'\r');
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::from(&line[..]);
            assert_eq!(parser.parse(&mut buf, Limits::default()), Ok(None));
            buf.extend_from_slice(b"\n");
            let split = parser.parse(&mut buf, Limits::default()).unwrap_err();
            line.extend_from_slice(b"\n");
            let whole = parse_all(&line).unwrap_err();
            assert_eq!(split, whole);
        }
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = Limits {
            authenticated: false,
            ..Limits::default()
        };
        let mut parser = RequestParser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            parser.parse(&mut buf, limits).unwrap_err().0,
            "Protocol error: unauthenticated multibulk length"
        );
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b""), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Feeds `input` in pieces cut at `cuts`, collecting requests until the first error.
        fn feed(input: &[u8], cuts: &[usize]) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut start = 0;
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.push(input.len());
            points.sort_unstable();
            for point in points {
                buf.extend_from_slice(&input[start..point.max(start)]);
                start = point.max(start);
                loop {
                    match parser.parse(&mut buf, Limits::default()) {
                        Ok(Some(args)) => out.push(args),
                        Ok(None) => break,
                        Err(error) => return (out, Some(error)),
                    }
                }
            }
            (out, None)
        }

        fn encode(requests: &[Vec<Vec<u8>>]) -> Vec<u8> {
            let mut out = Vec::new();
            for args in requests {
                out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                for arg in args {
                    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    out.extend_from_slice(arg);
                    out.extend_from_slice(b"\r\n");
                }
            }
            out
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
                let _ = feed(&input, &cuts);
            }

            #[test]
            fn any_split_gives_the_same_requests(
                requests in proptest::collection::vec(
                    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..6),
                cuts in proptest::collection::vec(any::<usize>(), 0..10),
            ) {
                let input = encode(&requests);
                let (whole, error) = feed(&input, &[]);
                prop_assert!(error.is_none());
                let (split, error) = feed(&input, &cuts);
                prop_assert!(error.is_none());
                prop_assert_eq!(&whole, &split);
                let expected: Vec<Vec<Bytes>> = requests
                    .iter()
                    .map(|args| args.iter().map(|arg| Bytes::from(arg.clone())).collect())
                    .collect();
                prop_assert_eq!(whole, expected);
            }
        }
    }
}
