#!/usr/bin/env bash
# Install the real peers the tests and benchmarks use (../shared/PEERS.md), idempotently.
#   scripts/install-peers.sh          what the test suite needs (promtool, chromium, scipy and
#                                     mlperf_loadgen in .venv-peers)
#   scripts/install-peers.sh --bench  also nginx, wrk and hyperfine for bench/*.sh
set -euo pipefail

want=(prometheus)
# Headless Chromium renders the bench's HTML report in tests/bench_report.rs. A browser already on
# the PATH (any packaging) serves as well, so the package is only wanted when none is found.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  want+=(chromium)
fi
if [[ "${1:-}" == "--bench" ]]; then
  want+=(nginx wrk hyperfine)
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

# scipy in a project-local venv: the drift tests (tests/drift_scipy.rs) check our PSI and KS values
# against scipy's on identical data. Created once; later runs only check that scipy imports.
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv-peers"
if ! "$venv/bin/python" -c "import scipy" >/dev/null 2>&1; then
  echo "install-peers: creating .venv-peers with scipy" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check scipy
fi

# MLPerf LoadGen (PyPI mlcommons-loadgen, module mlperf_loadgen): the reference load generator
# that tests/bench_loadgen.rs compares `inferwatch bench` against. Added to the same venv only when
# the module does not import yet, so reruns stay quiet.
if ! "$venv/bin/python" -c "import mlperf_loadgen" >/dev/null 2>&1; then
  echo "install-peers: adding mlcommons-loadgen to .venv-peers" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check mlcommons-loadgen
fi
