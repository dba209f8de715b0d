#!/usr/bin/env bash
# Instructions per proxied request (user space), counted by callgrind: deterministic for a
# given binary and inputs, whatever else the machine is doing, so small live-path changes can be
# compared on a noisy machine. Runs the sidecar under valgrind with one proxy worker, sends N
# keep-alive POSTs (a KServe V2 body) through it to an nginx upstream, and also N=0, and prints
# (Ir(N) - Ir(0)) / N for the tap off (opaque route) and on (kserve_v2 route).
#
#   bench/callgrind.sh [BINARY] [N]      (needs valgrind and nginx: scripts/install-peers.sh --bench)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/inferwatch}
N=${2:-3000}
WORK=$(mktemp -d)
KEEP=${KEEP:-}
trap 'kill $(cat "$WORK/up.pid" 2>/dev/null) 2>/dev/null || true; [[ -n "$KEEP" ]] && cp "$WORK"/cg.* "$KEEP"/; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP=$(free_port)
cat > "$WORK/up.conf" <<CONF
worker_processes 1; pid $WORK/up.pid; error_log $WORK/err.log warn;
events { worker_connections 256; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json;
    return 200 '{"model_name":"m","outputs":[{"name":"probs","datatype":"FP32","shape":[1,3],"data":[0.1,0.7,0.2]}]}'; } } }
CONF
nginx -c "$WORK/up.conf" -p "$WORK"

run() { # protocol n -> total Ir
  local proto=$1 n=$2 port adm
  port=$(free_port); adm=$(free_port)
  cat > "$WORK/iw.toml" <<CONF
[proxy]
listen = "127.0.0.1:$port"
upstream = "http://127.0.0.1:$UP"
worker_threads = 1
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
protocol = "$proto"
[admin]
listen = "127.0.0.1:$adm"
[log]
level = "warn"
CONF
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$proto.$n" "$BIN" run --config "$WORK/iw.toml" 2>"$WORK/vg.log" &
  local pid=$!
  python3 - "$port" "$n" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30); c.connect(); break
    except OSError:
        time.sleep(0.1)
body = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
for _ in range(n):
    c.request("POST", "/v2/models/m/infer", body, {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  sleep 1
  kill -TERM "$pid"; wait "$pid" || true
  callgrind_annotate "$WORK/cg.$proto.$n" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}'
}
for proto in opaque kserve_v2; do
  base=$(run "$proto" 0); total=$(run "$proto" "$N")
  echo "$proto: $(( (total - base) / N )) instructions per request (user space, N=$N)"
done
