#!/usr/bin/env bash
# Soak: an hour (by default) of mixed traffic through inferwatch in front of a real nginx
# upstream, sampling inferwatch's RSS and open fds every --every seconds into a CSV, to show
# that memory and descriptors stay flat. Not run in CI.
#
#   bench/soak.sh [--duration SECS] [--every SECS] [--out FILE] [--connections N] [--rate RPS]
#
# The mix, all at once: wrk keep-alive load over --connections (at about --rate requests/s in all:
# each connection waits connections/rate between requests; --rate 0 runs wrk closed-loop at full
# speed, which on a small shared machine measures the CPU more than the soak), curl loops of short-lived connections,
# oversized headers (431), CONNECT and WebSocket upgrades (refused and counted), and scrapes of
# /metrics. The upstream closes idle keep-alive connections after 2 s, so the pool's retry path
# is exercised too. At the end: the first/last/max RSS and fds, and inferwatch's request counters.
#
# Needs nginx, wrk and curl (scripts/install-peers.sh --bench). Everything binds 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=3600
EVERY=10
OUT=soak.csv
CONNS=16
RATE=200
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench/soak.sh: $tool missing; run scripts/install-peers.sh --bench" >&2; exit 1; }
done

cargo build --release --locked --quiet
BIN=target/release/inferwatch
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
UP=$(free_port); IW=$(free_port); ADM=$(free_port)

cat > "$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off; error_log $WORK/nginx-error.log warn; pid $WORK/up.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 2s;
  server { listen 127.0.0.1:$UP; location / { default_type application/json;
    return 200 '{"model_name":"m","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[1]}]}'; } } }
CONF
nginx -c "$WORK/upstream.conf" -p "$WORK" & PIDS+=($!)

cat > "$WORK/inferwatch.toml" <<CONF
[proxy]
listen = "127.0.0.1:$IW"
upstream = "http://127.0.0.1:$UP"
worker_threads = 2
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
protocol = "kserve_v2"
model = "m"
[admin]
listen = "127.0.0.1:$ADM"
[log]
level = "warn"
CONF
"$BIN" run --config "$WORK/inferwatch.toml" 2> "$WORK/inferwatch.log" & IWPID=$!; PIDS+=($IWPID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADM/healthz" >/dev/null && break; sleep 0.1; done

URL="http://127.0.0.1:$IW/v2/models/m/infer"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
if [[ "$RATE" != 0 ]]; then
  # wrk calls delay() before each request of a connection: CONNS connections, each one request per
  # CONNS/RATE seconds, make RATE requests/s in all.
  echo "function delay() return $((CONNS * 1000 / RATE)) end" >> "$WORK/post.lua"
fi
wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "$URL" > "$WORK/wrk.txt" 2>&1 & PIDS+=($!)
END=$((SECONDS + DURATION))
# Short-lived connections, refusals and scrapes, in the background until the end.
(
  big=$(head -c 100000 /dev/zero | tr '\0' a)
  while (( SECONDS < END )); do
    curl -s -o /dev/null -X POST -H 'content-type: application/json' -d '{"inputs":[]}' "$URL" || true
    curl -s -o /dev/null -H "x-big: $big" "$URL" || true
    curl -s -o /dev/null -X CONNECT "http://127.0.0.1:$IW/" || true
    curl -s -o /dev/null -H 'connection: upgrade' -H 'upgrade: websocket' "$URL" || true
    curl -s -o /dev/null "http://127.0.0.1:$ADM/metrics" || true
    sleep 0.2
  done
) & PIDS+=($!)

echo "unix_secs,rss_bytes,open_fds" > "$OUT"
while (( SECONDS < END )); do
  rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$IWPID/status")
  fds=$(ls "/proc/$IWPID/fd" | wc -l)
  echo "$(date +%s),$rss,$fds" >> "$OUT"
  sleep "$EVERY"
done
wait "${PIDS[2]}" 2>/dev/null || true

echo "samples: $OUT"
python3 - "$OUT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rss = [int(r["rss_bytes"]) for r in rows]; fds = [int(r["open_fds"]) for r in rows]
mb = lambda b: f"{b / 2**20:.1f} MiB"
print(f"RSS first {mb(rss[0])} last {mb(rss[-1])} max {mb(max(rss))}; fds first {fds[0]} last {fds[-1]} max {max(fds)} ({len(rows)} samples)")
PY
grep -E "Requests/sec|requests in" "$WORK/wrk.txt" || true
curl -s "http://127.0.0.1:$ADM/metrics" | grep -E '^inferwatch_(requests_total|requests_rejected_total|upstream_retries_total)' | grep -v ' 0$' || true
