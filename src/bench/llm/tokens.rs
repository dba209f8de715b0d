//! Counting tokens the way the server does, and prompts of a wanted token length.
//!
//! The server's own tokenizer is used when it exposes one ([`Counter::probe`] tries, in order):
//! llama-cpp-python's `POST /extras/tokenize` (`{"input"}` → `{"tokens"}`), and `POST
//! /tokenize` as llama.cpp's native `llama-server` (`{"content"}` → `{"tokens"}`), vLLM
//! (`{"prompt"}` → `{"tokens","count"}`) and TGI (`{"inputs"}` → `[{"id",…}]`) serve it. One
//! body carries all those keys, so one request per path finds out. The count of the empty text
//! (a BOS some tokenizers add) is subtracted.
//!
//! Without one, counts are an approximation: a synthetic prompt is built of words that are one
//! token each in common BPE tokenizers (GPT-2/cl100k, Llama 3, Qwen, SmolLM: frequent English
//! words with their leading space), so N words make N tokens; other text (a dataset's) counts
//! as one token per 4 characters, OpenAI's rule of thumb.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::Rng;
use serde_json::Value;

use crate::bench::client::HttpClient;
use crate::bench::BenchError;

/// Frequent English words, each one token (with its leading space) in the common BPE
/// vocabularies; with a server tokenizer, the ones it does not keep whole are dropped.
pub const VOCABULARY: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "at", "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which",
    "one", "you", "were", "her", "all", "she", "there", "would", "their", "we", "him", "been",
    "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its",
    "about", "into", "than", "them", "can", "only", "other", "new", "some", "could", "time",
    "these", "two", "may", "then", "do", "first", "any", "my", "now", "such", "like", "our",
    "over", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must",
    "through", "back", "years", "where", "much", "your", "way", "well", "down", "should",
    "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very",
    "make", "world", "still", "own", "see", "men", "work", "long", "get", "here", "between",
    "both", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last",
    "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came",
    "right", "used", "take", "three",
];

/// How token counts are obtained.
#[derive(Debug, Clone)]
pub enum Counter {
    /// The server's tokenizer at `url` (the path that answered); `offset` tokens it adds to
    /// any text (a BOS).
    Server { url: String, offset: u64 },
    /// No tokenizer endpoint: the documented approximation.
    Approx,
}

/// Approximate tokens of arbitrary text: one per 4 characters, at least one.
pub fn approx_count(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

impl Counter {
    /// Find the server's tokenizer behind `base` (scheme and authority of the target).
    pub async fn probe(client: &HttpClient, base: &str) -> Counter {
        for path in ["/extras/tokenize", "/tokenize"] {
            let url = format!("{base}{path}");
            if let Ok(n) = tokenize(client, &url, "hello world").await {
                if n > 0 {
                    let offset = tokenize(client, &url, "").await.unwrap_or(0);
                    return Counter::Server { url, offset };
                }
            }
        }
        Counter::Approx
    }

    /// Tokens of `text`.
    pub async fn count(&self, client: &HttpClient, text: &str) -> Result<u64, BenchError> {
        match self {
            Counter::Server { url, offset } => {
                Ok(tokenize(client, url, text).await?.saturating_sub(*offset))
            }
            Counter::Approx => Ok(approx_count(text)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Counter::Server { url, .. } => format!("server tokenizer ({url})"),
            Counter::Approx => {
                "approximation (no tokenizer endpoint): synthetic prompts of one-token words, \
                 other text 4 characters per token"
                    .into()
            }
        }
    }
}

/// POST one text to a tokenize endpoint; the number of tokens it answers.
async fn tokenize(client: &HttpClient, url: &str, text: &str) -> Result<u64, BenchError> {
    let err = |msg: String| BenchError::Http {
        url: url.to_string(),
        msg,
    };
    let body = serde_json::json!({"input": text, "content": text, "prompt": text,
        "inputs": text, "add_special_tokens": true});
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| err(e.to_string()))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| err("timed out".into()))?
        .map_err(|e| err(e.to_string()))?;
    let ok = resp.status().is_success();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .to_bytes();
    if !ok {
        return Err(err("not a tokenizer endpoint".into()));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    token_count(&v).ok_or_else(|| err("answer holds no token list".into()))
}

/// The token count in a tokenize answer: `count`, a `tokens` list, or a top-level list.
fn token_count(v: &Value) -> Option<u64> {
    if let Some(n) = v.get("count").and_then(Value::as_u64) {
        return Some(n);
    }
    v.get("tokens")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .map(|a| a.len() as u64)
}

/// Words that make synthetic prompts, and how many tokens each word is (1 when exact).
#[derive(Debug, Clone)]
pub struct Words {
    pub words: Vec<&'static str>,
    /// Tokens per word measured on a sample prompt (1.0 exactly when counts add up).
    pub tokens_per_word: f64,
}

impl Words {
    /// The vocabulary as `counter` sees it: words that are one token each, and a check that a
    /// prompt of them counts one token per word.
    pub async fn calibrate(client: &HttpClient, counter: &Counter) -> Result<Words, BenchError> {
        if let Counter::Approx = counter {
            return Ok(Words {
                words: VOCABULARY.to_vec(),
                tokens_per_word: 1.0,
            });
        }
        let mut words = Vec::new();
        for w in VOCABULARY {
            if counter.count(client, &format!(" {w}")).await? == 1 {
                words.push(*w);
            }
        }
        if words.len() < 16 {
            return Err(BenchError::Setting(format!(
                "the server's tokenizer keeps only {} of {} common words whole: cannot size \
                 synthetic prompts (use --dataset)",
                words.len(),
                VOCABULARY.len()
            )));
        }
        let sample: String = (0..256)
            .map(|i| format!(" {}", words[i * 7 % words.len()]))
            .collect();
        let n = counter.count(client, &sample).await?;
        Ok(Words {
            words,
            tokens_per_word: n as f64 / 256.0,
        })
    }

    /// A prompt of about `tokens` tokens (exactly, when `tokens_per_word` is 1).
    pub fn prompt(&self, tokens: u64, rng: &mut impl Rng) -> String {
        let n = ((tokens as f64 / self.tokens_per_word).round() as u64).max(1);
        let mut s = String::with_capacity(n as usize * 6);
        for _ in 0..n {
            s.push(' ');
            s.push_str(self.words[rng.gen_range(0..self.words.len())]);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_from_each_servers_answer() {
        let c = |s: &str| token_count(&serde_json::from_str(s).unwrap());
        assert_eq!(c(r#"{"tokens":[1,2,3]}"#), Some(3));
        assert_eq!(
            c(r#"{"tokens":[1,2],"count":2,"max_model_len":4096}"#),
            Some(2)
        );
        assert_eq!(c(r#"[{"id":1,"text":"a"},{"id":2,"text":"b"}]"#), Some(2));
        assert_eq!(c(r#"{"detail":"x"}"#), None);
        assert_eq!(approx_count("abcdefgh"), 2);
        assert_eq!(approx_count(""), 1);
    }

    #[test]
    fn approximate_prompts_have_one_word_per_token() {
        let w = Words {
            words: VOCABULARY.to_vec(),
            tokens_per_word: 1.0,
        };
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1);
        let p = w.prompt(37, &mut rng);
        assert_eq!(p.split_whitespace().count(), 37);
        let half = Words {
            tokens_per_word: 2.0,
            ..w
        };
        assert_eq!(half.prompt(40, &mut rng).split_whitespace().count(), 20);
    }
}
