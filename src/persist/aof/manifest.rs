//! The multi-part AOF manifest (Redis 7): which base file and which incr files, in order,
//! make up the AOF, and which files are history waiting for deletion.
//!
//! Format, one file per line, as Redis's `aofInfoFormat` writes it:
//! `file <name> seq <n> type <b|i|h>`; names needing quoting are written the way
//! `sdscatrepr` quotes them and read back with `sdssplitargs` rules. `#` lines are comments.
//! The parse is strict in the ways Redis's is (one base, known types, bounded lines), so a
//! damaged manifest stops the load instead of loading the wrong files.

use crate::protocol::parser::split_args;

/// Redis's AOF_MANIFEST_LINE_MAX... lines longer than this are an error, not a truncation.
const LINE_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Base,
    Incr,
    History,
}

impl FileKind {
    fn letter(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::Incr => 'i',
            FileKind::History => 'h',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub seq: u64,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<FileInfo>,
    /// In replay order.
    pub incr: Vec<FileInfo>,
    pub history: Vec<FileInfo>,
    /// The highest sequence numbers used so far: new files take the next one.
    pub base_seq: u64,
    pub incr_seq: u64,
}

impl Manifest {
    /// Parses a manifest; errors carry Redis's texts and the line number.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let mut manifest = Manifest::default();
        let mut lines = 0usize;
        for (index, raw) in text.split_inclusive(|&byte| byte == b'\n').enumerate() {
            let number = index + 1;
            if raw.len() > LINE_BYTES_MAX {
                return Err(format!(
                    "Reading the manifest file, at line {number}: The AOF manifest file contains too long line"
                ));
            }
            if !raw.ends_with(b"\n") {
                return Err(format!(
                    "Reading the manifest file, at line {number}: Invalid AOF manifest file format"
                ));
            }
            let line = raw.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            lines += 1;
            let invalid = || {
                format!(
                    "Reading the manifest file, at line {number}: Invalid AOF manifest file format"
                )
            };
            let words = split_args(line).ok_or_else(invalid)?;
            if words.len() % 2 != 0 {
                return Err(invalid());
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks(2) {
                let value = String::from_utf8(pair[1].to_vec()).map_err(|_| invalid())?;
                match pair[0].as_slice() {
                    b"file" => name = Some(value),
                    b"seq" => seq = Some(value.parse::<u64>().map_err(|_| invalid())?),
                    b"type" => {
                        kind = Some(match value.as_str() {
                            "b" => FileKind::Base,
                            "i" => FileKind::Incr,
                            "h" => FileKind::History,
                            _ => {
                                return Err(format!(
                                "Reading the manifest file, at line {number}: Unknown AOF file type"
                            ))
                            }
                        })
                    }
                    // Unknown keys are skipped, as Redis does, for forward compatibility.
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(invalid());
            };
            if name.contains('/') || name.is_empty() {
                return Err(invalid());
            }
            let info = FileInfo { name, seq, kind };
            // What is read must be writable back: quoting makes a byte up to four long, and
            // a rewrite that wrote a line this parse refuses would stop the next start.
            if render_line(&info).len() > LINE_BYTES_MAX {
                return Err(format!(
                    "Reading the manifest file, at line {number}: The AOF manifest file contains too long line"
                ));
            }
            match kind {
                FileKind::Base => {
                    if manifest.base.is_some() {
                        return Err(format!(
                            "Reading the manifest file, at line {number}: Found duplicate base file information"
                        ));
                    }
                    manifest.base_seq = seq;
                    manifest.base = Some(info);
                }
                FileKind::Incr => {
                    if seq <= manifest.incr_seq && !manifest.incr.is_empty() {
                        return Err(format!(
                            "Reading the manifest file, at line {number}: Found a non-monotonic sequence number"
                        ));
                    }
                    manifest.incr_seq = seq;
                    manifest.incr.push(info);
                }
                FileKind::History => manifest.history.push(info),
            }
        }
        if lines == 0 {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(manifest)
    }

    /// The manifest's text, as Redis writes it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let files = self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incr.iter());
        for info in files {
            out.push_str(&render_line(info));
        }
        out
    }

    /// Files to replay: the base (if any) then the incr files, in order.
    pub fn replay_order(&self) -> impl Iterator<Item = &FileInfo> {
        self.base.iter().chain(self.incr.iter())
    }
}

/// One file's line, as Redis's `aofInfoFormat` writes it.
fn render_line(info: &FileInfo) -> String {
    format!(
        "file {} seq {} type {}\n",
        quote_if_needed(&info.name),
        info.seq,
        info.kind.letter()
    )
}

/// `sdscatrepr` quoting for names with spaces, quotes or control bytes.
fn quote_if_needed(name: &str) -> String {
    let needs = name
        .bytes()
        .any(|byte| byte <= b' ' || byte == b'"' || byte == b'\'' || byte == b'\\' || byte >= 0x7f);
    if !needs {
        return name.to_string();
    }
    let mut out = String::from("\"");
    for byte in name.bytes() {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(byte as char),
            other => out.push_str(&format!("\\x{other:02x}")),
        }
    }
    out.push('"');
    out
}

/// `<prefix>.<seq>.base.rdb` or `.base.aof`.
pub fn base_name(prefix: &str, seq: u64, rdb: bool) -> String {
    format!("{prefix}.{seq}.base.{}", if rdb { "rdb" } else { "aof" })
}

/// `<prefix>.<seq>.incr.aof`.
pub fn incr_name(prefix: &str, seq: u64) -> String {
    format!("{prefix}.{seq}.incr.aof")
}

/// `<prefix>.manifest`.
pub fn manifest_name(prefix: &str) -> String {
    format!("{prefix}.manifest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_redis_writes_and_writes_it_back() {
        let text = b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let manifest = Manifest::parse(text).expect("valid");
        assert_eq!(manifest.base_seq, 1);
        assert_eq!(manifest.incr.len(), 1);
        assert_eq!(manifest.render().as_bytes(), text);
        let order: Vec<_> = manifest.replay_order().map(|f| f.name.as_str()).collect();
        assert_eq!(
            order,
            ["appendonly.aof.1.base.rdb", "appendonly.aof.1.incr.aof"]
        );
    }

    #[test]
    fn quotes_names_with_spaces() {
        let manifest = Manifest {
            base: Some(FileInfo {
                name: "my aof.1.base.rdb".into(),
                seq: 1,
                kind: FileKind::Base,
            }),
            ..Manifest::default()
        };
        let text = manifest.render();
        assert_eq!(text, "file \"my aof.1.base.rdb\" seq 1 type b\n");
        assert_eq!(
            Manifest::parse(text.as_bytes()).expect("valid"),
            Manifest {
                base_seq: 1,
                ..manifest
            }
        );
    }

    #[test]
    fn refuses_damage() {
        for (text, error) in [
            (&b""[..], "empty AOF manifest"),
            (b"# only a comment\n", "empty AOF manifest"),
            (
                b"file a seq 1 type b\nfile b seq 2 type b\n",
                "duplicate base",
            ),
            (b"file a seq 1 type x\n", "Unknown AOF file type"),
            (b"file a seq x type b\n", "Invalid AOF manifest"),
            (b"file a seq 1\n", "Invalid AOF manifest"),
            (b"file a seq 1 type b", "Invalid AOF manifest"),
            (b"file ../a seq 1 type b\n", "Invalid AOF manifest"),
            (
                b"file a seq 2 type i\nfile b seq 1 type i\n",
                "non-monotonic",
            ),
        ] {
            let found = Manifest::parse(text).expect_err("invalid");
            assert!(found.contains(error), "{found:?} for {text:?}");
        }
        // Short enough as read, too long once written back with its bytes quoted.
        let mut quoted = b"file ".to_vec();
        quoted.extend_from_slice(&[0x01; 400]);
        quoted.extend_from_slice(b" seq 1 type b\n");
        assert!(quoted.len() <= LINE_BYTES_MAX);
        assert!(Manifest::parse(&quoted)
            .expect_err("too long written back")
            .contains("too long line"));
        let long = format!("file {} seq 1 type b\n", "a".repeat(2000));
        assert!(Manifest::parse(long.as_bytes())
            .expect_err("too long")
            .contains("too long line"));
    }
}
