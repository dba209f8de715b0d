//! Token workloads for `inferwatch bench --protocol openai`: prompts of realistic lengths, open
//! loops with several arrival processes or a closed loop of N users, and the figures LLM
//! operators size fleets by (token throughput, TTFT/ITL/TPOT, goodput).
//!
//! - [`workload`]: datasets (ShareGPT, JSON Lines) and synthetic length distributions; the
//!   request bodies.
//! - [`tokens`]: the server's tokenizer (or the documented approximation) and prompts of a
//!   wanted token length.
//! - [`arrival`]: Poisson, gamma (burstiness) and constant arrivals.
//! - [`record`]: one request read as the sidecar reads it, classified by the sidecar's goodput
//!   rule.
//! - [`summary`]: one run's LLM figures (the `"llm"` JSON object).
//! - [`saturation`]: the engine's queue and KV cache during a step, J per output token.
//! - [`sweep`]: sweeps over concurrency; rate sweeps are [`crate::bench::sweep`]'s.
//! - [`text`]: the terminal and Markdown accounts of the LLM figures; [`charts`]: their SVG
//!   charts for `report.html`.

pub mod arrival;
pub mod charts;
pub mod record;
pub mod saturation;
pub mod summary;
pub mod sweep;
pub mod text;
pub mod tokens;
pub mod workload;

use std::sync::Arc;

use http_body_util::BodyExt;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::client::{HttpClient, Target};
use super::requests::{json_post, RequestTemplate};
use super::BenchError;
use tokens::{Counter, Words};
use workload::{Item, LengthDist, Wanted};

/// Prepared items at most: a run longer than this cycles through them.
pub const MAX_ITEMS: usize = 4096;

/// What to send: a dataset, or synthetic lengths.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub dataset: Option<String>,
    pub input: LengthDist,
    pub output: LengthDist,
    /// The `model` field; `None`: the first model the server lists at `/v1/models`.
    pub model: Option<String>,
    pub seed: u64,
}

/// The prepared workload: one item per query (cycled), and how it was made.
#[derive(Debug, Clone)]
pub struct Workload {
    pub items: Vec<Item>,
    /// How prompt lengths were counted.
    pub tokenizer: String,
    /// `synthetic (...)` or `dataset PATH`.
    pub source: String,
    /// Dataset conversations without a prompt/answer pair.
    pub skipped: usize,
    pub model: String,
    /// `/v1/chat/completions` (messages) or `/v1/completions` (prompt).
    pub chat: bool,
    /// The path the queries go to.
    pub path: String,
}

impl Workload {
    /// The wanted (input, output) lengths of query `i`.
    pub fn requested(&self, i: u64) -> (u64, u64) {
        let it = &self.items[(i % self.items.len() as u64) as usize];
        (it.input_tokens, it.output_tokens)
    }

    /// One request template per item, in order.
    pub fn templates(&self) -> Vec<RequestTemplate> {
        self.items
            .iter()
            .map(|it| {
                let body = workload::body(it, &self.model, self.chat);
                let mut t = json_post(serde_json::to_vec(&body).expect("JSON value"));
                t.path = Some(self.path.clone());
                t
            })
            .collect()
    }
}

/// Scheme and authority of the target, for the server's other endpoints.
fn base(target: &Target) -> String {
    let url: http::Uri = target.as_str().parse().expect("a parsed target");
    format!(
        "{}://{}",
        url.scheme_str().unwrap_or("http"),
        url.authority().map(|a| a.as_str()).unwrap_or_default()
    )
}

/// The first model a server lists at `/v1/models`.
async fn first_model(client: &HttpClient, base: &str) -> Option<String> {
    let req = http::Request::get(format!("{base}/v1/models"))
        .body(http_body_util::Full::default())
        .ok()?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .ok()?
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["data"][0]["id"].as_str().map(str::to_string)
}

/// Prepare `n` items (at most [`MAX_ITEMS`]) for `target`: read the dataset or draw synthetic
/// lengths, find the server's tokenizer, and size prompts and answers with it.
pub async fn prepare(
    client: &HttpClient,
    target: &Target,
    spec: &WorkloadSpec,
    n: usize,
) -> Result<Workload, BenchError> {
    let n = n.clamp(1, MAX_ITEMS);
    let base = base(target);
    let url_path = target
        .as_str()
        .parse::<http::Uri>()
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let (path, chat) = match crate::protocol::openai::endpoint(&url_path) {
        Some(crate::protocol::openai::Endpoint::Completions) => (url_path, false),
        Some(crate::protocol::openai::Endpoint::ChatCompletions) => (url_path, true),
        _ => ("/v1/chat/completions".to_string(), true),
    };
    // A bad dataset fails before anything is sent.
    let dataset = match &spec.dataset {
        Some(path) => Some((path, workload::load_dataset(path)?)),
        None => None,
    };
    let counter = Counter::probe(client, &base).await;
    let model = match &spec.model {
        Some(m) => m.clone(),
        None => first_model(client, &base)
            .await
            .unwrap_or_else(|| "default".into()),
    };
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let mut tokenizer_note = String::new();
    let (items, source, skipped) = match dataset {
        Some((path, d)) => {
            let mut items = Vec::with_capacity(n.min(d.entries.len()));
            for e in d.entries.iter().take(n) {
                let output_tokens = match &e.output {
                    Wanted::Tokens(t) => *t,
                    Wanted::LikeAnswer(a) => counter.count(client, a).await?.max(1),
                };
                items.push(Item {
                    input_tokens: counter.count(client, &e.prompt).await?,
                    prompt: e.prompt.clone(),
                    output_tokens,
                });
            }
            (items, format!("dataset {path}"), d.skipped)
        }
        None => {
            let words = Words::calibrate(client, &counter).await?;
            if words.tokens_per_word != 1.0 {
                tokenizer_note = format!(
                    "; synthetic prompts approximate ({:.2} tokens per word)",
                    words.tokens_per_word
                );
            }
            let items = (0..n)
                .map(|_| {
                    let input_tokens = spec.input.sample(&mut rng);
                    let output_tokens = spec.output.sample(&mut rng);
                    Item {
                        prompt: words.prompt(input_tokens, &mut rng),
                        input_tokens,
                        output_tokens,
                    }
                })
                .collect();
            let source = format!(
                "synthetic: input tokens {}, output tokens {}",
                spec.input.describe(),
                spec.output.describe()
            );
            (items, source, 0)
        }
    };
    Ok(Workload {
        items,
        tokenizer: counter.describe() + &tokenizer_note,
        source,
        skipped,
        model,
        chat,
        path,
    })
}

/// The workload as shared by a run's tasks.
pub type SharedWorkload = Arc<Workload>;
