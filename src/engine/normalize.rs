//! One normalised reading from each engine's own metric names: requests running and waiting,
//! KV-cache usage, prefix-cache hit ratio, preemptions, and cumulative queue and compute time.
//! The table of source metrics per engine is here and in the README ("Serving LLMs"); an
//! engine that has no source for a figure leaves it unset (never a made-up 0).

use super::config::EngineKind;
use super::exposition::Sample;

/// Where one figure comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The sum over a metric's series (every model, every rank).
    Sum(&'static str),
    /// The largest of a metric's series (a usage ratio: the fullest cache is the one that
    /// preempts).
    Max(&'static str),
    /// The sum over the series whose label has this value.
    SumWhere(&'static str, &'static str, &'static str),
    /// The largest of the series whose label has this value.
    MaxWhere(&'static str, &'static str, &'static str),
    /// The sum of every one of these sources that the engine exports (two queues in a row, or
    /// prefill and decode time), absent when none is.
    Both(&'static [Source]),
    /// A cumulative metric (counter or histogram `_sum`) times a unit factor (µs → s).
    Scaled(&'static str, f64),
}

/// A figure's sources, first found wins (engines renamed metrics across versions).
type Sources = &'static [Source];

struct Table {
    running: Sources,
    waiting: Sources,
    kv_cache_usage: Sources,
    /// A hit-ratio gauge the engine computes itself.
    prefix_hit_ratio: Sources,
    /// Cumulative (hits, queries) counters, turned into a ratio per interval.
    prefix_hits: Sources,
    prefix_queries: Sources,
    preemptions: Sources,
    queue_secs: Sources,
    compute_secs: Sources,
}

use Source::*;

const VLLM: Table = Table {
    running: &[Sum("vllm:num_requests_running")],
    waiting: &[Sum("vllm:num_requests_waiting")],
    // V1 name first, then V0's (also a 0-1 ratio despite "perc").
    kv_cache_usage: &[
        Max("vllm:kv_cache_usage_perc"),
        Max("vllm:gpu_cache_usage_perc"),
    ],
    prefix_hit_ratio: &[Max("vllm:gpu_prefix_cache_hit_rate")],
    prefix_hits: &[
        Sum("vllm:prefix_cache_hits_total"),
        Sum("vllm:gpu_prefix_cache_hits_total"),
    ],
    prefix_queries: &[
        Sum("vllm:prefix_cache_queries_total"),
        Sum("vllm:gpu_prefix_cache_queries_total"),
    ],
    preemptions: &[Sum("vllm:num_preemptions_total")],
    queue_secs: &[Scaled("vllm:request_queue_time_seconds_sum", 1.0)],
    compute_secs: &[Scaled("vllm:request_inference_time_seconds_sum", 1.0)],
};

const SGLANG: Table = Table {
    running: &[Sum("sglang:num_running_reqs")],
    waiting: &[Sum("sglang:num_queue_reqs")],
    kv_cache_usage: &[Max("sglang:token_usage")],
    prefix_hit_ratio: &[Max("sglang:cache_hit_rate")],
    prefix_hits: &[],
    prefix_queries: &[],
    // SGLang's preemption is a retraction (a running request sent back to the queue when the
    // KV cache runs out).
    preemptions: &[Sum("sglang:num_retracted_requests_total")],
    queue_secs: &[Scaled("sglang:queue_time_seconds_sum", 1.0)],
    // Its GPU busy time (`sglang:gpu_execution_seconds_total`) is wall time, not a sum over
    // requests like the queue time: their ratio would mislead, so none.
    compute_secs: &[],
};

const TGI: Table = Table {
    running: &[Sum("tgi_batch_current_size")],
    waiting: &[Sum("tgi_queue_size")],
    kv_cache_usage: &[],
    prefix_hit_ratio: &[],
    prefix_hits: &[],
    prefix_queries: &[],
    preemptions: &[],
    queue_secs: &[Scaled("tgi_request_queue_duration_sum", 1.0)],
    compute_secs: &[Scaled("tgi_request_inference_duration_sum", 1.0)],
};

const TRITON: Table = Table {
    // TensorRT-LLM backend's in-flight batcher, when present.
    running: &[SumWhere(
        "nv_trt_llm_request_metrics",
        "request_type",
        "active",
    )],
    // Triton's own scheduler queues, then the TensorRT-LLM batcher's: a request waits in one,
    // then perhaps the other.
    waiting: &[Both(&[
        SumWhere("nv_trt_llm_request_metrics", "request_type", "waiting"),
        Sum("nv_inference_pending_request_count"),
    ])],
    kv_cache_usage: &[MaxWhere(
        "nv_trt_llm_kv_cache_block_metrics",
        "kv_cache_block_type",
        "fraction",
    )],
    prefix_hit_ratio: &[],
    prefix_hits: &[],
    prefix_queries: &[],
    preemptions: &[],
    queue_secs: &[Scaled("nv_inference_queue_duration_us", 1e-6)],
    compute_secs: &[Scaled("nv_inference_compute_infer_duration_us", 1e-6)],
};

const LLAMACPP: Table = Table {
    running: &[Sum("llamacpp:requests_processing")],
    waiting: &[Sum("llamacpp:requests_deferred")],
    kv_cache_usage: &[Max("llamacpp:kv_cache_usage_ratio")],
    prefix_hit_ratio: &[],
    prefix_hits: &[],
    prefix_queries: &[],
    preemptions: &[],
    queue_secs: &[],
    // Prompt processing plus generation: the slots' busy time.
    compute_secs: &[Both(&[
        Sum("llamacpp:prompt_seconds_total"),
        Sum("llamacpp:tokens_predicted_seconds_total"),
    ])],
};

const MLSERVER: Table = Table {
    running: &[],
    waiting: &[],
    kv_cache_usage: &[],
    prefix_hit_ratio: &[],
    prefix_hits: &[],
    prefix_queries: &[],
    preemptions: &[],
    queue_secs: &[],
    compute_secs: &[Scaled("model_infer_request_duration_sum", 1.0)],
};

fn table(kind: EngineKind) -> Option<&'static Table> {
    match kind {
        EngineKind::Vllm => Some(&VLLM),
        EngineKind::Sglang => Some(&SGLANG),
        EngineKind::Tgi => Some(&TGI),
        EngineKind::Triton => Some(&TRITON),
        EngineKind::Llamacpp => Some(&LLAMACPP),
        EngineKind::Mlserver => Some(&MLSERVER),
        EngineKind::Auto => None,
    }
}

/// The engine whose metric names a scrape holds (`auto`), by each engine's own prefix.
pub fn detect(samples: &[Sample]) -> Option<EngineKind> {
    let has = |p: &str| samples.iter().any(|s| s.name.starts_with(p));
    [
        ("vllm:", EngineKind::Vllm),
        ("sglang:", EngineKind::Sglang),
        ("tgi_", EngineKind::Tgi),
        ("nv_inference_", EngineKind::Triton),
        ("llamacpp:", EngineKind::Llamacpp),
        ("model_infer_request", EngineKind::Mlserver),
    ]
    .into_iter()
    .find(|(p, _)| has(p))
    .map(|(_, k)| k)
}

/// One scrape in normalised figures; cumulative ones (`*_total`, `*_secs`) as the engine has
/// counted them since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    pub kv_cache_usage: Option<f64>,
    pub prefix_hit_ratio: Option<f64>,
    pub prefix_hits_total: Option<f64>,
    pub prefix_queries_total: Option<f64>,
    pub preemptions_total: Option<f64>,
    pub queue_secs_total: Option<f64>,
    pub compute_secs_total: Option<f64>,
}

/// Read `samples` as `kind` (not `auto`: detect first).
pub fn read(kind: EngineKind, samples: &[Sample]) -> Reading {
    let Some(t) = table(kind) else {
        return Reading::default();
    };
    let first = |sources: Sources| sources.iter().find_map(|s| value(*s, samples));
    Reading {
        running: first(t.running),
        waiting: first(t.waiting),
        kv_cache_usage: first(t.kv_cache_usage),
        prefix_hit_ratio: first(t.prefix_hit_ratio),
        prefix_hits_total: first(t.prefix_hits),
        prefix_queries_total: first(t.prefix_queries),
        preemptions_total: first(t.preemptions),
        queue_secs_total: first(t.queue_secs),
        compute_secs_total: first(t.compute_secs),
    }
}

fn value(source: Source, samples: &[Sample]) -> Option<f64> {
    let of = |name: &'static str| samples.iter().filter(move |s| s.name == name);
    let finite = |v: f64| v.is_finite().then_some(v);
    match source {
        Sum(n) => of(n).map(|s| s.value).reduce(|a, b| a + b).and_then(finite),
        Max(n) => of(n).map(|s| s.value).reduce(f64::max).and_then(finite),
        SumWhere(n, label, want) => of(n)
            .filter(|s| s.label(label) == Some(want))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
            .and_then(finite),
        MaxWhere(n, label, want) => of(n)
            .filter(|s| s.label(label) == Some(want))
            .map(|s| s.value)
            .reduce(f64::max)
            .and_then(finite),
        Both(sources) => sources
            .iter()
            .filter_map(|s| value(*s, samples))
            .reduce(|a, b| a + b),
        Scaled(n, factor) => of(n)
            .map(|s| s.value)
            .reduce(|a, b| a + b)
            .and_then(|v| finite(v * factor)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::exposition::parse;

    fn fixture(name: &str) -> Vec<Sample> {
        let path = format!(
            "{}/tests/fixtures/engine/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn each_engine_is_detected_and_read_from_its_documented_names() {
        let cases = [
            (
                "vllm.prom",
                EngineKind::Vllm,
                Reading {
                    running: Some(15.0),
                    waiting: Some(7.0),
                    kv_cache_usage: Some(0.93),
                    prefix_hits_total: Some(400.0),
                    prefix_queries_total: Some(1000.0),
                    preemptions_total: Some(5.0),
                    queue_secs_total: Some(12.5),
                    compute_secs_total: Some(80.25),
                    ..Reading::default()
                },
            ),
            (
                "sglang.prom",
                EngineKind::Sglang,
                Reading {
                    running: Some(28.0),
                    waiting: Some(4.0),
                    kv_cache_usage: Some(0.28),
                    prefix_hit_ratio: Some(0.007507552643049313),
                    preemptions_total: Some(3.0),
                    queue_secs_total: Some(42.5),
                    ..Reading::default()
                },
            ),
            (
                "tgi.prom",
                EngineKind::Tgi,
                Reading {
                    running: Some(9.0),
                    waiting: Some(2.0),
                    queue_secs_total: Some(3.5),
                    compute_secs_total: Some(210.0),
                    ..Reading::default()
                },
            ),
            (
                "triton.prom",
                EngineKind::Triton,
                Reading {
                    running: Some(6.0),
                    // 2 in the batcher's queue, 3 + 5 in Triton's.
                    waiting: Some(10.0),
                    kv_cache_usage: Some(0.75),
                    queue_secs_total: Some(2.5),
                    compute_secs_total: Some(40.0),
                    ..Reading::default()
                },
            ),
            (
                "llamacpp.prom",
                EngineKind::Llamacpp,
                Reading {
                    running: Some(1.0),
                    waiting: Some(2.0),
                    kv_cache_usage: Some(0.5),
                    compute_secs_total: Some(12.75),
                    ..Reading::default()
                },
            ),
        ];
        for (file, kind, want) in cases {
            let samples = fixture(file);
            assert_eq!(detect(&samples), Some(kind), "{file}");
            assert_eq!(read(kind, &samples), want, "{file}");
        }
        assert_eq!(detect(&parse("up 1\n").unwrap()), None);
    }
}
