//! gRPC's message framing (the "Length-Prefixed-Message" of gRPC over HTTP/2): a 1-byte
//! compressed flag, a 4-byte big-endian length, then the message. A body is any number of
//! them, split across HTTP/2 DATA frames anywhere (the tap hands the adapters the whole body).
//! Compressed messages (`grpc-encoding: gzip`) are inflated here, off the live path, up to
//! [`MAX_MESSAGE_BYTES`].

use std::borrow::Cow;
use std::io::Read;

use super::DecodeError;

/// The most one message may hold once inflated: 64 MiB, sixteen times gRPC's default receive
/// limit (4 MiB), so any message a server accepts is read, and a compression bomb is not.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The messages of a gRPC body, in order. `encoding` is the `grpc-encoding` header (how the
/// messages with the compressed flag set were compressed).
pub fn messages<'a>(
    body: &'a [u8],
    encoding: Option<&[u8]>,
) -> Result<Vec<Cow<'a, [u8]>>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(DecodeError::Invalid(
                "gRPC body ends inside a message prefix".into(),
            ));
        }
        let compressed = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        rest = &rest[5..];
        if len > rest.len() {
            return Err(DecodeError::Invalid(format!(
                "gRPC message of {len} bytes runs past the body ({} left)",
                rest.len()
            )));
        }
        let (msg, next) = rest.split_at(len);
        rest = next;
        out.push(match compressed {
            0 => Cow::Borrowed(msg),
            1 => Cow::Owned(inflate(msg, encoding)?),
            f => {
                return Err(DecodeError::Invalid(format!(
                    "gRPC message flag {f} is neither 0 nor 1"
                )))
            }
        });
    }
    Ok(out)
}

fn inflate(msg: &[u8], encoding: Option<&[u8]>) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    let read = match encoding.map(<[u8]>::trim_ascii) {
        Some(b"gzip") => flate2::read::GzDecoder::new(msg)
            .take(limit)
            .read_to_end(&mut out),
        Some(b"deflate") => flate2::read::ZlibDecoder::new(msg)
            .take(limit)
            .read_to_end(&mut out),
        other => {
            return Err(DecodeError::Invalid(format!(
                "compressed gRPC message with unsupported grpc-encoding {:?}",
                other.map(String::from_utf8_lossy)
            )))
        }
    };
    read.map_err(|e| DecodeError::Invalid(format!("compressed gRPC message: {e}")))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::Invalid(format!(
            "gRPC message inflates past {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// Frame `msg` as one uncompressed gRPC message (tests, benchmarks, the corpus).
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn several_messages_and_truncation() {
        let mut body = frame(b"abc");
        body.extend(frame(b""));
        body.extend(frame(b"xy"));
        let m = messages(&body, None).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(&*m[0], b"abc");
        assert_eq!(&*m[1], b"");
        assert_eq!(&*m[2], b"xy");
        assert!(messages(&body[..body.len() - 1], None).is_err());
        assert!(messages(&body[..3], None).is_err());
        assert!(messages(&[2, 0, 0, 0, 0], None).is_err());
        assert!(messages(&[], None).unwrap().is_empty());
    }

    #[test]
    fn gzip_messages_inflate_and_unknown_encodings_fail() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello tensors").unwrap();
        let packed = gz.finish().unwrap();
        let mut body = vec![1];
        body.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        body.extend_from_slice(&packed);
        let m = messages(&body, Some(b"gzip")).unwrap();
        assert_eq!(&*m[0], b"hello tensors");
        assert!(messages(&body, Some(b"snappy")).is_err());
        assert!(messages(&body, None).is_err());
        assert!(
            messages(&body, Some(b"deflate")).is_err(),
            "gzip bytes are not zlib"
        );
    }
}
