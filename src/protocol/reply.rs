//! Replies and their encoding in RESP2 and RESP3.
//!
//! A command produces a [`Reply`] while it holds shard locks; the connection encodes it after
//! the locks are released, in the protocol the client chose with HELLO. Types that RESP2 lacks
//! degrade as Redis degrades them: maps become flat arrays, sets arrays, doubles bulk strings,
//! booleans integers, nulls `$-1` (or `*-1` for a null array).

use bytes::{BufMut, Bytes, BytesMut};

/// One reply, in the richest (RESP3) form; the encoder lowers it for RESP2 clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Simple(&'static str),
    /// A status line built at run time (`+<text>`).
    Status(String),
    /// `-<text>`: the text starts with its code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Null,
    /// RESP2 `*-1`, RESP3 `_`.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 map; RESP2 flat array of key, value, key, value.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; RESP2 array.
    Set(Vec<Reply>),
    /// RESP3 `,`; RESP2 bulk string formatted as Redis 7.0 does (`%.17g`).
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2 `:1`/`:0`.
    Bool(bool),
    /// RESP3 `=` with a 3-letter format (`txt`); RESP2 bulk string.
    Verbatim(&'static str, Bytes),
    /// RESP3 `>`; RESP2 array. Out-of-band messages (pub/sub, invalidation).
    Push(Vec<Reply>),
    /// Bytes already encoded; written as they are.
    Raw(Bytes),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn bulk(bytes: impl Into<Bytes>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    pub fn bulk_copy(bytes: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes))
    }

    /// An array of bulk strings, encoded as it is built (`BulkArray`); `count` is how many
    /// `items` yields.
    pub fn bulk_array<'a>(count: usize, items: impl Iterator<Item = &'a [u8]>) -> Reply {
        let mut array = BulkArray::new(count);
        items.for_each(|item| array.push(item));
        array.finish()
    }

    /// A bulk string of an integer's decimal form.
    pub fn bulk_int(value: i64) -> Reply {
        let mut buffer = itoa::Buffer::new();
        Reply::Bulk(Bytes::copy_from_slice(buffer.format(value).as_bytes()))
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoded reply to `out`.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Reply::Simple(text) => line(out, b'+', text.as_bytes()),
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => error_line(out, text),
            Reply::Integer(value) => integer(out, b':', *value),
            Reply::Bulk(bytes) => bulk(out, bytes),
            Reply::Null if resp3 => out.put_slice(b"_\r\n"),
            Reply::Null => out.put_slice(b"$-1\r\n"),
            Reply::NullArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NullArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                integer(out, b'*', items.len() as i64);
                items.iter().for_each(|item| item.encode(resp3, out));
            }
            Reply::Set(items) => {
                integer(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
                items.iter().for_each(|item| item.encode(resp3, out));
            }
            Reply::Push(items) => {
                integer(out, if resp3 { b'>' } else { b'*' }, items.len() as i64);
                items.iter().for_each(|item| item.encode(resp3, out));
            }
            Reply::Map(pairs) => {
                if resp3 {
                    integer(out, b'%', pairs.len() as i64);
                } else {
                    integer(out, b'*', 2 * pairs.len() as i64);
                }
                for (key, value) in pairs {
                    key.encode(resp3, out);
                    value.encode(resp3, out);
                }
            }
            Reply::Double(value) => {
                let text = format_double(*value);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(value) if resp3 => {
                out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Bool(value) => integer(out, b':', *value as i64),
            Reply::Verbatim(format, text) if resp3 => {
                debug_assert_eq!(format.len(), 3);
                integer(out, b'=', (text.len() + 4) as i64);
                out.put_slice(format.as_bytes());
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(_, text) => bulk(out, text),
            Reply::Raw(bytes) => out.put_slice(bytes),
        }
    }

    /// The reply encoded on its own (tests and MONITOR-like consumers).
    pub fn to_bytes(&self, resp3: bool) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(resp3, &mut out);
        out.freeze()
    }
}

/// An array of bulk strings encoded as its elements come: the same bytes in RESP2 and RESP3,
/// without a `Reply` and a copy of its own per element (LRANGE 0 99 spent a quarter of its
/// CPU making, encoding and freeing those). It becomes a `Reply::Raw`, so it suits replies no
/// one looks into: a transaction or the connection only encodes them.
pub struct BulkArray {
    out: BytesMut,
    announced: usize,
    written: usize,
}

impl BulkArray {
    /// An array of `count` elements, each to be `push`ed.
    pub fn new(count: usize) -> BulkArray {
        let mut out = BytesMut::with_capacity(16 + count.min(1 << 16) * 16);
        integer(&mut out, b'*', count as i64);
        BulkArray {
            out,
            announced: count,
            written: 0,
        }
    }

    pub fn push(&mut self, item: &[u8]) {
        bulk(&mut self.out, item);
        self.written += 1;
    }

    pub fn finish(self) -> Reply {
        assert_eq!(
            self.written, self.announced,
            "the array's length was announced"
        );
        Reply::Raw(self.out.freeze())
    }
}

fn line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// Redis maps CR and LF in error texts to spaces (`addReplyErrorFormat`): an error that
/// quotes client input must stay one protocol line.
fn error_line(out: &mut BytesMut, text: &str) {
    if text.contains(['\r', '\n']) {
        line(out, b'-', text.replace(['\r', '\n'], " ").as_bytes());
    } else {
        line(out, b'-', text.as_bytes());
    }
}

fn integer(out: &mut BytesMut, prefix: u8, value: i64) {
    let mut buffer = itoa::Buffer::new();
    line(out, prefix, buffer.format(value).as_bytes());
}

fn bulk(out: &mut BytesMut, bytes: &[u8]) {
    out.reserve(bytes.len() + 16);
    integer(out, b'$', bytes.len() as i64);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// Formats a double as Redis 7.0's `addReplyDouble` does: `inf`/`-inf`, else C's `%.17g`.
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    format_g(value, 17)
}

/// C's `printf("%.<precision>g", value)` for finite values (and "nan" for NaN).
pub fn format_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let precision = precision.max(1);
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Scientific form with `precision` significant digits tells the exponent after rounding.
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's {:e} output always has an exponent");
    let exponent: i32 = exponent.parse().expect("Rust's exponent is an integer");
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = trim_fraction_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_fraction_zeros(&format!("{value:.decimals$}")).to_string()
    }
}

fn trim_fraction_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp2_and_resp3_lowering() {
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Integer(1))]);
        assert_eq!(&map.to_bytes(false)[..], b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(&map.to_bytes(true)[..], b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(&Reply::Null.to_bytes(false)[..], b"$-1\r\n");
        assert_eq!(&Reply::NullArray.to_bytes(false)[..], b"*-1\r\n");
        assert_eq!(&Reply::Null.to_bytes(true)[..], b"_\r\n");
        assert_eq!(&Reply::Bool(true).to_bytes(false)[..], b":1\r\n");
        assert_eq!(&Reply::Double(1.5).to_bytes(true)[..], b",1.5\r\n");
        assert_eq!(&Reply::Double(1.5).to_bytes(false)[..], b"$3\r\n1.5\r\n");
        let verbatim = Reply::Verbatim("txt", Bytes::from("hi"));
        assert_eq!(&verbatim.to_bytes(true)[..], b"=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn errors_stay_on_one_line() {
        let error = Reply::error("ERR bad 'a\r\nb'");
        assert_eq!(&error.to_bytes(false)[..], b"-ERR bad 'a  b'\r\n");
    }

    #[test]
    fn doubles_print_like_c_g17() {
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-5), "1.5e-05");
        assert_eq!(format_double(123456789.0), "123456789");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(3.0e-4), "0.00029999999999999997");
        assert_eq!(format_g(1e16, 17), "10000000000000000");
        assert_eq!(format_g(1e17, 17), "1e+17");
    }
}
