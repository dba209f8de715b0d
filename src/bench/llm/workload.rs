//! What an LLM bench sends: prompts with their wanted output length, from a dataset file or
//! drawn synthetically, turned into OpenAI-compatible streaming requests.
//!
//! Datasets (`--dataset PATH`), told apart by their first character:
//! - **ShareGPT** (`[` …): a JSON array of `{"conversations": [{"from": "human", "value": …},
//!   {"from": "gpt", "value": …}, …]}`. The first turn is the prompt when it is from `human`
//!   (or `user`), the turn after it the answer when from `gpt` (or `assistant`); the answer's
//!   length in tokens is the wanted output length. Conversations without that pair are skipped
//!   (as vLLM's benchmark does) and counted; a record that is not of that shape is an error
//!   naming its array index.
//! - **JSON Lines** of `{"prompt": "...", "output_tokens": N}`; blank lines and `#` comments
//!   skipped; a bad line is an error naming the line.
//!
//! Synthetic (`--input-tokens`, `--output-tokens`): lengths `MEAN[,STDDEV[,MIN[,MAX]]]` drawn
//! from a normal distribution, rounded and clipped to `[MIN, MAX]` (defaults: no spread, 1,
//! unbounded), seeded by `--seed`.

use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bench::requests::for_each_json_line;
use crate::bench::BenchError;

/// A token length distribution: normal, rounded, clipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LengthDist {
    pub mean: f64,
    pub stddev: f64,
    pub min: u64,
    pub max: u64,
}

impl FromStr for LengthDist {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        let bad = |m: &str| BenchError::Setting(format!("token lengths {s:?}: {m}"));
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() > 4 {
            return Err(bad("use MEAN[,STDDEV[,MIN[,MAX]]]"));
        }
        let num = |i: usize| -> Result<Option<f64>, BenchError> {
            parts
                .get(i)
                .map(|p| {
                    p.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| bad(&format!("{p:?} is not a number >= 0")))
                })
                .transpose()
        };
        let mean = num(0)?.ok_or_else(|| bad("needs a mean"))?;
        let d = LengthDist {
            mean,
            stddev: num(1)?.unwrap_or(0.0),
            min: num(2)?.map_or(1, |v| v.round() as u64).max(1),
            max: num(3)?.map_or(u64::MAX, |v| v.round() as u64),
        };
        if mean < 1.0 || d.min > d.max {
            return Err(bad("needs MEAN >= 1 and MIN <= MAX"));
        }
        Ok(d)
    }
}

impl LengthDist {
    /// One length.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let v = if self.stddev > 0.0 {
            let n = statrs::distribution::Normal::new(self.mean, self.stddev)
                .expect("checked: finite, stddev > 0");
            rand::distributions::Distribution::sample(&n, rng)
        } else {
            self.mean
        };
        (v.round().max(0.0) as u64).clamp(self.min, self.max)
    }

    pub fn describe(&self) -> String {
        let mut s = format!("mean {}", self.mean);
        if self.stddev > 0.0 {
            s += &format!(", stddev {}", self.stddev);
        }
        if self.min > 1 || self.max < u64::MAX {
            s += &format!(", within {}..={}", self.min, self.max);
        }
        s
    }
}

/// One dataset entry: a prompt, and its wanted output length or the answer to measure it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub prompt: String,
    pub output: Wanted,
}

/// How long the answer should be.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    Tokens(u64),
    /// As long as this reference answer (counted with the server's tokenizer).
    LikeAnswer(String),
}

/// A dataset's usable entries, and how many conversations were skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub entries: Vec<Entry>,
    pub skipped: usize,
}

/// Read a dataset file (see the module doc).
pub fn load_dataset(path: &str) -> Result<Dataset, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        path: path.to_string(),
        source,
    })?;
    parse_dataset(path, &text)
}

/// [`load_dataset`] on text already read; `name` is used in error messages.
pub fn parse_dataset(name: &str, text: &str) -> Result<Dataset, BenchError> {
    let d = if text.trim_start().starts_with('[') {
        sharegpt(name, text)?
    } else {
        jsonl(name, text)?
    };
    if d.entries.is_empty() {
        return Err(BenchError::RequestFile {
            path: name.to_string(),
            line: 0,
            msg: format!(
                "no usable prompt in the dataset ({} conversations skipped)",
                d.skipped
            ),
        });
    }
    Ok(d)
}

fn sharegpt(name: &str, text: &str) -> Result<Dataset, BenchError> {
    let records: Vec<Value> = serde_json::from_str(text).map_err(|e| BenchError::RequestFile {
        path: name.to_string(),
        line: e.line(),
        msg: format!("not a ShareGPT JSON array: {e}"),
    })?;
    let mut entries = Vec::new();
    let mut skipped = 0;
    for (i, r) in records.iter().enumerate() {
        let bad = |msg: &str| BenchError::Dataset {
            path: name.to_string(),
            msg: format!("record [{i}]: {msg}"),
        };
        let turns = r
            .get("conversations")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("needs a \"conversations\" array"))?;
        let mut parsed = Vec::with_capacity(turns.len());
        for (j, t) in turns.iter().enumerate() {
            match (
                t.get("from").and_then(Value::as_str),
                t.get("value").and_then(Value::as_str),
            ) {
                (Some(from), Some(value)) => parsed.push((from, value)),
                _ => {
                    return Err(bad(&format!(
                        "turn {j} needs string \"from\" and \"value\""
                    )))
                }
            }
        }
        let human = |f: &str| f == "human" || f == "user";
        let gpt = |f: &str| f == "gpt" || f == "assistant" || f == "chatgpt";
        match parsed.as_slice() {
            [(f0, prompt), (f1, answer), ..] if human(f0) && gpt(f1) && !prompt.is_empty() => {
                entries.push(Entry {
                    prompt: prompt.to_string(),
                    output: Wanted::LikeAnswer(answer.to_string()),
                })
            }
            _ => skipped += 1,
        }
    }
    Ok(Dataset { entries, skipped })
}

fn jsonl(name: &str, text: &str) -> Result<Dataset, BenchError> {
    let mut entries = Vec::new();
    for_each_json_line(name, text, |v| {
        let prompt = v
            .get("prompt")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or("needs a non-empty string \"prompt\"")?;
        let n = v
            .get("output_tokens")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .ok_or("needs \"output_tokens\": a positive integer")?;
        entries.push(Entry {
            prompt: prompt.to_string(),
            output: Wanted::Tokens(n),
        });
        Ok(())
    })?;
    Ok(Dataset {
        entries,
        skipped: 0,
    })
}

/// One prepared query: the prompt, its length in tokens, and the wanted output length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub prompt: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The request body for one item: streamed, usage asked for, the output length pinned where
/// the server allows (`max_tokens` everywhere; `min_tokens` and `ignore_eos` where honoured).
pub fn body(item: &Item, model: &str, chat: bool) -> Value {
    let mut b = serde_json::json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": item.output_tokens,
        "min_tokens": item.output_tokens,
        "ignore_eos": true,
    });
    if chat {
        b["messages"] = serde_json::json!([{"role": "user", "content": item.prompt}]);
    } else {
        b["prompt"] = Value::String(item.prompt.clone());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn length_flags_and_their_distribution() {
        let d: LengthDist = "200,50,100,260".parse().unwrap();
        assert_eq!((d.mean, d.stddev, d.min, d.max), (200.0, 50.0, 100, 260));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let v: Vec<u64> = (0..50_000).map(|_| d.sample(&mut rng)).collect();
        assert!(v.iter().all(|x| (100..=260).contains(x)));
        // Clipped at 100 (2 sd below) and 260 (1.2 sd above): the share at each bound is the
        // normal tail beyond it.
        let share = |x: u64| v.iter().filter(|&&y| y == x).count() as f64 / v.len() as f64;
        assert!((share(100) - 0.0228).abs() < 0.005, "{}", share(100));
        assert!((share(260) - 0.1151).abs() < 0.01, "{}", share(260));
        let fixed: LengthDist = "64".parse().unwrap();
        assert!((0..100).all(|_| fixed.sample(&mut rng) == 64));
        let unclipped: LengthDist = "500,100".parse().unwrap();
        let m = (0..50_000)
            .map(|_| unclipped.sample(&mut rng) as f64)
            .sum::<f64>()
            / 50_000.0;
        assert!((m - 500.0).abs() < 2.0, "{m}");
        for bad in ["", "x", "0", "10,1,20,5", "1,2,3,4,5", "-3"] {
            assert!(bad.parse::<LengthDist>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sharegpt_records_and_their_errors() {
        let text = r#"[
          {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello there."}]},
          {"conversations": [{"from": "gpt", "value": "starts with the model"}]},
          {"id": "x", "conversations": [{"from": "user", "value": "Q"}, {"from": "assistant", "value": "A"}, {"from": "human", "value": "more"}]}
        ]"#;
        let d = parse_dataset("s.json", text).unwrap();
        assert_eq!(d.skipped, 1);
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[0].prompt, "Hi?");
        assert_eq!(
            d.entries[0].output,
            Wanted::LikeAnswer("Hello there.".into())
        );
        let e = parse_dataset("s.json", r#"[{"conversations": []}, {"turns": 1}]"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.json: record [1]") && e.contains("conversations"),
            "{e}"
        );
        let e = parse_dataset("s.json", r#"[{"conversations": [{"from": "human"}]}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("record [0]") && e.contains("turn 0"), "{e}");
        let e = parse_dataset("s.json", "[\n{\"conversations\": [}\n]").unwrap_err();
        assert!(e.to_string().starts_with("s.json:2:"), "{e}");
    }

    #[test]
    fn jsonl_records_and_their_errors() {
        let d = parse_dataset(
            "p.jsonl",
            "# prompts\n{\"prompt\": \"a\", \"output_tokens\": 5}\n\n{\"prompt\": \"b\", \"output_tokens\": 7}\n",
        )
        .unwrap();
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[1].output, Wanted::Tokens(7));
        for (text, line, what) in [
            (
                "{\"prompt\": \"a\", \"output_tokens\": 5}\n{\"prompt\": \"b\"}",
                2,
                "output_tokens",
            ),
            (
                "{\"prompt\": \"a\", \"output_tokens\": 0}",
                1,
                "output_tokens",
            ),
            ("\n\n{\"prompt\": 3, \"output_tokens\": 1}", 3, "prompt"),
            (
                "{\"prompt\": \"a\", \"output_tokens\": 5}\nnot json",
                2,
                "expected",
            ),
        ] {
            let e = parse_dataset("p.jsonl", text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("p.jsonl:{line}:")) && e.contains(what),
                "{e}"
            );
        }
    }

    #[test]
    fn bodies_pin_the_output_length() {
        let item = Item {
            prompt: "hi".into(),
            input_tokens: 1,
            output_tokens: 9,
        };
        let chat = body(&item, "m", true);
        assert_eq!(chat["messages"][0]["content"], "hi");
        assert_eq!(chat["max_tokens"], 9);
        assert_eq!(chat["min_tokens"], 9);
        assert_eq!(chat["stream_options"]["include_usage"], true);
        let plain = body(&item, "m", false);
        assert_eq!(plain["prompt"], "hi");
        assert!(plain.get("messages").is_none());
    }
}
