//! Progress on stderr while a run goes: a redrawn bar on a terminal, a plain line every few
//! seconds otherwise (CI logs, pipes). Hand-written: one line with `\r` is all it takes, and it
//! keeps a terminal-drawing dependency out of a sidecar binary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Counts completed queries; shared with the run.
pub type Counter = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A running progress display; [`Progress::finish`] ends it with a final line.
pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

const TTY_REDRAW: Duration = Duration::from_millis(200);
const PLAIN_EVERY: Duration = Duration::from_secs(5);
const WIDTH: usize = 30;

impl Progress {
    /// Start drawing `label`; done when both `expected` time passed and `min_queries` completed.
    pub fn start(label: String, expected: Duration, min_queries: u64, done: Counter) -> Self {
        let tty = std::io::stderr().is_terminal();
        let (tx, mut rx) = oneshot::channel();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let every = if tty { TTY_REDRAW } else { PLAIN_EVERY };
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                let stopped = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut rx => true,
                };
                let line = render(&label, started.elapsed(), expected, min_queries, done());
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r{line}\x1b[K");
                    if stopped {
                        let _ = writeln!(err);
                    }
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
                if stopped {
                    break;
                }
            }
        });
        Self {
            stop: Some(tx),
            task,
        }
    }

    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// One progress line.
pub fn render(label: &str, elapsed: Duration, expected: Duration, min_q: u64, done: u64) -> String {
    let by_time = if expected.is_zero() {
        1.0
    } else {
        elapsed.as_secs_f64() / expected.as_secs_f64()
    };
    let by_count = if min_q == 0 {
        1.0
    } else {
        done as f64 / min_q as f64
    };
    let frac = by_time.min(by_count).clamp(0.0, 1.0);
    let filled = (frac * WIDTH as f64).round() as usize;
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    format!(
        "{label} [{}{}] {:>3.0}% {done} queries {rate:.1}/s {:.1}s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        frac * 100.0,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line() {
        let l = render(
            "server",
            Duration::from_secs(5),
            Duration::from_secs(10),
            0,
            50,
        );
        assert!(l.contains(" 50%"), "{l}");
        assert!(l.contains("10.0/s"), "{l}");
        // The count requirement holds it back even when time is up.
        let l = render(
            "x",
            Duration::from_secs(10),
            Duration::from_secs(10),
            100,
            25,
        );
        assert!(l.contains(" 25%"), "{l}");
    }
}
