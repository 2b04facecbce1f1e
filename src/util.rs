//! Small helpers shared by several modules: Redis's glob matching and number parsing.

/// Redis's `stringmatchlen`: `*`, `?`, `[...]` with ranges and `^` negation, `\` escapes.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    glob_match_depth(pattern, text, nocase, 0)
}

/// Nesting bound: each `*` recurses once; Redis bounds this the same way against patterns
/// crafted to take exponential time.
const GLOB_DEPTH_MAX: usize = 1000;

fn glob_match_depth(mut pattern: &[u8], mut text: &[u8], nocase: bool, depth: usize) -> bool {
    if depth > GLOB_DEPTH_MAX {
        return false;
    }
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while !pattern.is_empty() && !text.is_empty() {
        match pattern[0] {
            b'*' => {
                while pattern.len() > 1 && pattern[1] == b'*' {
                    pattern = &pattern[1..];
                }
                if pattern.len() == 1 {
                    return true;
                }
                for start in 0..text.len() {
                    if glob_match_depth(&pattern[1..], &text[start..], nocase, depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => text = &text[1..],
            b'[' => {
                pattern = &pattern[1..];
                let negate = pattern.first() == Some(&b'^');
                if negate {
                    pattern = &pattern[1..];
                }
                let mut matched = false;
                loop {
                    match pattern {
                        [] => break,
                        [b'\\', escaped, ..] => {
                            if eq(*escaped, text[0]) {
                                matched = true;
                            }
                            pattern = &pattern[2..];
                        }
                        [b']', ..] => break,
                        [low, b'-', high, ..] if *high != b']' || pattern.len() > 3 => {
                            let (mut low, mut high, mut c) = (*low, *high, text[0]);
                            if low > high {
                                std::mem::swap(&mut low, &mut high);
                            }
                            if nocase {
                                low = low.to_ascii_lowercase();
                                high = high.to_ascii_lowercase();
                                c = c.to_ascii_lowercase();
                            }
                            if c >= low && c <= high {
                                matched = true;
                            }
                            pattern = &pattern[3..];
                        }
                        [c, ..] => {
                            if eq(*c, text[0]) {
                                matched = true;
                            }
                            pattern = &pattern[1..];
                        }
                    }
                }
                if pattern.is_empty() {
                    // Unterminated class: Redis treats the end of the pattern as its end.
                } else {
                    debug_assert_eq!(pattern[0], b']');
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                text = &text[1..];
            }
            b'\\' if pattern.len() >= 2 => {
                pattern = &pattern[1..];
                if !eq(pattern[0], text[0]) {
                    return false;
                }
                text = &text[1..];
            }
            c => {
                if !eq(c, text[0]) {
                    return false;
                }
                text = &text[1..];
            }
        }
        if pattern.is_empty() {
            break;
        }
        pattern = &pattern[1..];
        if text.is_empty() {
            while pattern.first() == Some(&b'*') {
                pattern = &pattern[1..];
            }
            break;
        }
    }
    pattern.is_empty() && text.is_empty()
}

/// Redis's `string2ld` for INCRBYFLOAT and friends: a decimal or exponent float, no spaces,
/// not NaN; `inf` is accepted here and rejected by callers that need a finite result.
pub fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty()
        || text.len() > 5000
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if !lower
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'-' | b'+'))
            {
                return None;
            }
            lower.parse::<f64>().ok()?
        }
    };
    if value.is_nan() {
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_redis() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(!glob_match(b"a\\*b", b"axb", false));
        assert!(glob_match(b"MAX*", b"maxclients", true));
        assert!(!glob_match(b"abc", b"abcd", false));
        assert!(glob_match(b"abc*", b"abc", false));
        assert!(!glob_match(b"", b"a", false));
        assert!(glob_match(b"", b"", false));
    }

    #[test]
    fn floats_like_string2ld() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
    }
}

/// A statistics counter that threads can bump without sharing a cache line.
///
/// INFO's counters are incremented on every command by every worker thread; one shared
/// `AtomicU64` would bounce its cache line between cores on each increment. Each thread adds
/// to its own padded cell instead, and reads sum the cells. The API mirrors `AtomicU64`'s so a
/// counter can replace one at no call-site cost; `load` is a sum, so it is exact only when no
/// thread is adding concurrently (fine for statistics).
pub struct Counter {
    cells: Box<[PaddedCell; COUNTER_CELLS]>,
}

/// Cells per counter; threads beyond this share cells (correct, merely slower).
const COUNTER_CELLS: usize = 8;
const _: () = assert!(COUNTER_CELLS.is_power_of_two());

#[repr(align(64))]
#[derive(Default)]
struct PaddedCell(std::sync::atomic::AtomicU64);

/// This thread's cell, for `Counter::add_in` (several counters bumped together).
pub fn counter_cell() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static CELL: usize = NEXT.fetch_add(1, Ordering::Relaxed) % COUNTER_CELLS;
    }
    CELL.with(|cell| *cell)
}

impl Counter {
    pub fn new(value: u64) -> Counter {
        let counter = Counter {
            cells: Box::default(),
        };
        counter.cells[0]
            .0
            .store(value, std::sync::atomic::Ordering::Relaxed);
        counter
    }

    pub fn fetch_add(&self, value: u64, ordering: std::sync::atomic::Ordering) -> u64 {
        self.cells[counter_cell()].0.fetch_add(value, ordering)
    }

    /// `fetch_add` into a cell from `counter_cell`, looked up once for several counters.
    pub fn add_in(&self, cell: usize, value: u64) {
        self.cells[cell & (COUNTER_CELLS - 1)]
            .0
            .fetch_add(value, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn incr(&self) {
        self.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn load(&self, ordering: std::sync::atomic::Ordering) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |sum, cell| sum.wrapping_add(cell.0.load(ordering)))
    }

    pub fn store(&self, value: u64, ordering: std::sync::atomic::Ordering) {
        for cell in self.cells.iter() {
            cell.0.store(0, ordering);
        }
        self.cells[0].0.store(value, ordering);
    }
}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new(0)
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.load(std::sync::atomic::Ordering::Relaxed))
    }
}

#[cfg(test)]
mod counter_tests {
    use super::Counter;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn sums_across_threads_and_resets() {
        let counter = std::sync::Arc::new(Counter::new(5));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.load(Relaxed), 4005);
        counter.store(0, Relaxed);
        assert_eq!(counter.load(Relaxed), 0);
    }
}

thread_local! {
    static RANDOM: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_entropy());
}

/// The random source of commands (SPOP, RANDOMKEY, SRANDMEMBER, LFU counters): one fast
/// generator per thread, seeded from the OS, reseedable with [`reseed_random`] so that the
/// simulator replays a seed exactly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl rand::RngCore for Random {
    fn next_u32(&mut self) -> u32 {
        RANDOM.with(|random| random.borrow_mut().next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        RANDOM.with(|random| random.borrow_mut().next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RANDOM.with(|random| random.borrow_mut().fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        RANDOM.with(|random| random.borrow_mut().try_fill_bytes(dest))
    }
}

/// This thread's command random source.
pub fn random() -> Random {
    Random
}

/// Reseeds this thread's command random source (the simulator, per seed).
pub fn reseed_random(seed: u64) {
    RANDOM.with(|random| *random.borrow_mut() = rand::SeedableRng::seed_from_u64(seed));
}
