//! x87 long double arithmetic, as Redis's INCRBYFLOAT and HINCRBYFLOAT compute on x86-64.
//!
//! Just enough of the x87 80-bit extended format (64-bit significand, 15-bit exponent) to
//! reproduce Redis's INCRBYFLOAT on x86-64: glibc's `strtold` (correctly rounded decimal and
//! hex parsing), one round-to-nearest-even addition, and `%.17Lf` printing. Results differ
//! visibly from `f64` (0.1 + 0.2 is "0.3" here, as in Redis), so `f64` will not do.
//! Subnormals keep a full significand here (they only matter below 1e-4931, which prints as 0).

/// Largest exponent of a finite value `significand * 2^exponent` with the significand's top
/// bit set: the x87 maximum is just under 2^16384.
const EXPONENT_MAX: i64 = 16383 - 63;
/// Exponent of 2^-16446 (significand 2^63): half the smallest subnormal, 2^-16445. Values
/// up to it round to zero, which `strtold` reports as an underflow.
const EXPONENT_MIN: i64 = -16446 - 63;
/// `string2ld` refuses inputs this long (MAX_LONG_DOUBLE_CHARS).
const INPUT_BYTES_MAX: usize = 5 * 1024;
/// Fraction digits `%.17Lf` prints.
const FRACTION_DIGITS: u32 = 17;

/// A finite extended value: `(-1)^negative * significand * 2^exponent`, the significand
/// normalised (top bit set) unless the value is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    negative: bool,
    significand: u64,
    exponent: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Finite(Extended),
    Infinite,
}

impl Extended {
    pub const ZERO: Extended = Extended {
        negative: false,
        significand: 0,
        exponent: 0,
    };

    fn is_zero(&self) -> bool {
        self.significand == 0
    }

    /// Rounds `big * 2^exponent` (plus a sticky "something below" flag) to 64 bits.
    /// None when the result overflows the format.
    fn from_big(negative: bool, big: &Big, exponent: i64, sticky: bool) -> Option<Extended> {
        let bits = big.bit_length();
        if bits == 0 {
            debug_assert!(!sticky);
            return Some(Extended {
                negative,
                ..Extended::ZERO
            });
        }
        let (significand, exponent) = if bits <= 64 {
            debug_assert!(!sticky, "inexact values carry at least 66 bits");
            let shift = 64 - bits;
            (big.low_u64() << shift, exponent - shift as i64)
        } else {
            let drop = bits - 64;
            let top = big.shifted_right(drop).low_u64();
            let half = big.bit(drop - 1);
            let rest = sticky || big.any_below(drop - 1);
            round_even(top, half, rest, exponent + drop as i64)
        };
        finish(negative, significand, exponent)
    }

    /// `self + other` rounded to nearest even; None on overflow to infinity.
    pub fn checked_add(self, other: Extended) -> Option<Extended> {
        if other.is_zero() {
            if self.is_zero() {
                // IEEE: -0 + -0 is -0, any other sum of zeros is +0.
                return Some(Extended {
                    negative: self.negative && other.negative,
                    ..Extended::ZERO
                });
            }
            return Some(self);
        }
        if self.is_zero() {
            return Some(other);
        }
        let (big, small) =
            if (self.exponent, self.significand) >= (other.exponent, other.significand) {
                (self, other)
            } else {
                (other, self)
            };
        // 62 guard bits below the significand; the smaller operand's lost bits fold into a
        // sticky bit 0, which is enough for round-to-nearest-even.
        const GUARD: u32 = 62;
        let big_bits = (big.significand as u128) << GUARD;
        let small_full = (small.significand as u128) << GUARD;
        let distance = (big.exponent - small.exponent) as u64;
        debug_assert!(big.exponent >= small.exponent);
        let small_bits = if distance == 0 {
            small_full
        } else if distance < 127 {
            let lost = small_full & ((1u128 << distance) - 1);
            (small_full >> distance) | (lost != 0) as u128
        } else {
            1
        };
        let total = if big.negative == small.negative {
            big_bits + small_bits
        } else {
            big_bits - small_bits
        };
        if total == 0 {
            return Some(Extended::ZERO);
        }
        let bits = 128 - total.leading_zeros() as i64;
        let base = big.exponent - GUARD as i64;
        let (significand, exponent) = if bits <= 64 {
            ((total << (64 - bits)) as u64, base - (64 - bits))
        } else {
            let drop = (bits - 64) as u32;
            let top = (total >> drop) as u64;
            let half = (total >> (drop - 1)) & 1 == 1;
            let rest = total & ((1u128 << (drop - 1)) - 1) != 0;
            round_even(top, half, rest, base + drop as i64)
        };
        finish(big.negative, significand, exponent)
    }

    /// `%.17Lf`, trailing fraction zeros (and a bare point) removed, "-0" as "0": Redis's
    /// `ld2string(..., LD_STR_HUMAN)`.
    /// The nearest `f64` (infinite when beyond its range): enough for timeouts.
    pub fn to_f64(self) -> f64 {
        let magnitude =
            self.significand as f64 * 2f64.powi(self.exponent.clamp(-20_000, 20_000) as i32);
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }

    pub fn to_human_string(self) -> String {
        let scaled = self.scaled_fraction_digits();
        let mut digits = scaled.to_decimal();
        let width = FRACTION_DIGITS as usize + 1;
        if digits.len() < width {
            digits.insert_str(0, &"0".repeat(width - digits.len()));
        }
        let point = digits.len() - FRACTION_DIGITS as usize;
        let mut text = String::with_capacity(digits.len() + 2);
        if self.negative {
            text.push('-');
        }
        text.push_str(&digits[..point]);
        text.push('.');
        text.push_str(&digits[point..]);
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        if trimmed == "-0" {
            return "0".to_string();
        }
        trimmed.to_string()
    }

    /// `|self| * 10^17` rounded to nearest even, as printf rounds the exact binary value.
    fn scaled_fraction_digits(self) -> Big {
        let scaled = self.significand as u128 * 10u128.pow(FRACTION_DIGITS);
        if self.exponent >= 0 {
            let mut big = Big::from_u128(scaled);
            big.shift_left(self.exponent as u64);
            return big;
        }
        let shift = (-self.exponent) as u64;
        if shift >= 128 {
            // significand * 10^17 < 2^121, so this is below one half: rounds to 0.
            return Big::from_u128(0);
        }
        let shift = shift as u32;
        let quotient = scaled >> shift;
        let remainder = scaled & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let round_up = remainder > half || (remainder == half && quotient & 1 == 1);
        Big::from_u128(quotient + round_up as u128)
    }
}

fn round_even(top: u64, half: bool, rest: bool, exponent: i64) -> (u64, i64) {
    if half && (rest || top & 1 == 1) {
        match top.checked_add(1) {
            Some(rounded) => (rounded, exponent),
            None => (1u64 << 63, exponent + 1),
        }
    } else {
        (top, exponent)
    }
}

fn finish(negative: bool, significand: u64, exponent: i64) -> Option<Extended> {
    debug_assert!(significand >> 63 == 1);
    if exponent > EXPONENT_MAX {
        return None;
    }
    Some(Extended {
        negative,
        significand,
        exponent,
    })
}

/// Redis's `string2ld`: glibc `strtold` on the whole argument (decimal, hex, `inf`,
/// `infinity`), refusing leading spaces, trailing bytes, NaN, overflow and underflow to 0.
pub fn parse(text: &[u8]) -> Option<Parsed> {
    if text.is_empty() || text.len() >= INPUT_BYTES_MAX || text[0].is_ascii_whitespace() {
        return None;
    }
    let (negative, body) = match text[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Parsed::Infinite);
    }
    let hex = body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    let value = if hex {
        parse_number(negative, &body[2..], 16)?
    } else {
        parse_number(negative, body, 10)?
    };
    Some(Parsed::Finite(value))
}

/// Digits with an optional point, then an optional exponent (`e` decimal power of ten,
/// `p` binary power of two for hex), all of it or nothing.
fn parse_number(negative: bool, body: &[u8], radix: u32) -> Option<Extended> {
    let mut mantissa = Big::from_u128(0);
    let mut fraction_digits: i64 = 0;
    let mut digits = 0usize;
    let mut seen_point = false;
    let mut position = 0;
    while position < body.len() {
        let c = body[position];
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(digit) = (c as char).to_digit(radix) {
            mantissa.multiply_add(radix, digit);
            digits += 1;
            if seen_point {
                fraction_digits += 1;
            }
        } else {
            break;
        }
        position += 1;
    }
    if digits == 0 {
        return None;
    }
    let mut exponent: i64 = 0;
    if position < body.len() {
        let marker = body[position] | 0x20;
        let expected = if radix == 16 { b'p' } else { b'e' };
        if marker != expected {
            return None;
        }
        let mut rest = &body[position + 1..];
        let exponent_negative = match rest.first() {
            Some(b'-') => {
                rest = &rest[1..];
                true
            }
            Some(b'+') => {
                rest = &rest[1..];
                false
            }
            _ => false,
        };
        if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for &c in rest {
            // Saturate: anything this large is far outside the format anyway.
            exponent = (exponent * 10 + (c - b'0') as i64).min(1 << 40);
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    if mantissa.bit_length() == 0 {
        return Some(Extended {
            negative,
            ..Extended::ZERO
        });
    }
    let value = if radix == 16 {
        let binary = exponent - 4 * fraction_digits;
        let top = binary + mantissa.bit_length() as i64;
        if !(EXPONENT_MIN..=EXPONENT_MAX + 64 + 1).contains(&top) {
            return None;
        }
        Extended::from_big(negative, &mantissa, binary, false)?
    } else {
        decimal_to_extended(negative, mantissa, exponent - fraction_digits)?
    };
    let half_subnormal = value.exponent == EXPONENT_MIN && value.significand == 1 << 63;
    if value.exponent < EXPONENT_MIN || half_subnormal {
        return None;
    }
    Some(value)
}

/// `mantissa * 10^power`, correctly rounded; None on overflow or underflow to zero.
fn decimal_to_extended(negative: bool, mantissa: Big, power: i64) -> Option<Extended> {
    // log10(2) bounds on the magnitude before any big arithmetic, so absurd exponents cost
    // nothing: 2^bits > mantissa >= 2^(bits-1).
    let bits = mantissa.bit_length() as i64;
    let decimal_magnitude = (bits as f64 * std::f64::consts::LOG10_2) as i64 + power;
    if !(-4970..=4940).contains(&decimal_magnitude) {
        return None;
    }
    if power >= 0 {
        let mut scaled = mantissa;
        for _ in 0..power {
            scaled.multiply_add(10, 0);
        }
        return Extended::from_big(negative, &scaled, 0, false);
    }
    let mut divisor = Big::from_u128(1);
    for _ in 0..(-power) {
        divisor.multiply_add(10, 0);
    }
    // Enough quotient bits (>= 66) for the rounding bit and a sticky remainder.
    let shift = (66 + divisor.bit_length() as i64 - bits).max(0) as u64;
    let mut numerator = mantissa;
    numerator.shift_left(shift);
    let (quotient, remainder_nonzero) = numerator.divide(&divisor);
    Extended::from_big(negative, &quotient, -(shift as i64), remainder_nonzero)
}

/// A little-endian unsigned big integer of 32-bit limbs: only what the conversions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Big {
    limbs: Vec<u32>,
}

impl Big {
    fn from_u128(mut value: u128) -> Big {
        let mut limbs = Vec::new();
        while value != 0 {
            limbs.push(value as u32);
            value >>= 32;
        }
        Big { limbs }
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn bit_length(&self) -> u64 {
        match self.limbs.last() {
            None => 0,
            Some(&top) => self.limbs.len() as u64 * 32 - top.leading_zeros() as u64,
        }
    }

    fn bit(&self, index: u64) -> bool {
        let limb = (index / 32) as usize;
        limb < self.limbs.len() && (self.limbs[limb] >> (index % 32)) & 1 == 1
    }

    /// Any bit set strictly below `index`.
    fn any_below(&self, index: u64) -> bool {
        let whole = (index / 32) as usize;
        if self.limbs[..whole.min(self.limbs.len())]
            .iter()
            .any(|&limb| limb != 0)
        {
            return true;
        }
        let partial = index % 32;
        whole < self.limbs.len() && partial > 0 && self.limbs[whole] & ((1 << partial) - 1) != 0
    }

    fn low_u64(&self) -> u64 {
        let low = self.limbs.first().copied().unwrap_or(0) as u64;
        let high = self.limbs.get(1).copied().unwrap_or(0) as u64;
        low | (high << 32)
    }

    fn multiply_add(&mut self, factor: u32, addend: u32) {
        let mut carry = addend as u64;
        for limb in self.limbs.iter_mut() {
            let product = *limb as u64 * factor as u64 + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn shift_left(&mut self, bits: u64) {
        if self.limbs.is_empty() {
            return;
        }
        let whole = (bits / 32) as usize;
        let partial = (bits % 32) as u32;
        if partial != 0 {
            let mut carry = 0u32;
            for limb in self.limbs.iter_mut() {
                let next = *limb >> (32 - partial);
                *limb = (*limb << partial) | carry;
                carry = next;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        if whole > 0 {
            self.limbs.splice(0..0, std::iter::repeat_n(0, whole));
        }
    }

    fn shifted_right(&self, bits: u64) -> Big {
        let whole = (bits / 32) as usize;
        let partial = (bits % 32) as u32;
        if whole >= self.limbs.len() {
            return Big { limbs: Vec::new() };
        }
        let mut limbs: Vec<u32> = self.limbs[whole..].to_vec();
        if partial != 0 {
            for index in 0..limbs.len() {
                let high = limbs.get(index + 1).copied().unwrap_or(0);
                limbs[index] = (limbs[index] >> partial) | (high << (32 - partial));
            }
        }
        let mut result = Big { limbs };
        result.trim();
        result
    }

    fn compare(&self, other: &Big) -> std::cmp::Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    fn subtract(&mut self, other: &Big) {
        debug_assert!(self.compare(other) != std::cmp::Ordering::Less);
        let mut borrow = 0i64;
        for index in 0..self.limbs.len() {
            let right = other.limbs.get(index).copied().unwrap_or(0) as i64;
            let mut difference = self.limbs[index] as i64 - right - borrow;
            borrow = 0;
            if difference < 0 {
                difference += 1 << 32;
                borrow = 1;
            }
            self.limbs[index] = difference as u32;
        }
        debug_assert_eq!(borrow, 0);
        self.trim();
    }

    /// Schoolbook binary long division: the quotient and whether a remainder is left.
    /// One step per quotient bit; callers keep the quotient near 66 bits.
    fn divide(mut self, divisor: &Big) -> (Big, bool) {
        assert!(divisor.bit_length() > 0, "division by zero");
        let mut quotient = Big { limbs: Vec::new() };
        let span = self.bit_length().saturating_sub(divisor.bit_length());
        let mut shifted = divisor.clone();
        shifted.shift_left(span);
        quotient.limbs = vec![0; (span / 32 + 1) as usize];
        for position in (0..=span).rev() {
            if self.compare(&shifted) != std::cmp::Ordering::Less {
                self.subtract(&shifted);
                quotient.limbs[(position / 32) as usize] |= 1 << (position % 32);
            }
            shifted = shifted.shifted_right(1);
        }
        quotient.trim();
        (quotient, !self.limbs.is_empty())
    }

    /// Decimal digits, most significant first ("0" for zero).
    fn to_decimal(&self) -> String {
        let mut value = self.clone();
        let mut chunks = Vec::new();
        while !value.limbs.is_empty() {
            let mut remainder = 0u64;
            for limb in value.limbs.iter_mut().rev() {
                let current = (remainder << 32) | *limb as u64;
                *limb = (current / 1_000_000_000) as u32;
                remainder = current % 1_000_000_000;
            }
            value.trim();
            chunks.push(remainder as u32);
        }
        let Some((last, rest)) = chunks.split_last() else {
            return "0".to_string();
        };
        let mut text = last.to_string();
        for chunk in rest.iter().rev() {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}
