//! Checksums inside the AOF: `#CRC64:<hex> <bytes>` annotation lines.
//!
//! The AOF format has no checksum, so a flipped bit inside a value would load silently wrong.
//! Redis 7's AOF allows annotation lines (`#` to end of line; Redis writes `#TS:` ones) that
//! every loader skips, Redis's and redis-check-aof included. Strata's writer adds one after
//! every `ANNOTATE_BYTES` of commands: the CRC-64 (Redis's, as in RDB files) and length of the
//! commands since the previous annotation. Strata's loader checks each one and stops the load
//! at the first range that does not match, naming the file and the offset where it starts.
//! `#CRC64:reset` starts a new range without checking (written when a file is reopened for
//! appending after a load accepted what it held). The commands after the last annotation are
//! not covered: that tail is where a crash tears a file, and truncation handles it.

use crate::persist::rdb::crc64;

/// Commands between two annotations: a line per 64 KiB costs under 0.1% of the file.
pub const ANNOTATE_BYTES: u64 = 64 * 1024;
/// The annotation that starts a new range unchecked.
pub const RESET: &[u8] = b"#CRC64:reset\r\n";
const PREFIX: &[u8] = b"#CRC64:";

/// The running checksum of the commands since the last annotation.
pub struct Range {
    digest: crc::Digest<'static, u64, crc::Table<16>>,
    len: u64,
}

impl Default for Range {
    fn default() -> Range {
        Range::new()
    }
}

impl Range {
    pub fn new() -> Range {
        Range {
            digest: crc64::digest(),
            len: 0,
        }
    }

    /// Adds written command bytes; the annotation line to write after them when the range is
    /// long enough (the range then starts over).
    pub fn add(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.digest.update(bytes);
        self.len += bytes.len() as u64;
        if self.len < ANNOTATE_BYTES {
            return None;
        }
        Some(self.annotation())
    }

    /// The annotation for the range so far, starting a new one.
    pub fn annotation(&mut self) -> Vec<u8> {
        let range = std::mem::take(self);
        let sum = range.digest.finalize();
        format!("#CRC64:{sum:016x} {}\r\n", range.len).into_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What an annotation line asks the loader to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Annotation {
    /// Not a checksum annotation (`#TS:...`, anything else): skip it.
    Other,
    /// Start a new range unchecked.
    Reset,
    /// The range so far must have this CRC-64 and length.
    Check { sum: u64, len: u64 },
    /// A `#CRC64:` line that does not parse: corruption.
    Malformed,
}

/// Reads an annotation line (without its CRLF).
pub fn parse(line: &[u8]) -> Annotation {
    let Some(rest) = line.strip_prefix(PREFIX) else {
        return Annotation::Other;
    };
    if rest == b"reset" {
        return Annotation::Reset;
    }
    let parsed = std::str::from_utf8(rest).ok().and_then(|text| {
        let (sum, len) = text.split_once(' ')?;
        Some((u64::from_str_radix(sum, 16).ok()?, len.parse::<u64>().ok()?))
    });
    match parsed {
        Some((sum, len)) => Annotation::Check { sum, len },
        None => Annotation::Malformed,
    }
}

/// The loader's side: the checksum of the commands read since the last annotation.
pub struct Verifier {
    range: Range,
    /// Offset where the current range starts (for the error).
    pub start: u64,
}

impl Verifier {
    pub fn new(start: u64) -> Verifier {
        Verifier {
            range: Range::new(),
            start,
        }
    }

    pub fn add(&mut self, bytes: &[u8]) {
        self.range.digest.update(bytes);
        self.range.len += bytes.len() as u64;
    }

    /// Applies an annotation ending at file offset `next`: Err(offset of the range) when the
    /// range does not match.
    pub fn annotation(&mut self, line: &[u8], next: u64) -> Result<(), u64> {
        match parse(line) {
            Annotation::Other => return Ok(()),
            Annotation::Reset => {}
            Annotation::Malformed => return Err(self.start),
            Annotation::Check { sum, len } => {
                let range = std::mem::take(&mut self.range);
                if range.len != len || range.digest.finalize() != sum {
                    return Err(self.start);
                }
            }
        }
        self.range = Range::new();
        self.start = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_round_trip_and_catch_a_flip() {
        let mut writer = Range::new();
        let chunk = vec![b'x'; 40 * 1024];
        assert!(writer.add(&chunk).is_none());
        let line = writer.add(&chunk).expect("past the threshold");
        assert!(line.starts_with(b"#CRC64:") && line.ends_with(b"\r\n"));
        let body = &line[..line.len() - 2];

        let mut verifier = Verifier::new(0);
        verifier.add(&chunk);
        verifier.add(&chunk);
        assert_eq!(verifier.annotation(body, 100), Ok(()));
        assert_eq!(verifier.start, 100);

        let mut flipped = chunk.clone();
        flipped[123] ^= 1;
        let mut verifier = Verifier::new(7);
        verifier.add(&chunk);
        verifier.add(&flipped);
        assert_eq!(verifier.annotation(body, 100), Err(7));

        assert_eq!(parse(b"#TS:1700000000"), Annotation::Other);
        assert_eq!(parse(b"#CRC64:reset"), Annotation::Reset);
        assert_eq!(parse(b"#CRC64:zz 1"), Annotation::Malformed);
    }
}
