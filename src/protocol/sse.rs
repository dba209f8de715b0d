//! An incremental Server-Sent Events parser (the WHATWG "event stream" format): fed the body
//! chunks as they arrived, it yields each event with the arrival time of the chunk that completed
//! it, which is when a client could first have seen it. Small enough to own: OpenAI-compatible
//! streams only need `data:` lines, and the chunk times have to travel with the bytes.

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, empty when absent (the default type "message").
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// Arrival time of the chunk holding the blank line that ended the event.
    pub at: Duration,
}

/// Errors that make a stream unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("event stream is not UTF-8")]
    Utf8,
    #[error("event stream line longer than {0} bytes")]
    LineTooLong(usize),
}

/// Longest line kept: a single chunk of an LLM stream is well under this; anything longer is not
/// an event stream.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    /// Nothing has been read yet (a UTF-8 byte order mark may start the stream).
    fresh: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self {
            fresh: true,
            ..Self::default()
        }
    }

    /// Feed one chunk that arrived at `at`; completed events are pushed to `out`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        at: Duration,
        out: &mut Vec<Event>,
    ) -> Result<(), SseError> {
        let mut chunk = chunk;
        if self.fresh && !chunk.is_empty() {
            self.fresh = false;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(at, out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(at, out)?;
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err(SseError::LineTooLong(MAX_LINE));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// Whether bytes of an unfinished line or event are pending (a stream cut mid-event).
    pub fn pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn end_line(&mut self, at: Duration, out: &mut Vec<Event>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(Event {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                    at,
                });
            } else {
                self.event.clear();
            }
            self.has_data = false;
            return Ok(());
        }
        let line = std::str::from_utf8(&line).map_err(|_| SseError::Utf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            // `id` and `retry` matter to a reconnecting client, not to us.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn events_split_across_chunks_carry_the_completing_time() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"data: {\"a\"", ms(1), &mut out).unwrap();
        assert!(out.is_empty());
        p.feed(b":1}\n\ndata: x\r\n", ms(2), &mut out).unwrap();
        p.feed(
            b"\r\n: comment\nevent: e\ndata: y\ndata: z\n\n",
            ms(3),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Event {
                    event: String::new(),
                    data: "{\"a\":1}".into(),
                    at: ms(2)
                },
                Event {
                    event: String::new(),
                    data: "x".into(),
                    at: ms(3)
                },
                Event {
                    event: "e".into(),
                    data: "y\nz".into(),
                    at: ms(3)
                },
            ]
        );
        assert!(!p.pending());
    }

    #[test]
    fn cr_alone_and_crlf_split_between_chunks() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"\xEF\xBB\xBFdata:a\r", ms(1), &mut out).unwrap();
        p.feed(b"\n\r", ms(2), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "a");
        assert_eq!(out[0].at, ms(2));
        p.feed(b"data: cut", ms(3), &mut out).unwrap();
        assert!(p.pending());
    }

    #[test]
    fn non_utf8_is_an_error() {
        let mut p = Parser::new();
        assert_eq!(
            p.feed(b"data: \xff\n\n", ms(0), &mut Vec::new()),
            Err(SseError::Utf8)
        );
    }
}
