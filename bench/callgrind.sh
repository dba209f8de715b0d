#!/usr/bin/env bash
# Instructions and syscalls per proxied request, counted: deterministic for a given binary and
# inputs, whatever else the machine is doing, so small live-path changes can be compared on a
# noisy machine. Runs the sidecar under valgrind's callgrind with one proxy worker, sends N
# keep-alive POSTs (a KServe V2 body) through it to an nginx upstream, and also N=0, and prints
# (Ir(N) - Ir(0)) / N (user space) for the tap off (opaque route) and on (kserve_v2 route), and
# the same for nginx as a plain keep-alive reverse proxy (one worker, same body, same client).
# Then the same for gRPC unary ModelInfer calls (h2c both sides; a fixed-answer grpcio server
# upstream and a grpcio client on one channel, bench/grpc_peer.py) through an opaque route and a
# kserve_v2 route (tap and gRPC adapter on). Then, under `strace -c -f`, the system calls per request of inferwatch (opaque) and nginx.
#
#   bench/callgrind.sh [BINARY] [N]      (needs valgrind, strace and nginx:
#                                         scripts/install-peers.sh --bench; grpcio in $PYTHON,
#                                         default .venv-peers/bin/python, for the gRPC part)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/inferwatch}
N=${2:-3000}
WORK=$(mktemp -d)
KEEP=${KEEP:-}
PY=${PYTHON:-.venv-peers/bin/python}
trap 'kill $(cat "$WORK/up.pid" "$WORK/gup.pid" 2>/dev/null) 2>/dev/null || true; [[ -n "$KEEP" ]] && cp "$WORK"/cg.* "$KEEP"/; rm -rf "$WORK"' EXIT
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

# Send n keep-alive POSTs to port (waiting for it to listen first).
client() { # port n
  python3 - "$1" "$2" <<'PY'
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
}

total_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",","",$1); print $1; done=1}'; }

# nginx as a keep-alive reverse proxy in one process (no master), so one callgrind profile
# holds all of its work.
nginx_conf() { # port -> writes $WORK/px.conf
  cat > "$WORK/px.conf" <<CONF
master_process off; daemon off; worker_processes 1; pid $WORK/px.pid; error_log $WORK/px-err.log warn;
events { worker_connections 256; }
http { access_log off; keepalive_requests 1000000;
  upstream model { server 127.0.0.1:$UP; keepalive 16; }
  server { listen 127.0.0.1:$1;
    location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}
run_nginx() { # n -> total Ir
  local n=$1 port pid
  port=$(free_port); nginx_conf "$port"
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.nginx.$n" nginx -c "$WORK/px.conf" -p "$WORK" 2>"$WORK/vg-nginx.log" &
  pid=$!
  client "$port" "$n"
  sleep 1
  kill -QUIT "$pid"; wait "$pid" || true
  total_ir "$WORK/cg.nginx.$n"
}

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
  client "$port" "$n"
  sleep 1
  kill -TERM "$pid"; wait "$pid" || true
  total_ir "$WORK/cg.$proto.$n"
}
for proto in opaque kserve_v2; do
  base=$(run "$proto" 0); total=$(run "$proto" "$N")
  echo "$proto: $(( (total - base) / N )) instructions per request (user space, N=$N)"
done
base=$(run_nginx 0); total=$(run_nginx "$N")
echo "nginx (reverse proxy): $(( (total - base) / N )) instructions per request (user space, N=$N)"

# gRPC unary calls through an h2c route, opaque vs kserve_v2 (the adapter reading both messages).
run_grpc() { # protocol n -> total Ir
  local proto=$1 n=$2 port adm
  port=$(free_port); adm=$(free_port)
  cat > "$WORK/iw-g.toml" <<CONF
[proxy]
listen = "127.0.0.1:$port"
upstream = "http://127.0.0.1:$GUP"
upstream_protocol = "h2c"
worker_threads = 1
[[proxy.routes]]
name = "grpc"
path_prefix = "/inference.GRPCInferenceService/"
protocol = "$proto"
[admin]
listen = "127.0.0.1:$adm"
[log]
level = "warn"
CONF
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.grpc.$proto.$n" "$BIN" run --config "$WORK/iw-g.toml" 2>"$WORK/vg-g.log" &
  local pid=$!
  "$PY" bench/grpc_peer.py call "$port" "$n"
  if [[ "$proto" != opaque && "$n" -gt 0 ]]; then
    # The adapter must have read every call, or the figure would not be the adapter's cost.
    curl -s "http://127.0.0.1:$adm/metrics" | grep '^inferwatch_inspection_total' >&2 || true
  fi
  sleep 1
  kill -TERM "$pid"; wait "$pid" || true
  total_ir "$WORK/cg.grpc.$proto.$n"
}
if "$PY" -c 'import grpc' 2>/dev/null; then
  GUP=$(free_port)
  "$PY" bench/grpc_peer.py serve "$GUP" & echo $! >"$WORK/gup.pid"
  for proto in opaque kserve_v2; do
    base=$(run_grpc "$proto" 0); total=$(run_grpc "$proto" "$N")
    echo "gRPC $proto: $(( (total - base) / N )) instructions per unary call (user space, N=$N)"
  done
  kill "$(cat "$WORK/gup.pid")" 2>/dev/null || true
else
  echo "gRPC: skipped ($PY cannot import grpc: scripts/install-peers.sh)"
fi

# System calls per request: strace counts every call of the process and its threads while the
# client sends N requests, minus a run with none (start-up and shutdown).
count_calls() { awk '/^ *[0-9.]+ +[0-9.]+/ && $NF != "total" {s+=$4} END {print s+0}' "$1"; }
sys_iw() { # n -> total syscalls of inferwatch (opaque route)
  local n=$1 port adm
  port=$(free_port); adm=$(free_port)
  cat > "$WORK/iw-s.toml" <<CONF
[proxy]
listen = "127.0.0.1:$port"
upstream = "http://127.0.0.1:$UP"
worker_threads = 1
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
protocol = "opaque"
[admin]
listen = "127.0.0.1:$adm"
[log]
level = "warn"
CONF
  strace -f -c -o "$WORK/st.iw.$n" "$BIN" run --config "$WORK/iw-s.toml" 2>/dev/null &
  local pid=$!
  client "$port" "$n"
  sleep 0.5
  # SIGTERM to inferwatch (strace's child), not to strace: strace then writes its summary.
  pkill -TERM -P "$pid" || true; wait "$pid" || true
  count_calls "$WORK/st.iw.$n"
}
sys_nginx() { # n -> total syscalls of nginx
  local n=$1 port
  port=$(free_port); nginx_conf "$port"
  strace -f -c -o "$WORK/st.ngx.$n" nginx -c "$WORK/px.conf" -p "$WORK" 2>/dev/null &
  local pid=$!
  client "$port" "$n"
  sleep 0.5
  kill -QUIT "$(cat "$WORK/px.pid")" 2>/dev/null || true; wait "$pid" || true
  count_calls "$WORK/st.ngx.$n"
}
for who in iw nginx; do
  base=$(sys_$who 0); total=$(sys_$who "$N")
  python3 -c "print(f'$who: {($total - $base) / $N:.2f} system calls per request (strace -c -f, N=$N)')"
done
