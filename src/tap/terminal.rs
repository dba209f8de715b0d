//! Whether a server-sent event stream has passed its terminal event (`data: [DONE]`, which
//! ends every OpenAI-compatible stream). A client that read it has its whole answer and may
//! close before the HTTP body's own end arrives; such a stream is complete, not aborted.
//!
//! Fed every response chunk of an event stream on the live path, so it only copies the last
//! few bytes into a fixed buffer: no allocation, no parsing, no protocol module.

/// The last bytes of the stream, enough to hold `data: [DONE]` and its blank line.
#[derive(Debug, Default, Clone, Copy)]
pub struct TerminalEvent {
    tail: [u8; TAIL],
    len: usize,
    /// Bytes before the tail were let go of (the tail is not the whole stream).
    dropped: bool,
}

/// `data: [DONE]` (12 bytes) plus a `\r\n\r\n` blank line and one byte before the field
/// (the line end that proves `data:` starts a line).
const TAIL: usize = 24;

impl TerminalEvent {
    /// Take in one chunk of the stream as it passes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.len() >= TAIL {
            self.tail.copy_from_slice(&chunk[chunk.len() - TAIL..]);
            self.dropped |= self.len > 0 || chunk.len() > TAIL;
            self.len = TAIL;
            return;
        }
        let keep = (TAIL - chunk.len()).min(self.len);
        self.dropped |= keep < self.len;
        // Slide the newest `keep` bytes held to the front, then append the chunk.
        self.tail.copy_within(self.len - keep..self.len, 0);
        self.tail[keep..keep + chunk.len()].copy_from_slice(chunk);
        self.len = keep + chunk.len();
    }

    /// The stream so far ends with a complete `data: [DONE]` event (the line at the start of
    /// the stream or of a line, `data:` with or without its space, then a blank line).
    pub fn seen(&self) -> bool {
        let bytes = &self.tail[..self.len];
        // The event ends with its line end plus an empty line: two line ends, each `\n`,
        // `\r\n` or `\r`.
        let body_end = bytes
            .iter()
            .rposition(|b| *b != b'\n' && *b != b'\r')
            .map_or(0, |i| i + 1);
        if line_ends(&bytes[body_end..]) < 2 {
            return false;
        }
        let body = &bytes[..body_end];
        let Some(before) = body.strip_suffix(b"[DONE]") else {
            return false;
        };
        let Some(before) = before
            .strip_suffix(b"data: ")
            .or_else(|| before.strip_suffix(b"data:"))
        else {
            return false;
        };
        // With nothing before it, the event starts the stream only if the tail holds all of it.
        before
            .last()
            .map_or(!self.dropped, |b| *b == b'\n' || *b == b'\r')
    }
}

/// How many line ends a run of `\r` and `\n` holds (`\r\n` is one).
fn line_ends(run: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < run.len() {
        if run[i] == b'\r' && run.get(i + 1) == Some(&b'\n') {
            i += 1;
        }
        n += 1;
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&str]) -> bool {
        let mut t = TerminalEvent::default();
        for c in chunks {
            t.feed(c.as_bytes());
        }
        t.seen()
    }

    #[test]
    fn done_ends_the_stream_in_any_split_and_line_ending() {
        let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
        assert!(fed(&[events]));
        // Every split into two chunks, and one byte at a time.
        for i in 0..events.len() {
            assert!(fed(&[&events[..i], &events[i..]]), "split at {i}");
        }
        let bytes: Vec<String> = events.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert!(fed(&refs));
        assert!(fed(&["data:[DONE]\r\n\r\n"]));
        assert!(fed(&["data: {}\r\n\r\n", "data: [DONE]\r\n\r\n"]));
        assert!(fed(&["x\r\rdata: [DONE]\r\r"]));
        assert!(fed(&["data: [DONE]\n\n"]));
    }

    #[test]
    fn anything_short_of_a_whole_done_event_is_not_terminal() {
        assert!(!fed(&[]));
        assert!(!fed(&["data: {}\n\n"]));
        // The event's blank line has not arrived.
        assert!(!fed(&["data: {}\n\ndata: [DONE]\n"]));
        assert!(!fed(&["data: {}\n\ndata: [DONE]"]));
        // Not at the start of a line, or not the data field.
        assert!(!fed(&["data: {}\n\nxdata: [DONE]\n\n"]));
        assert!(!fed(&["data: {\"text\":\"data: [DONE]\n\n"]));
        assert!(!fed(&["data: {}\n\nevent: [DONE]\n\n"]));
        // Events after [DONE] (none are expected, but then the stream went on).
        assert!(!fed(&["data: [DONE]\n\ndata: {}\n\n"]));
        // A long chunk whose last bytes are not the event.
        let long = format!("data: [DONE]\n\n{}", "data: {}\n\n".repeat(10));
        assert!(!fed(&[&long]));
    }
}
