//! Inspection throughput per adapter: payloads per second on one core, decode and record
//! (metrics, label caps, signals) together, as the inspector task does it off the live path.
//! The gRPC cases (Open Inference Protocol on a `kserve_v2` route) carry raw binary contents:
//! one iris row, and one 1×3×224×224 FP32 image answered with 1000 FP32 scores.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::StatusCode;
use inferwatch::config::Config;
use inferwatch::protocol::{Inspector, NoSignals, OwnedExchange, ProtocolMetrics};
use inferwatch::routes::config::{PredictionConfig, Protocol, RouteConfig};
use inferwatch::tap::InspectionMetrics;
use prometheus::Registry;

fn route(name: &str, protocol: Protocol, prediction: PredictionConfig) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        path_prefix: format!("/{name}"),
        protocol,
        model: "m".into(),
        prediction,
        ..RouteConfig::default()
    }
}

/// A KServe V2 request of `rows` iris rows and MLServer's answer (labels + probabilities).
fn kserve(rows: usize) -> OwnedExchange {
    let x: Vec<String> = (0..rows * 4)
        .map(|i| format!("{:.1}", 4.0 + (i % 30) as f64 / 10.0))
        .collect();
    let labels: Vec<String> = (0..rows).map(|i| (i % 3).to_string()).collect();
    let probs: Vec<&str> = (0..rows).flat_map(|_| ["0.91", "0.06", "0.03"]).collect();
    let req = format!(
        r#"{{"inputs":[{{"name":"input-0","shape":[{rows},4],"datatype":"FP64","data":[{}]}}],"outputs":[{{"name":"predict"}},{{"name":"predict_proba"}}]}}"#,
        x.join(",")
    );
    let resp = format!(
        r#"{{"model_name":"iris","model_version":"v1","id":"x","parameters":{{}},"outputs":[{{"name":"predict","shape":[{rows},1],"datatype":"INT64","parameters":{{"content_type":"np"}},"data":[{}]}},{{"name":"predict_proba","shape":[{rows},3],"datatype":"FP64","parameters":{{"content_type":"np"}},"data":[{}]}}]}}"#,
        labels.join(","),
        probs.join(",")
    );
    OwnedExchange::simple("/v2/models/iris/infer", req.as_bytes(), resp.as_bytes())
}

/// A streamed chat completion of `tokens` chunks, one network chunk each, 20 ms apart.
fn openai(tokens: usize) -> OwnedExchange {
    let mut chunks = Vec::new();
    for i in 0..tokens {
        chunks.push((
            Duration::from_millis(100 + 20 * i as u64),
            Bytes::from(format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"llama-3-8b\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
            )),
        ));
    }
    chunks.push((
        Duration::from_millis(100 + 20 * tokens as u64),
        Bytes::from_static(b"data: {\"id\":\"chatcmpl-1\",\"model\":\"llama-3-8b\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"),
    ));
    let mut ex = OwnedExchange::new(
        "/v1/chat/completions",
        br#"{"model":"llama-3-8b","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        chunks,
    );
    ex.response_headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    ex
}

fn tfserving(rows: usize) -> OwnedExchange {
    let inst: Vec<&str> = (0..rows).map(|_| "[5.1,3.5,1.4,0.2]").collect();
    let preds: Vec<&str> = (0..rows).map(|_| "[0.91,0.06,0.03]").collect();
    OwnedExchange::simple(
        "/v1/models/iris:predict",
        format!(r#"{{"instances":[{}]}}"#, inst.join(",")).as_bytes(),
        format!(r#"{{"predictions":[{}]}}"#, preds.join(",")).as_bytes(),
    )
}

fn json(rows: usize) -> OwnedExchange {
    let preds: Vec<&str> = (0..rows)
        .map(|_| r#"{"label":"fraud","scores":[0.2,0.8]}"#)
        .collect();
    OwnedExchange::simple(
        "/predict",
        br#"{"features":[1,2,3]}"#,
        format!(
            r#"{{"model":"fraud-v2","predictions":[{}]}}"#,
            preds.join(",")
        )
        .as_bytes(),
    )
}

/// A gRPC `ModelInfer` exchange with raw contents: `input` of `shape` (FP32 or FP64 by
/// `datatype`) answered by `outputs` (name, datatype, shape, raw bytes).
fn grpc(
    datatype: &str,
    shape: Vec<i64>,
    input: Vec<u8>,
    outputs: Vec<(&str, &str, Vec<i64>, Vec<u8>)>,
) -> OwnedExchange {
    use inferwatch::protocol::grpc_frame::frame;
    use inferwatch::protocol::kserve_v2_grpc::{
        InferTensor, ModelInferRequest, ModelInferResponse,
    };
    use prost::Message;
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| InferTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        contents: None,
    };
    let req = ModelInferRequest {
        model_name: "m".into(),
        inputs: vec![tensor("input-0", datatype, shape)],
        raw_input_contents: vec![input],
        ..ModelInferRequest::default()
    };
    let resp = ModelInferResponse {
        model_name: "m".into(),
        outputs: outputs
            .iter()
            .map(|(n, d, s, _)| tensor(n, d, s.clone()))
            .collect(),
        raw_output_contents: outputs.into_iter().map(|o| o.3).collect(),
        ..ModelInferResponse::default()
    };
    let mut ex = OwnedExchange::simple(
        "/inference.GRPCInferenceService/ModelInfer",
        &frame(&req.encode_to_vec()),
        &frame(&resp.encode_to_vec()),
    );
    let grpc = http::HeaderValue::from_static("application/grpc");
    ex.request_headers
        .insert(http::header::CONTENT_TYPE, grpc.clone());
    ex.response_headers.insert(http::header::CONTENT_TYPE, grpc);
    ex
}

fn le_f64(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_f32(v: impl Iterator<Item = f32>) -> Vec<u8> {
    v.flat_map(|x| x.to_le_bytes()).collect()
}

fn grpc_1_row() -> OwnedExchange {
    grpc(
        "FP64",
        vec![1, 4],
        le_f64(&[5.1, 3.5, 1.4, 0.2]),
        vec![
            ("predict", "INT64", vec![1, 1], 0i64.to_le_bytes().to_vec()),
            (
                "predict_proba",
                "FP64",
                vec![1, 3],
                le_f64(&[0.91, 0.06, 0.03]),
            ),
        ],
    )
}

fn grpc_image() -> OwnedExchange {
    let pixels = (0..3 * 224 * 224).map(|i| (i % 255) as f32 / 255.0);
    let scores = (0..1000).map(|i| if i == 7 { 0.9 } else { 0.1 / 999.0 });
    grpc(
        "FP32",
        vec![1, 3, 224, 224],
        le_f32(pixels),
        vec![("probs", "FP32", vec![1, 1000], le_f32(scores))],
    )
}

fn bench(c: &mut Criterion) {
    let mut cfg = Config::default();
    cfg.proxy.routes = vec![
        route("kserve", Protocol::KserveV2, PredictionConfig::default()),
        route("chat", Protocol::Openai, PredictionConfig::default()),
        route("tf", Protocol::Tfserving, PredictionConfig::default()),
        route(
            "custom",
            Protocol::Json,
            PredictionConfig {
                rows_pointer: "/predictions".into(),
                class_pointer: "/label".into(),
                score_pointer: "/scores".into(),
                model_pointer: "/model".into(),
                ..PredictionConfig::default()
            },
        ),
    ];
    let registry = Registry::new();
    let metrics = ProtocolMetrics::register(&registry, vec![0.001, 0.01, 0.1, 1.0]).unwrap();
    let inspection = InspectionMetrics::register(&registry).unwrap();
    let mut inspector = Inspector::new(
        &cfg.proxy.routes,
        &cfg.inspection,
        metrics,
        inspection,
        Arc::new(NoSignals),
    );

    let cases = [
        ("kserve_v2_1_row", "kserve", kserve(1)),
        ("kserve_v2_32_rows", "kserve", kserve(32)),
        ("openai_stream_64_tokens", "chat", openai(64)),
        ("tfserving_1_row", "tf", tfserving(1)),
        ("tfserving_32_rows", "tf", tfserving(32)),
        ("json_1_row", "custom", json(1)),
        ("json_32_rows", "custom", json(32)),
        ("kserve_v2_grpc_1_row", "kserve", grpc_1_row()),
        (
            "kserve_v2_grpc_1x3x224x224_fp32_raw",
            "kserve",
            grpc_image(),
        ),
    ];
    let mut group = c.benchmark_group("inspect");
    group.throughput(Throughput::Elements(1));
    for (name, route, ex) in &cases {
        let view = ex.view();
        group.bench_function(*name, |b| {
            b.iter(|| inspector.inspect_exchange(route, StatusCode::OK, &view))
        });
    }
    group.finish();
    let parsed: f64 = registry
        .gather()
        .iter()
        .filter(|f| f.name() == "inferwatch_inspection_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
        .sum();
    assert!(parsed > 0.0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
