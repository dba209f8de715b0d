"""MLPerf LoadGen driving HTTP GETs at a URL: the reference run for tests/bench_loadgen.rs.

usage: loadgen_sut.py URL single|server QPS QUERIES OUTDIR

The SUT sends each query as an HTTP GET on a pooled keep-alive connection from a worker
thread and completes it when the whole response is read, so LoadGen times exactly what
`inferwatch bench` times. LoadGen writes mlperf_log_summary.txt into OUTDIR.
"""
import http.client
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import mlperf_loadgen as lg

url, scenario, qps, queries, outdir = sys.argv[1:6]
qps, queries = float(qps), int(queries)
target = urllib.parse.urlparse(url)
local = threading.local()


def query(sample):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        local.conn = conn
    try:
        conn.request("GET", target.path or "/")
        conn.getresponse().read()
    except Exception:
        local.conn = None
    lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0)])


pool = ThreadPoolExecutor(max_workers=64)


def issue(samples):
    for s in samples:
        pool.submit(query, s)


def flush():
    pass


sut = lg.ConstructSUT(issue, flush)
qsl = lg.ConstructQSL(1024, 1024, lambda idx: None, lambda idx: None)
settings = lg.TestSettings()
settings.mode = lg.TestMode.PerformanceOnly
settings.min_query_count = queries
settings.max_query_count = queries
settings.min_duration_ms = 0
if scenario == "single":
    settings.scenario = lg.TestScenario.SingleStream
    settings.single_stream_expected_latency_ns = 5_000_000
else:
    settings.scenario = lg.TestScenario.Server
    settings.server_target_qps = qps
    settings.server_target_latency_ns = 1_000_000_000
log = lg.LogSettings()
log.log_output.outdir = outdir
log.log_output.copy_summary_to_stdout = False
lg.StartTestWithLogSettings(sut, qsl, settings, log)
lg.DestroyQSL(qsl)
lg.DestroySUT(sut)
pool.shutdown()
