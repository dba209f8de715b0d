#!/usr/bin/env bash
# Print the ONNX Runtime shared library inside a Python venv's onnxruntime wheel
# (onnxruntime/capi/libonnxruntime.so.<version>): the file ORT_DYLIB_PATH must name for the ONNX
# shadow. Usage: scripts/ort-dylib-path.sh [VENV]   (default .venv-peers at the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-peers}"
lib=$(ls -1 "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$lib" ]]; then
  echo "ort-dylib-path: no onnxruntime/capi/libonnxruntime.so.* under $venv (pip install onnxruntime>=1.23.2)" >&2
  exit 1
fi
readlink -f "$lib"
