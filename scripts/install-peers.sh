#!/usr/bin/env bash
# Install the real peers the tests and benchmarks use (../shared/PEERS.md), idempotently.
#   scripts/install-peers.sh          what the test suite needs (promtool, scipy in .venv-peers)
#   scripts/install-peers.sh --bench  also nginx, wrk and hyperfine for bench/*.sh
set -euo pipefail

want=(prometheus)
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
