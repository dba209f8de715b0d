//! Tensor data shared by the adapters: nested JSON arrays flattened straight into numbers or
//! strings (no `serde_json::Value` per element: a 1000-row batch would be thousands of small
//! allocations), the KServe binary tensor encoding, and the bare `NaN`/`Infinity` tokens that
//! Python's `json.dumps` writes but strict JSON parsers reject.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::DecodeError;

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Num(Vec<f64>),
    Str(Vec<String>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Num(v) => v.len(),
            Values::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor seen as `rows` rows of `width` elements (rank 0 and 1: one element per row).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub width: usize,
    pub values: Values,
}

impl Matrix {
    /// Rows and width from a shape, checking that it holds exactly `values.len()` elements.
    pub fn from_shape(name: &str, shape: &[i64], values: Values) -> Result<Self, DecodeError> {
        match Self::dims(shape) {
            Some((total, rows, width)) if total == values.len() => Ok(Self {
                rows,
                width,
                values,
            }),
            _ => Err(DecodeError::Shape {
                tensor: name.to_string(),
                shape: shape.to_vec(),
                elements: values.len(),
            }),
        }
    }

    /// `(elements, rows, width)` of a shape; `None` for a negative or overflowing one.
    pub fn dims(shape: &[i64]) -> Option<(usize, usize, usize)> {
        let mut total: usize = 1;
        for &d in shape {
            total = total.checked_mul(usize::try_from(d).ok()?)?;
        }
        let (rows, width) = match shape {
            [] => (1, 1),
            [n] => (*n as usize, 1),
            [n, ..] => {
                let n = *n as usize;
                (n, total.checked_div(n).unwrap_or(0))
            }
        };
        Some((total, rows, width))
    }

    /// A single row of `width` elements.
    pub fn row_num(&self, r: usize) -> Option<&[f64]> {
        match &self.values {
            Values::Num(v) => v.get(r * self.width..(r + 1) * self.width),
            Values::Str(_) => None,
        }
    }
}

/// Flattened contents of a JSON `data` field: numbers (bools as 0/1) and strings in order.
/// Strings that spell a non-finite float are also kept as numbers, so a numeric tensor with
/// `"NaN"` in it still decodes; whether numbers or strings are wanted is only known from the
/// tensor's `datatype`, which may come after `data` in the object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Flat {
    pub nums: Vec<f64>,
    pub strs: Vec<String>,
    /// A string that is not a float spelling was seen (so `nums` is not usable).
    pub text: bool,
    /// A number or bool was seen (so `strs` is not usable).
    pub numeric: bool,
}

impl Flat {
    /// The values as the datatype wants them.
    pub fn into_values(self, tensor: &str, datatype: &str) -> Result<Values, DecodeError> {
        let bad = |want: &str| {
            DecodeError::Invalid(format!("tensor {tensor:?}: {datatype} data must be {want}"))
        };
        if datatype == "BYTES" {
            if self.numeric {
                return Err(bad("strings"));
            }
            Ok(Values::Str(self.strs))
        } else if is_numeric_datatype(datatype) {
            if self.text {
                return Err(bad("numbers"));
            }
            Ok(Values::Num(self.nums))
        } else {
            Err(DecodeError::Invalid(format!(
                "tensor {tensor:?}: unknown datatype {datatype:?}"
            )))
        }
    }
}

pub fn is_numeric_datatype(d: &str) -> bool {
    matches!(
        d,
        "BOOL"
            | "UINT8"
            | "UINT16"
            | "UINT32"
            | "UINT64"
            | "INT8"
            | "INT16"
            | "INT32"
            | "INT64"
            | "FP16"
            | "BF16"
            | "FP32"
            | "FP64"
    )
}

pub fn is_integer_datatype(d: &str) -> bool {
    d.starts_with("INT") || d.starts_with("UINT") || d == "BOOL"
}

/// `NaN`, `Infinity`, `-Infinity` (and the lower-case forms some servers write) as floats.
pub fn special_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" | "NAN" => Some(f64::NAN),
        "Infinity" | "inf" | "+inf" | "+Infinity" | "INF" => Some(f64::INFINITY),
        "-Infinity" | "-inf" | "-INF" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

impl<'de> de::Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut flat = Flat::default();
        FlatSeed(&mut flat).deserialize(d)?;
        Ok(flat)
    }
}

/// Deepest nesting accepted in tensor data (serde_json itself stops at 128).
const MAX_DEPTH: usize = 32;

struct FlatSeed<'a>(&'a mut Flat);

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(FlatVisitor {
            flat: self.0,
            depth: 0,
        })
    }
}

struct FlatVisitor<'a> {
    flat: &'a mut Flat,
    depth: usize,
}

struct NestedSeed<'a> {
    flat: &'a mut Flat,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(FlatVisitor {
            flat: self.flat,
            depth: self.depth,
        })
    }
}

impl<'de> Visitor<'de> for FlatVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, booleans or strings, possibly in nested arrays")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.flat.numeric = true;
        self.flat.nums.push(if v { 1.0 } else { 0.0 });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.flat.numeric = true;
        self.flat.nums.push(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.flat.numeric = true;
        self.flat.nums.push(v as f64);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.flat.numeric = true;
        self.flat.nums.push(v);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        match special_float(v) {
            Some(x) => self.flat.nums.push(x),
            None => self.flat.text = true,
        }
        self.flat.strs.push(v.to_string());
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("tensor data nested too deeply"));
        }
        if let Some(n) = seq.size_hint() {
            self.flat.nums.reserve(n);
        }
        while seq
            .next_element_seed(NestedSeed {
                flat: self.flat,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Parse JSON, retrying once with bare `NaN` / `Infinity` / `-Infinity` tokens quoted, because
/// Python's `json.dumps` (and so many model servers and clients) writes them unquoted.
pub fn parse_lenient<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(first) => match quote_non_finite(bytes) {
            Some(fixed) => serde_json::from_slice(&fixed).map_err(|_| DecodeError::Json(first)),
            None => Err(DecodeError::Json(first)),
        },
    }
}

/// [`parse_lenient`] for types that borrow from the text: the quoted copy, when one is needed,
/// is kept in `fixed` so that what is parsed can borrow from it.
pub fn parse_lenient_borrowed<'a, T: de::Deserialize<'a>>(
    bytes: &'a [u8],
    fixed: &'a mut Option<Vec<u8>>,
) -> Result<T, DecodeError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(first) => match quote_non_finite(bytes) {
            Some(copy) => {
                let copy: &'a [u8] = fixed.insert(copy);
                serde_json::from_slice(copy).map_err(|_| DecodeError::Json(first))
            }
            None => Err(DecodeError::Json(first)),
        },
    }
}

/// `bytes` with every bare `NaN`, `Infinity` and `-Infinity` outside strings quoted; `None` when
/// there is none.
pub fn quote_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let token = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t));
        match token {
            Some(t) => {
                out.push(b'"');
                out.extend_from_slice(t);
                out.push(b'"');
                i += t.len();
                changed = true;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Decodes a KServe binary tensor (the binary data extension): little-endian fixed-size
/// elements, or for BYTES a 4-byte little-endian length before each element.
pub fn decode_binary(tensor: &str, datatype: &str, raw: &[u8]) -> Result<Values, DecodeError> {
    let bad =
        |why: &str| DecodeError::Invalid(format!("tensor {tensor:?}: binary {datatype} {why}"));
    if datatype == "BYTES" {
        let mut out = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(bad("data ends inside a length prefix"));
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < len {
                return Err(bad("element runs past the data"));
            }
            out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            rest = &rest[len..];
        }
        return Ok(Values::Str(out));
    }
    let size = match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        "UINT64" | "INT64" | "FP64" => 8,
        _ => return Err(bad("is not a known datatype")),
    };
    if !raw.len().is_multiple_of(size) {
        return Err(bad("data length is not a multiple of the element size"));
    }
    let nums = raw
        .chunks_exact(size)
        .map(|c| match datatype {
            "BOOL" | "UINT8" => c[0] as f64,
            "INT8" => c[0] as i8 as f64,
            "UINT16" => u16::from_le_bytes([c[0], c[1]]) as f64,
            "INT16" => i16::from_le_bytes([c[0], c[1]]) as f64,
            "FP16" => f16_to_f64(u16::from_le_bytes([c[0], c[1]])),
            "BF16" => f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64,
            "UINT32" => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "INT32" => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "FP32" => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "UINT64" => u64::from_le_bytes(c.try_into().unwrap_or_default()) as f64,
            "INT64" => i64::from_le_bytes(c.try_into().unwrap_or_default()) as f64,
            _ => f64::from_le_bytes(c.try_into().unwrap_or_default()),
        })
        .collect();
    Ok(Values::Num(nums))
}

/// IEEE 754 half precision to f64 (no `half` crate for one function).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        0x1f if frac == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_data_flattens_in_order() {
        let f: Flat = serde_json::from_str("[[1, 2.5], [true, \"NaN\"]]").unwrap();
        assert_eq!(f.nums[..3], [1.0, 2.5, 1.0]);
        assert!(f.nums[3].is_nan());
        assert!(!f.text);
        let v = f.into_values("x", "FP32").unwrap();
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn strings_for_bytes_and_numbers_for_numeric() {
        let f: Flat = serde_json::from_str("[\"setosa\", \"virginica\"]").unwrap();
        assert!(f.clone().into_values("x", "FP32").is_err());
        assert_eq!(
            f.into_values("x", "BYTES").unwrap(),
            Values::Str(vec!["setosa".into(), "virginica".into()])
        );
        let f: Flat = serde_json::from_str("[1, 2]").unwrap();
        assert!(f.into_values("x", "BYTES").is_err());
    }

    #[test]
    fn shapes_must_match_the_element_count() {
        let m = Matrix::from_shape("t", &[2, 3], Values::Num(vec![0.0; 6])).unwrap();
        assert_eq!((m.rows, m.width), (2, 3));
        assert_eq!(m.row_num(1).unwrap().len(), 3);
        let m = Matrix::from_shape("t", &[4], Values::Num(vec![0.0; 4])).unwrap();
        assert_eq!((m.rows, m.width), (4, 1));
        assert!(Matrix::from_shape("t", &[2, 2], Values::Num(vec![0.0; 5])).is_err());
        assert!(Matrix::from_shape("t", &[-1, 2], Values::Num(vec![0.0; 2])).is_err());
        assert!(Matrix::from_shape("t", &[i64::MAX, i64::MAX], Values::Num(vec![])).is_err());
    }

    #[test]
    fn bare_non_finite_tokens_are_quoted_outside_strings_only() {
        let fixed =
            quote_non_finite(br#"{"a": [NaN, -Infinity, Infinity], "s": "NaN \" NaN"}"#).unwrap();
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            r#"{"a": ["NaN", "-Infinity", "Infinity"], "s": "NaN \" NaN"}"#
        );
        assert!(quote_non_finite(br#"{"a": 1}"#).is_none());
        let f: Flat = parse_lenient(b"[NaN, 1]").unwrap();
        assert!(f.nums[0].is_nan());
    }

    #[test]
    fn binary_tensors() {
        let mut raw = Vec::new();
        for x in [1.5f32, -2.0] {
            raw.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(
            decode_binary("t", "FP32", &raw).unwrap(),
            Values::Num(vec![1.5, -2.0])
        );
        let mut raw = Vec::new();
        for s in ["ab", "c"] {
            raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
            raw.extend_from_slice(s.as_bytes());
        }
        assert_eq!(
            decode_binary("t", "BYTES", &raw).unwrap(),
            Values::Str(vec!["ab".into(), "c".into()])
        );
        assert!(decode_binary("t", "BYTES", &raw[..raw.len() - 1]).is_err());
        assert!(decode_binary("t", "INT64", &[0; 7]).is_err());
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert!(f16_to_f64(0x7c00).is_infinite());
    }
}
