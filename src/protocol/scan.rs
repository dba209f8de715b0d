//! Tensor `data` read at scanning speed: the elements of a JSON array (nested to any shape) are
//! walked byte by byte and only those in the first `take` columns of each row are parsed into
//! numbers or strings; the rest are checked as `Flat` would check them (type, non-finite string
//! spellings, numbers out of range) and counted, but never converted. An image input of 150,528
//! floats of which the inspector reads 32 columns costs a scan, not 150,528 float parses.
//!
//! The array has already been checked as JSON by serde_json (it arrives as a `RawValue`), but
//! the scanner still bounds-checks every byte: a bad body is an error, never a panic.

use serde::de::Error as _;

use super::tensor::{special_float, Flat};
use super::DecodeError;

/// Deepest nesting accepted in tensor data, as `Flat` (serde_json itself stops at 128).
const MAX_DEPTH: usize = 32;

/// What a scan found: the kept elements as `Flat` holds them (type flags over every element),
/// the element count, and the non-finite values among every element.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    pub flat: Flat,
    pub count: usize,
    pub nan: u64,
    pub inf: u64,
}

fn json_error(why: &str) -> DecodeError {
    DecodeError::Json(serde_json::Error::custom(why))
}

/// Byte classes for the scan's inner loop: a table lookup per byte, not a chain of compares.
const OTHER: u8 = 0;
const SKIP: u8 = 1; // whitespace and commas
const NUM: u8 = 2; // digits, signs, the decimal point
const EXP: u8 = 3; // e, E

const CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    t[b' ' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b'\r' as usize] = SKIP;
    t[b'\t' as usize] = SKIP;
    t[b',' as usize] = SKIP;
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = NUM;
        d += 1;
    }
    t[b'-' as usize] = NUM;
    t[b'+' as usize] = NUM;
    t[b'.' as usize] = NUM;
    t[b'e' as usize] = EXP;
    t[b'E' as usize] = EXP;
    t
};

/// Scans `raw` (a JSON array or scalar), keeping element `i` when `i % width < take`.
pub(super) fn scan(raw: &[u8], width: usize, take: usize) -> Result<Scanned, DecodeError> {
    let mut out = Scanned::default();
    let mut col = 0usize;
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = raw.get(i) {
        match CLASS[b as usize] {
            SKIP => i += 1,
            NUM | EXP => {
                // The hot path: a number, usually in a column nobody reads.
                let start = i;
                let mut big_exponent = false;
                // Eight bytes at a time up to the first that is not a digit, point or minus
                // sign; the byte loop below takes it from there (exponents, the last bytes).
                while let Some(chunk) = raw.get(i..i + 8) {
                    let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
                    let plain = plain_number_bytes(word);
                    if plain != HIGH {
                        i += ((!plain & HIGH).trailing_zeros() / 8) as usize;
                        break;
                    }
                    i += 8;
                }
                i += usize::from(i == start);
                while let Some(&c) = raw.get(i) {
                    match CLASS[c as usize] {
                        NUM => i += 1,
                        EXP => {
                            big_exponent |= exponent_digits(&raw[i + 1..]) >= 3;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                let token = &raw[start..i];
                out.flat.numeric = true;
                if col < take {
                    out.flat.nums.push(number(token)?);
                } else if big_exponent || token.len() > 300 {
                    // Out of f64's range is an error serde_json reports: check as it would.
                    number(token)?;
                }
                next(&mut out.count, &mut col, width);
            }
            _ => match b {
                b'[' => {
                    if depth >= MAX_DEPTH {
                        return Err(json_error("tensor data nested too deeply"));
                    }
                    depth += 1;
                    i += 1;
                }
                b']' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                b'"' => {
                    i = string(raw, i, col < take, &mut out)?;
                    next(&mut out.count, &mut col, width);
                }
                b't' | b'f' => {
                    let (v, len) = if raw[i..].starts_with(b"true") {
                        (1.0, 4)
                    } else if raw[i..].starts_with(b"false") {
                        (0.0, 5)
                    } else {
                        return Err(json_error("invalid literal in tensor data"));
                    };
                    out.flat.numeric = true;
                    if col < take {
                        out.flat.nums.push(v);
                    }
                    i += len;
                    next(&mut out.count, &mut col, width);
                }
                // `null` and objects: what `Flat` rejects.
                _ => {
                    return Err(json_error(
                        "tensor data must be numbers, booleans or strings",
                    ))
                }
            },
        }
    }
    Ok(out)
}

/// The string starting at `start`: a non-finite spelling is a number (counted), anything else
/// text; kept, it is also pushed as `Flat` would. Returns the index just past it.
fn string(raw: &[u8], start: usize, keep: bool, out: &mut Scanned) -> Result<usize, DecodeError> {
    let (end, escaped) = string_end(raw, start)?;
    let token = &raw[start..end];
    let owned;
    let s: &str = if escaped {
        owned = serde_json::from_slice::<String>(token).map_err(DecodeError::Json)?;
        &owned
    } else {
        std::str::from_utf8(&token[1..token.len() - 1]).map_err(|_| DecodeError::Utf8)?
    };
    match special_float(s) {
        Some(x) => {
            if x.is_nan() {
                out.nan += 1;
            } else {
                out.inf += 1;
            }
            if keep {
                out.flat.nums.push(x);
            }
        }
        None => out.flat.text = true,
    }
    if keep {
        out.flat.strs.push(s.to_string());
    }
    Ok(end)
}

const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (little-endian: the first byte lowest) that is in
/// `-` ..= `9` (minus, point, digits; a `/` there would not be JSON, which serde_json has
/// already ruled out). The adds run on the low seven bits, so no carry crosses bytes.
fn plain_number_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low = word & !HIGH;
    let at_least_minus = low.wrapping_add(ONES * (0x80 - u64::from(b'-')));
    let past_nine = low.wrapping_add(ONES * (0x80 - u64::from(b'9') - 1));
    at_least_minus & !past_nine & !word & HIGH
}

/// Digits of an exponent (after its sign): three or more may put a number out of range.
fn exponent_digits(rest: &[u8]) -> usize {
    let rest = match rest.first() {
        Some(b'+' | b'-') => &rest[1..],
        _ => rest,
    };
    rest.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// One more element: the count, and the column it leaves for the next.
fn next(count: &mut usize, col: &mut usize, width: usize) {
    *count += 1;
    *col += 1;
    if *col >= width {
        *col = 0;
    }
}

/// A number exactly as serde_json reads it into `Flat` (integers through u64/i64, the rest
/// by serde_json's own float parsing), so kept values equal the full parse's bit for bit.
fn number(token: &[u8]) -> Result<f64, DecodeError> {
    serde_json::from_slice::<f64>(token).map_err(DecodeError::Json)
}

/// The index just past the string starting at `start` (a `"`), and whether it holds escapes.
fn string_end(raw: &[u8], start: usize) -> Result<(usize, bool), DecodeError> {
    let mut escaped = false;
    let mut i = start + 1;
    while i < raw.len() {
        match raw[i] {
            b'"' => return Ok((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err(json_error("unterminated string in tensor data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan keeping every column agrees with `Flat`'s full parse, and its counts with
    /// every element's.
    fn agrees(data: &str) {
        let full: Result<Flat, _> = serde_json::from_str(data);
        let scanned = scan(data.as_bytes(), 1, 1);
        match (full, scanned) {
            (Ok(full), Ok(s)) => {
                assert_eq!(s.flat.strs, full.strs, "{data}");
                assert_eq!(s.flat.text, full.text, "{data}");
                assert_eq!(s.flat.numeric, full.numeric, "{data}");
                assert_eq!(s.flat.nums.len(), full.nums.len(), "{data}");
                for (a, b) in s.flat.nums.iter().zip(&full.nums) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{data}");
                }
                let nan = full.nums.iter().filter(|x| x.is_nan()).count() as u64;
                let inf = full.nums.iter().filter(|x| x.is_infinite()).count() as u64;
                assert_eq!((s.nan, s.inf), (nan, inf), "{data}");
                assert_eq!(s.count, full.nums.len().max(full.strs.len()), "{data}");
            }
            (Err(_), Err(_)) => {}
            (full, scanned) => panic!("{data}: full {full:?}, scanned {scanned:?}"),
        }
    }

    #[test]
    fn scanning_agrees_with_the_full_parse() {
        for data in [
            "[]",
            "[1, 2.5, -3, 1e-7, 0.1234567890123456789, 18446744073709551617, -9223372036854775809]",
            "[[1, 2], [3, 4]]",
            "[true, false, \"NaN\", \"-Infinity\", \"inf\"]",
            "[\"setosa\", \"a\\\"b\", \"\\u00e9\", \"\\u004eaN\"]",
            "[1, null]",
            "[{\"a\": 1}]",
            "[1e400]",
            "[-1E+308, 1.7976931348623157e308, 2e-400]",
            "7",
            "\"NaN\"",
            &format!("{}1{}", "[".repeat(32), "]".repeat(32)),
            &format!("{}1{}", "[".repeat(33), "]".repeat(33)),
        ] {
            agrees(data);
        }
    }

    #[test]
    fn eight_number_bytes_at_a_time() {
        let word = |b: &[u8; 8]| u64::from_le_bytes(*b);
        assert_eq!(plain_number_bytes(word(b"-1.23456")), HIGH);
        assert_eq!(plain_number_bytes(word(b"99999999")), HIGH);
        assert_eq!(
            (!plain_number_bytes(word(b"1.2,4567")) & HIGH).trailing_zeros() / 8,
            3
        );
        for bad in [
            b"1.2345,7",
            b"1e345678",
            b"12345 78",
            b"]1234567",
            b"1234567\xc3",
        ] {
            assert_ne!(plain_number_bytes(word(bad)), HIGH, "{bad:?}");
        }
        // Every byte value in every position: only `-` ..= `9` passes.
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut w = *b"00000000";
                w[pos] = b;
                let plain = plain_number_bytes(word(&w)) == HIGH;
                assert_eq!(plain, (b'-'..=b'9').contains(&b), "{b} at {pos}");
            }
        }
    }

    #[test]
    fn only_the_first_columns_are_kept_but_all_are_checked_and_counted() {
        let s = scan(b"[[1, 2, \"NaN\"], [4, \"Infinity\", 6]]", 3, 1).unwrap();
        assert_eq!(s.flat.nums, [1.0, 4.0]);
        assert_eq!((s.count, s.nan, s.inf), (6, 1, 1));
        assert!(s.flat.numeric && !s.flat.text);
        let s = scan(b"[1, 2, \"text\"]", 3, 0).unwrap();
        assert!(s.flat.nums.is_empty() && s.flat.text);
        assert!(scan(b"[1, 2, 1e999]", 3, 1).is_err());
        assert!(scan(b"[1, 2, null]", 3, 1).is_err());
        assert_eq!(scan(b"[[], []]", 0, 0).unwrap().count, 0);
    }

    /// The adapter reading only the first `n` input columns agrees with the one reading all:
    /// the same answer or error, the same inference but for the columns it left out.
    fn reads_agree(ex: &crate::protocol::Exchange<'_>) {
        use crate::protocol::{kserve_v2, Rule};
        let full = kserve_v2::decode(ex, &Rule::default());
        for n in [0, 1, 2, 3, 5, 32] {
            let part = kserve_v2::decode(ex, &Rule::default().reading_features(n));
            match (&full, part) {
                (Ok(full), Ok(part)) => {
                    let mut want = full.clone();
                    if let Some(i) = want.as_mut().and_then(|w| w.inputs.as_mut()) {
                        i.kept = i.features.min(n);
                        i.values = i
                            .values
                            .chunks_exact(i.features.max(1))
                            .flat_map(|row| row[..i.kept].to_vec())
                            .collect();
                    }
                    // Debug, not ==: NaN inputs are equal there.
                    assert_eq!(format!("{want:?}"), format!("{part:?}"), "reading {n}");
                }
                (Err(_), Err(_)) => {}
                (full, part) => panic!("reading {n}: all {full:?}, some {part:?}"),
            }
        }
    }

    #[test]
    fn reading_some_columns_agrees_with_reading_all() {
        use crate::protocol::OwnedExchange;
        let resp =
            r#"{"outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [1, 0]}]}"#;
        for req in [
            r#"{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}"#,
            // Shape after data, several inputs (one not in the table), BYTES, NaN spellings.
            r#"{"inputs": [{"name": "a", "datatype": "FP64", "data": [1, "NaN", 3, 4], "shape": [2, 2]},
                {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["p", "q"]},
                {"name": "b", "shape": [2, 3], "datatype": "INT64", "data": [1, 2, 3, 4, 5, 6]},
                {"name": "c", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
                {"name": "d", "shape": [2, 1], "datatype": "BOOL", "data": [true, false]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [NaN, -Infinity, 1e-3]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, "a"]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 1e999]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP99", "data": [1, 2, 3]}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [0, 3], "datatype": "FP32", "data": []}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [], "datatype": "FP32", "data": 7}]}"#,
            r#"{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32"}]}"#,
        ] {
            let ex = OwnedExchange::simple("/v2/models/m/infer", req.as_bytes(), resp.as_bytes());
            reads_agree(&ex.view());
        }
    }

    /// The same over the fuzz corpus, each seed also cut short and with bytes changed.
    #[test]
    fn reading_some_columns_agrees_over_the_corpus() {
        use crate::protocol::fuzzing;
        use crate::routes::config::Protocol;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/kserve_v2");
        for entry in std::fs::read_dir(dir).unwrap() {
            let seed = std::fs::read(entry.unwrap().path()).unwrap();
            let mut variants = vec![seed.clone()];
            for cut in (0..seed.len()).step_by(7) {
                variants.push(seed[..cut].to_vec());
            }
            for at in (0..seed.len()).step_by(5) {
                for b in [b'[', b']', b'"', b'n', b'1', b'e', b','] {
                    let mut v = seed.clone();
                    v[at] = b;
                    variants.push(v);
                }
            }
            for v in variants {
                reads_agree(&fuzzing::exchange(Protocol::KserveV2, &v).view());
            }
        }
    }
}
