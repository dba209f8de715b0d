#!/usr/bin/env bash
# gpu-check.sh: end-to-end check of GPU energy per inference on a machine with an NVIDIA GPU.
#
# Needs: the NVIDIA driver (nvidia-smi, libnvidia-ml.so.1), python3 with PyTorch built for CUDA,
# and a prebuilt inferwatch binary (no Rust toolchain, no internet needed). Usage:
#
#   scripts/gpu-check.sh [path/to/inferwatch]        # default target/release/inferwatch
#
# What it does: starts a small python upstream that runs PyTorch matmuls on the GPU for every
# request, runs inferwatch in front of it with the nvml energy source, sends REQUESTS requests,
# and checks that
#   1. inferwatch_gpu_energy_joules_total (and inferwatch_energy_joules_total{source="nvml"}) rose;
#   2. inferwatch_energy_per_inference_joules{kind="total",source="nvml"}, read while the load is
#      steady, is positive and within TOLERANCE (20%) of mean power × duration ÷ requests, where
#      mean power comes from nvidia-smi polled independently during the load.
# It prints every figure and exits non-zero on a failed check. It is sized to finish well under
# 5 minutes (the load runs about 30-60 s; every wait has a timeout).
set -euo pipefail

BIN=${1:-target/release/inferwatch}
REQUESTS=${REQUESTS:-400}          # fixed number of requests
MATMULS=${MATMULS:-24}             # 4096x4096 fp32 matmuls per request (about 0.1 s on an H100)
WINDOW_SECS=${WINDOW_SECS:-5}      # attribution window; the load lasts several windows
TOLERANCE=${TOLERANCE:-0.20}
PYTHON=${PYTHON:-python3}

die() { echo "gpu-check: FAIL: $*" >&2; exit 1; }
say() { echo "gpu-check: $*"; }

[ -x "$BIN" ] || die "no executable inferwatch at $BIN (build it with cargo build --release)"
command -v "$PYTHON" >/dev/null || die "python3 not found"
"$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || die "PyTorch with CUDA is not available to $PYTHON"

# The upstream and the sidecar must mean the same GPU: CUDA's device 0, numbered like NVML.
export CUDA_DEVICE_ORDER=PCI_BUS_ID
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
GPU_UUID=$("$PYTHON" - <<'EOF'
import torch
p = torch.cuda.get_device_properties(0)
u = getattr(p, "uuid", None)
print(("GPU-" + str(u)) if u is not None and not str(u).startswith("GPU-") else (u or ""))
EOF
)
say "GPU: $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))') ${GPU_UUID:-(uuid unknown)}"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

read -r UP_PORT PROXY_PORT ADMIN_PORT < <("$PYTHON" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
EOF
)

cat >"$WORK/upstream.py" <<'EOF'
# A tiny model server: every request runs MATMULS fp32 matmuls on the GPU and waits for them.
import json, os, sys, torch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

torch.backends.cuda.matmul.allow_tf32 = False
n = int(os.environ["MATMULS"])
dev = torch.device("cuda:0")
a = torch.randn(4096, 4096, device=dev)
b = torch.randn(4096, 4096, device=dev)
for _ in range(3):  # warm up: CUDA context, cuBLAS handles
    (a @ b).sum().item()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def work(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        c = a
        for _ in range(n):
            c = (c @ b) * 1e-3
        s = float(c.sum().item())  # synchronises
        body = json.dumps({"outputs": [{"name": "sum", "data": [s]}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = work
    do_GET = work

srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
srv.serve_forever()
EOF

MATMULS=$MATMULS "$PYTHON" "$WORK/upstream.py" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
for _ in $(seq 1 120); do
    grep -q ready "$WORK/upstream.log" 2>/dev/null && break
    kill -0 "$UP_PID" 2>/dev/null || { cat "$WORK/upstream.log" >&2; die "upstream exited"; }
    sleep 0.5
done
grep -q ready "$WORK/upstream.log" || die "upstream not ready within 60 s"

DEVICES='[]'
SMI_ID=${CUDA_VISIBLE_DEVICES%%,*}
if [ -n "$GPU_UUID" ]; then
    DEVICES="[\"$GPU_UUID\"]"
    SMI_ID=$GPU_UUID
fi
cat >"$WORK/inferwatch.toml" <<EOF
[proxy]
listen = "127.0.0.1:$PROXY_PORT"
upstream = "http://127.0.0.1:$UP_PORT"
[[proxy.routes]]
name = "infer"
path_prefix = "/v2/models/"
model = "matmul"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[energy]
nvml = "on"
nvml_devices = $DEVICES
rapl = "off"
estimate = "off"
interval_secs = 0.2
window_secs = $WINDOW_SECS
[system]
pid = $UP_PID
interval_secs = 1.0
[log]
level = "inferwatch=debug,info"
EOF
"$BIN" check-config --config "$WORK/inferwatch.toml" >/dev/null || die "config rejected"
"$BIN" run --config "$WORK/inferwatch.toml" >"$WORK/inferwatch.log" 2>&1 &
PIDS+=("$!")

cat >"$WORK/load.py" <<'EOF'
# Waits for the nvml source, sends the requests, reads the metrics, checks the figures.
import json, os, re, subprocess, sys, threading, time, urllib.request

proxy, admin = os.environ["PROXY"], os.environ["ADMIN"]
requests = int(os.environ["REQUESTS"])
window = float(os.environ["WINDOW_SECS"])
tolerance = float(os.environ["TOLERANCE"])

def scrape():
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        return r.read().decode()

def value(text, name, **labels):
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, v = line.rsplit(" ", 1)
        got = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(got.get(k) == w for k, w in labels.items()):
            total += float(v)
            found = True
    return total if found else None

deadline = time.time() + 60
while True:
    try:
        if value(scrape(), "inferwatch_energy_source_up", source="nvml") == 1.0:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("gpu-check: FAIL: nvml source not up within 60 s (see inferwatch.log)")
    time.sleep(0.5)

# Independent power readings: nvidia-smi, polled for the whole load.
watts, stop = [], threading.Event()
def poll():
    while not stop.is_set():
        try:
            out = subprocess.run(
                ["nvidia-smi", "-i", os.environ["SMI_ID"], "--query-gpu=power.draw", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=5).stdout.strip()
            watts.append(float(out.splitlines()[0]))
        except Exception:
            pass
        stop.wait(0.2)
poller = threading.Thread(target=poll, daemon=True)

before = scrape()
e0 = value(before, "inferwatch_energy_joules_total", source="nvml")
g0 = value(before, "inferwatch_gpu_energy_joules_total")
poller.start()
t0 = time.time()
steady = None
for i in range(requests):
    req = urllib.request.Request(f"http://{proxy}/v2/models/matmul/infer", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        if r.status != 200:
            sys.exit(f"gpu-check: FAIL: request {i} got {r.status}")
    # Read the gauge once the window has seen only steady load (after 1.5 windows).
    if steady is None and time.time() - t0 > 1.5 * window and i > requests * 0.6:
        steady = value(scrape(), "inferwatch_energy_per_inference_joules",
                       source="nvml", kind="total", route="infer")
t1 = time.time()
stop.set()
poller.join()
time.sleep(1.0)  # let the sampler take its last readings
after = scrape()
e1 = value(after, "inferwatch_energy_joules_total", source="nvml")
g1 = value(after, "inferwatch_gpu_energy_joules_total")
final = value(after, "inferwatch_energy_per_inference_joules", source="nvml", kind="total", route="infer")
dynamic = value(after, "inferwatch_energy_per_inference_joules", source="nvml", kind="dynamic", route="infer")
idle = value(after, "inferwatch_energy_idle_power_watts", source="nvml")
util = value(after, "inferwatch_gpu_model_server_utilization_ratio")
duration = t1 - t0
if steady is None:
    # The load was shorter than 1.5 windows: fall back to the gauge after it (its window then
    # holds up to 1 s of idle after the load as well).
    print("gpu-check: note: load shorter than 1.5 windows, using the gauge read after it")
    steady = final
if not watts:
    sys.exit("gpu-check: FAIL: no nvidia-smi power readings")
mean_w = sum(watts) / len(watts)
expected = mean_w * duration / requests
counter_per = (e1 - e0) / requests if e0 is not None and e1 is not None else None

print(f"gpu-check: requests                     {requests} in {duration:.1f} s ({requests/duration:.1f}/s)")
print(f"gpu-check: nvidia-smi mean power        {mean_w:.1f} W over {len(watts)} readings")
print(f"gpu-check: expected J/inference         {expected:.3f} J (mean power x duration / requests)")
print(f"gpu-check: inferwatch J/inference       {steady} J (window gauge, steady load)")
print(f"gpu-check: inferwatch J/inference       {final} J (window gauge, after the load)")
print(f"gpu-check: inferwatch dynamic J/inf     {dynamic} J (idle power {idle} W)")
print(f"gpu-check: energy counter rose          {g0} -> {g1} J (gpu), {e0} -> {e1} J (source nvml)")
print(f"gpu-check: counter delta / requests     {counter_per} J (includes up to 1 s of idle after the load)")
print(f"gpu-check: model server GPU utilization {util}")

failures = []
if g0 is None or g1 is None or not g1 > g0:
    failures.append("inferwatch_gpu_energy_joules_total did not rise")
if e0 is None or e1 is None or not e1 > e0:
    failures.append('inferwatch_energy_joules_total{source="nvml"} did not rise')
if steady is None or not steady > 0:
    failures.append(f"J/inference gauge not positive during the load: {steady}")
elif abs(steady - expected) > tolerance * expected:
    failures.append(f"J/inference {steady:.3f} J is not within {tolerance:.0%} of {expected:.3f} J")
if counter_per is not None and abs(counter_per - expected) > tolerance * expected:
    failures.append(f"counter delta per request {counter_per:.3f} J is not within {tolerance:.0%} of {expected:.3f} J")
if failures:
    for f in failures:
        print("gpu-check: FAIL:", f, file=sys.stderr)
    sys.exit(1)
print("gpu-check: PASS")
EOF

set +e
SMI_ID=$SMI_ID PROXY="127.0.0.1:$PROXY_PORT" ADMIN="127.0.0.1:$ADMIN_PORT" REQUESTS=$REQUESTS \
    WINDOW_SECS=$WINDOW_SECS TOLERANCE=$TOLERANCE timeout 240 "$PYTHON" "$WORK/load.py"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "--- inferwatch.log (last 40 lines)" >&2
    tail -n 40 "$WORK/inferwatch.log" >&2 || true
    echo "--- upstream.log (last 20 lines)" >&2
    tail -n 20 "$WORK/upstream.log" >&2 || true
    [ "$rc" -eq 124 ] && die "load did not finish within 240 s"
    exit "$rc"
fi
