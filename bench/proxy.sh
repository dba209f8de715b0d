#!/usr/bin/env bash
# Live-path overhead: wrk over loopback against the same upstream (nginx returning a 1 KiB JSON
# body) directly, through inferwatch, and through nginx and HAProxy as plain keep-alive reverse
# proxies with the same worker count. Prints throughput and latency, the ratios inferwatch/direct and inferwatch/nginx,
# the p99 added at half of inferwatch's max throughput, and inferwatch's RSS idle and peak.
#
#   bench/proxy.sh [--duration SECS] [--connections N] [--workers N] [--rounds N]
#                  [--request-shape 1x3x224x224]
#
# --request-shape sends a KServe V2 FP32 tensor of that shape as each request (values with 9
# significant digits, as a client serialising float32 writes them: 1x3x224x224 is ~2 MB of JSON)
# instead of the default 4-feature row.
#
# Each figure is the median of --rounds runs, with the three targets interleaved within a
# round, so a burst of background load hits all of them alike.
#
# Needs nginx, haproxy and wrk (scripts/install-peers.sh --bench). Everything binds 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
CONNS=32
WORKERS=$(nproc)
ROUNDS=3
SHAPE=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --request-shape) SHAPE=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in nginx haproxy wrk; do
  command -v "$tool" >/dev/null || { echo "bench/proxy.sh: $tool missing; run scripts/install-peers.sh --bench" >&2; exit 1; }
done

cargo build --release --locked --quiet
BIN=target/release/inferwatch
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP=$(free_port); IW=$(free_port); ADM=$(free_port); NGX=$(free_port); IW0=$(free_port); ADM0=$(free_port)
HAP=$(free_port)
BODY=$(python3 -c 'import json; print(json.dumps({"model_name":"m","outputs":[{"name":"probs","datatype":"FP32","shape":[1,64],"data":[round(i/64,6) for i in range(64)]}]}).replace("\"","\\\""))')

common="daemon off; error_log $WORK/nginx-error.log warn; pid PIDFILE;
events { worker_connections 4096; }"
# nginx's `return` answers before reading a request body; a model server reads the whole
# request first. With --request-shape the upstream reads it (nginx buffers a request body before
# proxying it) and then hands the request to a second server in the same process that answers.
if [[ -n "$SHAPE" ]]; then
  ANSWER=$(free_port)
  UPSTREAM_SERVERS="upstream answer { server 127.0.0.1:$ANSWER; keepalive 64; }
  server { listen 127.0.0.1:$UP; location / { proxy_pass http://answer; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:$ANSWER; location / { default_type application/json; return 200 \"$BODY\"; } }"
else
  UPSTREAM_SERVERS="server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 \"$BODY\"; } }"
fi
cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
${common//PIDFILE/$WORK/up.pid}
http { access_log off; keepalive_requests 1000000; client_max_body_size 64m; client_body_buffer_size 4m;
  $UPSTREAM_SERVERS }
CONF
cat > "$WORK/nginx-proxy.conf" <<CONF
worker_processes $WORKERS;
${common//PIDFILE/$WORK/px.pid}
http { access_log off; keepalive_requests 1000000; client_max_body_size 64m;
  upstream model { server 127.0.0.1:$UP; keepalive 256; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://model; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } } }
CONF
# HAProxy as a keep-alive reverse proxy: one process, $WORKERS threads, connections to the
# upstream reused across client requests (http-reuse always), no logging.
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAP
  default_backend be
backend be
  server up 127.0.0.1:$UP
CONF
cat > "$WORK/inferwatch.toml" <<CONF
[proxy]
listen = "127.0.0.1:$IW"
upstream = "http://127.0.0.1:$UP"
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
protocol = "kserve_v2"
[admin]
listen = "127.0.0.1:$ADM"
[log]
level = "warn"
CONF

nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)
nginx -c "$WORK/nginx-proxy.conf" -p "$WORK" & PIDS+=($!)
haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)
TOKIO_WORKER_THREADS=$WORKERS "$BIN" run --config "$WORK/inferwatch.toml" 2>"$WORK/inferwatch.log" & IWPID=$!; PIDS+=($IWPID)
# The same sidecar with the tap off: the price of inspection is the difference.
INFERWATCH__INSPECTION__ENABLED=false INFERWATCH__PROXY__LISTEN=127.0.0.1:$IW0 INFERWATCH__ADMIN__LISTEN=127.0.0.1:$ADM0 \
  TOKIO_WORKER_THREADS=$WORKERS "$BIN" run --config "$WORK/inferwatch.toml" 2>"$WORK/inferwatch0.log" & PIDS+=($!)
for p in $UP $IW $NGX $HAP $ADM $IW0; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
done
rss_kb() { awk -v k="$1" '$1==k":" {print $2}' "/proc/$IWPID/status"; }
IDLE_RSS=$(rss_kb VmRSS)

PATH_URL=/v2/models/m/infer
# Every request is a real KServe V2 inference (POST, JSON tensor), so the tap and the adapter do
# their full work on the inferwatch target.
if [[ -n "$SHAPE" ]]; then
  python3 - "$SHAPE" "$WORK/body.json" <<'PY'
import json, math, random, sys
shape = [int(d) for d in sys.argv[1].split("x")]
n = math.prod(shape)
rng = random.Random(7)
data = ",".join(f"{rng.uniform(-2.5, 2.5):.9g}" for _ in range(n))
body = '{"inputs":[{"name":"x","shape":%s,"datatype":"FP32","data":[%s]}]}' % (json.dumps(shape), data)
open(sys.argv[2], "w").write(body)
print(f"request: FP32 tensor {sys.argv[1]}, {len(body)} bytes of JSON", file=sys.stderr)
PY
else
  printf '%s' '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}' > "$WORK/body.json"
fi
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
# wrk's Lua hook: a fixed delay per connection paces an approximate open rate.
pace() { # rate connections -> lua file
  local ms; ms=$(python3 -c "print(max(1, round($2 * 1000 / $1)))")
  { cat "$WORK/post.lua"; echo "function delay() return $ms end"; } > "$WORK/pace.lua"; echo "$WORK/pace.lua"
}
run_wrk() { # name port [lua] -> "rps p50 p90 p99" (ms)
  local args=(-t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua")
  [[ -n "${3:-}" ]] && args=(-t2 -c"$4" -d"${DURATION}s" --latency -s "$3")
  wrk "${args[@]}" "http://127.0.0.1:$2$PATH_URL" > "$WORK/$1.wrk"
  python3 - "$WORK/$1.wrk" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
pct = {m.group(1): ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)", t, re.M)}
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {pct['50']:.3f} {pct['90']:.3f} {pct['99']:.3f} {errs.group(1) if errs else 0}")
PY
}

median() { # lines of "rps p50 p90 p99 non2xx" -> the line with the median rps
  sort -n -k1,1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
measure() { # label lua conns -> fills the associative array named by $1
  local -n out=$1
  local name port
  declare -A runs=()
  for r in $(seq "$ROUNDS"); do
    for t in direct:$UP inferwatch:$IW nginx:$NGX haproxy:$HAP iw-no-tap:$IW0; do
      name=${t%%:*}; port=${t##*:}
      [[ -n "${2:-}" && $name == iw-no-tap ]] && continue
      runs[$name]+="$(run_wrk "$1-$name-$r" "$port" "${2:-}" "${3:-}")"$'\n'
    done
  done
  for name in direct inferwatch nginx haproxy iw-no-tap; do
    [[ -z "${runs[$name]:-}" ]] && continue
    out[$name]=$(printf '%s' "${runs[$name]}" | median)
    printf "%-11s %10s %9s %9s %9s %6s\n" "$name" ${out[$name]}
  done
}

echo "== max throughput: wrk -t2 -c$CONNS -d${DURATION}s, $WORKERS worker(s) each, $(nproc) cores, median of $ROUNDS =="
printf "%-11s %10s %9s %9s %9s %6s\n" target req/s p50_ms p90_ms p99_ms non2xx
declare -A R
measure R
PEAK_RSS=$(rss_kb VmHWM)

read -r IW_RPS _ _ _ _ <<<"${R[inferwatch]}"
read -r D_RPS _ _ _ _ <<<"${R[direct]}"
read -r N_RPS _ _ _ _ <<<"${R[nginx]}"
read -r HA_RPS _ _ _ _ <<<"${R[haproxy]}"
read -r I0_RPS _ _ _ _ <<<"${R[iw-no-tap]}"
HALF=$((IW_RPS / 2)); PC=64
echo
echo "== paced at ~half of inferwatch's max ($HALF req/s target, $PC connections), median of $ROUNDS =="
printf "%-11s %10s %9s %9s %9s %6s\n" target req/s p50_ms p90_ms p99_ms non2xx
LUA=$(pace "$HALF" "$PC")
declare -A H
measure H "$LUA" "$PC"
read -r _ _ _ HD99 _ <<<"${H[direct]}"
read -r _ _ _ HI99 _ <<<"${H[inferwatch]}"
read -r _ _ _ HN99 _ <<<"${H[nginx]}"
read -r _ _ _ HH99 _ <<<"${H[haproxy]}"
PEAK_RSS=$(rss_kb VmHWM)

echo
python3 - <<PY
iw, d, n, ha = $IW_RPS, $D_RPS, $N_RPS, $HA_RPS
print(f"throughput inferwatch/direct = {iw/d:.3f}   inferwatch/nginx = {iw/n:.3f}   inferwatch/haproxy = {iw/ha:.3f}   (goal: >= 1.0 vs nginx, inspection on)")
print(f"inspection on/off = {iw/$I0_RPS:.3f}   no-tap/nginx = {$I0_RPS/n:.3f}")
print(f"p99 added at ~half load: inferwatch {($HI99-$HD99):.3f} ms, nginx {($HN99-$HD99):.3f} ms, haproxy {($HH99-$HD99):.3f} ms   (goal: inferwatch <= nginx)")
print(f"inferwatch RSS: idle {$IDLE_RSS/1024:.1f} MiB, peak {$PEAK_RSS/1024:.1f} MiB   (goals: < 20 MiB idle, < 64 MiB under load)")
PY
M=$(curl -s "http://127.0.0.1:$ADM/metrics")
REQS=$(awk '/^inferwatch_requests_total/ {s+=$2} END {print s+0}' <<<"$M")
echo "inferwatch counted $REQS requests; inspection: $(grep '^inferwatch_inspection_total' <<<"$M" | sed 's/inferwatch_inspection_total//' | tr '\n' ' ')"
