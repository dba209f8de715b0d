//! The live path's per-chunk cost of telling a finished event stream (`data: [DONE]`) from an
//! aborted one: one `TerminalEvent::feed` per response chunk of a `text/event-stream`
//! response, and one `seen` when the body is dropped early. Goal: a few nanoseconds.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use inferwatch::tap::terminal::TerminalEvent;

fn terminal(c: &mut Criterion) {
    // A typical OpenAI chat chunk (one token) and the end of a stream.
    let chunk = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}]}

"#;
    let mut t = TerminalEvent::default();
    c.bench_function("terminal/feed_one_chunk", |b| {
        b.iter(|| t.feed(black_box(chunk)))
    });
    c.bench_function("terminal/feed_small_piece", |b| {
        b.iter(|| t.feed(black_box(b"data: [DONE]\n\n")))
    });
    c.bench_function("terminal/seen", |b| b.iter(|| black_box(&t).seen()));
}

criterion_group!(benches, terminal);
criterion_main!(benches);
