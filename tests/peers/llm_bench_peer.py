"""A peer LLM load generator for tests/llm_bench_agreement.rs: NVIDIA's aiperf (PyPI `aiperf`,
in .venv-llmbench, installed by scripts/install-peers.sh) run against an OpenAI-compatible server
with a synthetic workload, its figures printed as one JSON line.

  llm_bench_peer.py BASE_URL --tokenizer DIR --input-tokens I --output-tokens O
                    --requests N (--concurrency C | --rate R) [--seed S] [--warmup W]
                    [--model NAME] [--artifacts DIR]

BASE_URL is the server without a path (http://127.0.0.1:PORT); requests go to
/v1/chat/completions, streamed, each with a synthetic prompt of I tokens (by the tokenizer in
DIR: scripts/gguf-tokenizer.py builds it from the model's GGUF, as there is no hub here) and
`max_tokens` = `min_tokens` = O with `ignore_eos`, the same body `inferwatch bench --protocol
openai` sends. --concurrency is a closed loop of C users; --rate an open loop at R requests/s
with constant gaps. W warm-up requests (default 1) are sent first and not counted.

Prints {"tool", "version", "requests", "errors", "ttft_p50_s", "itl_p50_s",
"itl_per_request_p50_s", "output_tokens_per_s", "requests_per_s", "output_tokens_mean",
"input_tokens_mean", "e2e_p50_s", "duration_s"}:
  itl_p50_s             aiperf's inter-chunk latency p50: every gap between consecutive chunks
                        of every stream, pooled (what `inferwatch bench` calls ITL);
  itl_per_request_p50_s aiperf's "inter token latency" p50: each request's
                        (e2e - TTFT) / (output tokens - 1), then the median over requests.
Exits non-zero, with aiperf's output, when aiperf fails or no request succeeded.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def args():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--input-tokens", type=int, required=True)
    p.add_argument("--output-tokens", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", type=int)
    load.add_argument("--rate", type=float)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--artifacts")
    return p.parse_args()


def aiperf_command(a, artifacts):
    # aiperf's console script sits beside this venv's python.
    aiperf = os.path.join(os.path.dirname(sys.executable), "aiperf")
    cmd = [
        aiperf, "profile",
        "--url", a.url, "--model", a.model,
        "--endpoint-type", "chat", "--streaming",
        # llama.cpp (and other servers) read `max_tokens`, not `max_completion_tokens`: without
        # this flag they ignore the limit and answer until the context is full.
        "--use-legacy-max-tokens",
        "--tokenizer", a.tokenizer,
        "--synthetic-input-tokens-mean", str(a.input_tokens),
        "--synthetic-input-tokens-stddev", "0",
        "--output-tokens-mean", str(a.output_tokens),
        "--output-tokens-stddev", "0",
        "--extra-inputs", f"min_tokens:{a.output_tokens}",
        "--extra-inputs", "ignore_eos:true",
        "--request-count", str(a.requests),
        "--random-seed", str(a.seed),
        "--artifact-dir", artifacts,
        "--ui-type", "none",
        # Nothing to collect here (no GPU, no /metrics on llama-cpp-python's server): their
        # collectors only cost CPU on a small machine.
        "--no-gpu-telemetry", "--no-server-metrics",
    ]
    if a.warmup > 0:
        cmd += ["--warmup-request-count", str(a.warmup)]
    if a.concurrency is not None:
        cmd += ["--concurrency", str(a.concurrency)]
    else:
        cmd += ["--request-rate", str(a.rate), "--arrival-pattern", "constant"]
    return cmd


def stat(d, name, key, scale=1.0):
    """aiperf's figure `name`.`key` in base units (`scale` converts from its unit)."""
    m = d.get(name) or {}
    v = m.get(key)
    return None if v is None else v * scale


def main():
    a = args()
    artifacts = a.artifacts or tempfile.mkdtemp(prefix="llm-bench-peer-")
    # The tokenizer is a local directory, so nothing is fetched. HF_HUB_OFFLINE is not set:
    # aiperf 0.13 then takes every tokenizer name for a hub repository id and refuses a path
    # ("Repo id must be in the form 'repo_name' or 'namespace/repo_name'").
    run = subprocess.run(aiperf_command(a, artifacts), capture_output=True, text=True)
    export = os.path.join(artifacts, "profile_export_aiperf.json")
    if run.returncode != 0 or not os.path.exists(export):
        sys.stderr.write(run.stdout[-6000:] + run.stderr[-6000:])
        sys.exit(f"aiperf failed (exit {run.returncode}); artifacts in {artifacts}")
    d = json.load(open(export))
    ms = 1e-3
    done = int(stat(d, "request_count", "avg") or 0)
    errors = sum(e.get("count", 0) for e in d.get("error_summary") or [])
    out = {
        "tool": "aiperf",
        "version": d.get("aiperf_version"),
        "requests": done,
        "errors": errors,
        "ttft_p50_s": stat(d, "time_to_first_token", "p50", ms),
        "itl_p50_s": stat(d, "inter_chunk_latency", "p50", ms),
        "itl_per_request_p50_s": stat(d, "inter_token_latency", "p50", ms),
        "output_tokens_per_s": stat(d, "output_token_throughput", "avg"),
        "requests_per_s": stat(d, "request_throughput", "avg"),
        "output_tokens_mean": stat(d, "output_sequence_length", "avg"),
        "input_tokens_mean": stat(d, "input_sequence_length", "avg"),
        "e2e_p50_s": stat(d, "request_latency", "p50", ms),
        "duration_s": stat(d, "benchmark_duration", "avg"),
    }
    if done == 0 or out["ttft_p50_s"] is None:
        sys.stderr.write(run.stdout[-6000:] + run.stderr[-6000:])
        sys.exit(f"aiperf measured no successful stream: {json.dumps(out)}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
