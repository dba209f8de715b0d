#!/usr/bin/env bash
# The quick start: set up what `inferwatch demo` needs if it is missing (ONNX Runtime, from the
# onnxruntime wheel in .venv-peers), then build and run the demo; arguments go to the demo.
#   scripts/demo.sh                       until Ctrl-C; the drift comes after 2 minutes
#   scripts/demo.sh --drift-after 30s --duration 2m --qps 100 --listen 127.0.0.1:8081 --admin 127.0.0.1:9464
# An ORT_DYLIB_PATH already set (a system ONNX Runtime) is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
  scripts/install-peers.sh --demo
  ORT_DYLIB_PATH=$(cat .venv-peers/ORT_DYLIB_PATH)
  export ORT_DYLIB_PATH
fi
exec cargo run --release --locked --quiet -- demo "$@"
