#!/usr/bin/env python3
"""Writes the Grafana dashboards in this folder (dashboards/*.json) from the panel lists below.

The JSON files are committed and importable as they are (Grafana → Dashboards → Import, or the
Helm chart's grafanaDashboards ConfigMaps); this script is how they are kept consistent: run
`python3 dashboards/generate.py` after editing it. Every PromQL expression here is evaluated
against a real Prometheus scraping a real sidecar by tests/dashboards.rs.

Variables: $datasource (a Prometheus data source), $pod, $route, $model (multi-value, "All" =
.*). Queries use the `pod` label that a PodMonitor/ServiceMonitor (or Prometheus' Kubernetes
service discovery with the usual relabelling) puts on every series.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'pod=~"$pod", route=~"$route", model=~"$model"'
RM = 'route=~"$route", model=~"$model"'
POD = 'pod=~"$pod"'
RI = "$__rate_interval"
# Outcomes that are failures whatever the status class: cut responses, gRPC calls with a non-OK
# grpc-status, and gRPC calls the sidecar failed itself (answered HTTP 200 trailers-only). The
# same list as the recording rule route_model:inferwatch_request_errors:ratio_rate5m.
ERROR_OUTCOMES = ("response_reset|response_body_timeout|grpc_error|connect_error|connect_timeout"
                  "|upstream_reset|first_byte_timeout|overloaded")


def var_query(name, label, query, include_all=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": include_all,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def templating(extra=()):
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            },
            var_query("pod", "Pod", "label_values(inferwatch_build_info, pod)"),
            var_query("route", "Route", f'label_values(inferwatch_requests_total{{{POD}}}, route)'),
            var_query(
                "model",
                "Model",
                f'label_values(inferwatch_requests_total{{{POD}, route=~"$route"}}, model)',
            ),
            *extra,
        ]
    }


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


class Board:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title):
        self.newline()
        self.panels.append(
            {
                "id": self.next_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.next_id += 1
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def panel(self, title, targets, unit="short", kind="timeseries", w=12, h=8,
              description="", overrides=None, options=None, min_=None, max_=None):
        if self.x + w > 24:
            self.newline()
        defaults = {"unit": unit}
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                  "showPoints": "never", "spanNulls": False}
        p = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options
            or {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        }
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)


def dashboard(uid, title, description, board, extra_vars=(), annotations=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["inferwatch"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "links": [{"title": "inferwatch", "type": "dashboards", "tags": ["inferwatch"], "asDropdown": True}],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *annotations,
            ]
        },
        "templating": templating(extra_vars),
        "panels": board.panels,
    }


def hq(q, metric, sel=SEL, by="le, route, model"):
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


# ---------------------------------------------------------------------------------------------
def overview():
    b = Board()
    b.row("Traffic and errors")
    b.panel("Requests per second", [
        (f"sum by (route, model) (rate(inferwatch_requests_total{{{SEL}}}[{RI}]))", "{{route}} {{model}}"),
    ], unit="reqps", w=8)
    b.panel("Error ratio (5xx, cut responses, failed gRPC calls)", [
        (f'(sum by (route, model) (rate(inferwatch_requests_total{{{SEL}, code_class="5xx"}}[{RI}]) '
         f'or rate(inferwatch_requests_total{{{SEL}, outcome=~"{ERROR_OUTCOMES}"}}[{RI}])) '
         f"or sum by (route, model) (rate(inferwatch_requests_total{{{SEL}}}[{RI}])) * 0) "
         f"/ sum by (route, model) (rate(inferwatch_requests_total{{{SEL}}}[{RI}]))", "{{route}} {{model}}"),
    ], unit="percentunit", w=8, min_=0,
        description="The recording rule's definition: a 5xx, a response cut after its headers, a gRPC call "
                    "with a non-OK grpc-status, or a gRPC call the sidecar failed itself (HTTP 200 "
                    "trailers-only).")
    b.panel("Requests by outcome and status class", [
        (f"sum by (outcome, code_class) (rate(inferwatch_requests_total{{{SEL}}}[{RI}]))",
         "{{outcome}} {{code_class}}"),
    ], unit="reqps", w=8,
        description="outcome says why a request failed: connect_error/upstream_reset (502), "
                    "connect_timeout/first_byte_timeout (504), overloaded (503), body_too_large (413), "
                    "grpc_error (a gRPC call with a non-OK grpc-status), ...")
    b.panel("gRPC calls by code", [
        (f"sum by (route, grpc_code) (rate(inferwatch_grpc_calls_total{{{SEL}}}[{RI}]))",
         "{{route}} {{grpc_code}}"),
    ], unit="reqps", w=8,
        description="Finished gRPC calls by grpc-status: the model server's, or the one the sidecar "
                    "answered with itself (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED). "
                    "Empty when no route carries gRPC.")
    b.row("Latency")
    b.panel("p50 / p99 across pods (from histograms)", [
        (hq(0.5, "inferwatch_request_duration_seconds"), "p50 {{route}} {{model}}"),
        (hq(0.99, "inferwatch_request_duration_seconds"), "p99 {{route}} {{model}}"),
    ], unit="s", description="histogram_quantile over the buckets of every selected pod, summed: "
                             "the fleet's true quantile (within one bucket width, 15%).")
    b.panel("p50 / p99 per pod (windowed sketch, last 1 min) with upper confidence bound", [
        (f'max by (pod, route, model) (inferwatch_latency_quantile_seconds{{{SEL}, window="1m", q="0.5"}})',
         "p50 {{pod}} {{route}}"),
        (f'max by (pod, route, model) (inferwatch_latency_quantile_seconds{{{SEL}, window="1m", q="0.99"}})',
         "p99 {{pod}} {{route}}"),
        (f'max by (pod, route, model) (inferwatch_latency_quantile_upper_bound_seconds{{{SEL}, window="1m", q="0.99"}})',
         "p99 upper bound {{pod}} {{route}}"),
    ], unit="s", description="Each sidecar's own sliding-window quantiles (1% relative error). Quantiles do "
                             "not add up across pods: use the histogram panel for the fleet.")
    b.panel("Fleet p99 (recording rule, 5 min)", [
        (f"route_model:inferwatch_request_duration_seconds:p99_5m{{{RM}}}", "p99 {{route}} {{model}}"),
        (f"route_model:inferwatch_request_duration_seconds:p50_5m{{{RM}}}", "p50 {{route}} {{model}}"),
    ], unit="s", w=8)
    b.panel("Time to first byte p99", [
        (hq(0.99, "inferwatch_time_to_first_byte_seconds"), "{{route}} {{model}}"),
    ], unit="s", w=8)
    b.panel("In flight", [
        (f'sum by (pod, route) (inferwatch_in_flight_requests{{{POD}, route=~"$route"}})', "{{pod}} {{route}}"),
    ], w=8)
    b.row("Latency SLO (99% within 0.4097 s)")
    b.panel("Error budget burn rate", [
        (f"route_model:inferwatch_latency_slo_miss:ratio_rate5m{{{RM}}} / 0.01", "5m {{route}} {{model}}"),
        (f"route_model:inferwatch_latency_slo_miss:ratio_rate1h{{{RM}}} / 0.01", "1h {{route}} {{model}}"),
        (f"route_model:inferwatch_latency_slo_miss:ratio_rate6h{{{RM}}} / 0.01", "6h {{route}} {{model}}"),
        (f"route_model:inferwatch_latency_slo_miss:ratio_rate3d{{{RM}}} / 0.01", "3d {{route}} {{model}}"),
    ], unit="x", w=16, description="1 = spending the 1% error budget exactly over 30 days. "
                                   "InferwatchLatencySLOBurnFast pages at 14.4 (1h and 5m) or 6 (6h and 30m).")
    b.panel("SLO misses (last 1 h)", [
        (f"max(route_model:inferwatch_latency_slo_miss:ratio_rate1h{{{RM}}})", "worst route"),
    ], unit="percentunit", kind="stat", w=8)
    b.row("Goodput (routes with [proxy.routes.slo])")
    b.panel("Goodput ratio (recording rule, 5 min)", [
        (f"route_model:inferwatch_goodput:ratio_rate5m{{{RM}}}", "{{route}} {{model}}"),
    ], unit="percentunit", w=8, description="Share of classified requests (all but aborted) that met "
                                             "every bound of the route's SLO. InferwatchGoodputLow "
                                             "warns below 90%.")
    b.panel("Requests by SLO result", [
        (f"sum by (route, result) (rate(inferwatch_slo_requests_total{{{SEL}}}[{RI}]))", "{{route}} {{result}}"),
    ], unit="reqps", w=16, description="met, the first bound missed (missed_ttft, missed_tpot, "
                                       "missed_e2e), failed, or aborted (the client left before "
                                       "any bound passed; not in the ratio).")
    b.row("Streaming (OpenAI-compatible routes)")
    b.panel("Time to first token p50 / p99", [
        (hq(0.5, "inferwatch_time_to_first_token_seconds"), "p50 {{route}} {{model}}"),
        (hq(0.99, "inferwatch_time_to_first_token_seconds"), "p99 {{route}} {{model}}"),
    ], unit="s", w=8)
    b.panel("Inter-token latency p50 / p99", [
        (hq(0.5, "inferwatch_inter_token_latency_seconds"), "p50 {{route}} {{model}}"),
        (hq(0.99, "inferwatch_inter_token_latency_seconds"), "p99 {{route}} {{model}}"),
    ], unit="s", w=8)
    b.panel("Tokens per second", [
        (f"sum by (route, model, source) (rate(inferwatch_output_tokens_total{{{SEL}}}[{RI}]))", "out {{route}} {{model}} ({{source}})"),
        (f"sum by (route, model) (rate(inferwatch_input_tokens_total{{{SEL}}}[{RI}]))", "in {{route}} {{model}}"),
    ], w=8)
    b.panel("Time to second token p50 / p99", [
        (hq(0.5, "inferwatch_time_to_second_token_seconds"), "p50 {{route}} {{model}}"),
        (hq(0.99, "inferwatch_time_to_second_token_seconds"), "p99 {{route}} {{model}}"),
    ], unit="s", w=8, description="The stall after the first token: a scheduler prefilling other "
                                  "requests before decoding this one.")
    b.panel("Output tokens/s per request p50 / p10", [
        (hq(0.5, "inferwatch_output_tokens_per_second"), "p50 {{route}} {{model}}"),
        (hq(0.1, "inferwatch_output_tokens_per_second"), "p10 {{route}} {{model}}"),
    ], w=8, description="The reading speed a user gets after the first token; p10 is the slowest tenth.")
    b.panel("Prefix-cache hit ratio and reasoning tokens", [
        (f"route_model:inferwatch_prefix_cache_hit:ratio_rate5m{{{RM}}}", "cached share {{route}} {{model}}"),
        (f"sum by (route, model) (rate(inferwatch_reasoning_tokens_total{{{SEL}}}[{RI}])) / "
         f"sum by (route, model) (rate(inferwatch_output_tokens_total{{{SEL}}}[{RI}]))", "reasoning share {{route}} {{model}}"),
    ], unit="percentunit", w=8, description="Servers that report usage.prompt_tokens_details / "
                                            "completion_tokens_details only.")
    b.row("Engine saturation (the model server's own metrics, [engine])")
    b.panel("Requests running / waiting in the engine", [
        (f'sum by (pod, engine) (inferwatch_engine_requests_running{{{POD}}})', "running {{pod}}"),
        (f'sum by (pod, engine) (inferwatch_engine_requests_waiting{{{POD}}})', "waiting {{pod}}"),
    ], w=8, description="A growing waiting count while running stays flat: the engine is full and "
                        "requests queue (TTFT rises).")
    b.panel("KV-cache usage and prefix-cache hits", [
        (f'max by (pod) (inferwatch_engine_kv_cache_usage_ratio{{{POD}}})', "KV cache {{pod}}"),
        (f'max by (pod) (inferwatch_engine_prefix_cache_hit_ratio{{{POD}}})', "prefix hits {{pod}}"),
    ], unit="percentunit", w=8, description="KV cache near 100% means preemptions and queueing.")
    b.panel("Engine queue vs compute time, preemptions", [
        (f'sum by (pod) (rate(inferwatch_engine_queue_seconds_total{{{POD}}}[{RI}]))', "queue s/s {{pod}}"),
        (f'sum by (pod) (rate(inferwatch_engine_compute_seconds_total{{{POD}}}[{RI}]))', "compute s/s {{pod}}"),
        (f'sum by (pod) (rate(inferwatch_engine_preemptions_total{{{POD}}}[{RI}]))', "preemptions/s {{pod}}"),
    ], w=8, description="Seconds per second spent queued vs running: a queue share that grows says "
                        "the load is past the engine's capacity.")
    b.row("Sidecars")
    b.panel("Sidecars up", [
        (f'sum(up{{job=~".*inferwatch.*", {POD}}})', "up"),
    ], kind="stat", w=6)
    b.panel("Versions", [
        (f"count by (version) (inferwatch_build_info{{{POD}}})", "{{version}}"),
    ], kind="stat", w=6)
    b.panel("Inspection results", [
        (f'sum by (route, result) (rate(inferwatch_inspection_total{{{POD}, route=~"$route"}}[{RI}]))',
         "{{route}} {{result}}"),
    ], unit="reqps", w=12)
    return dashboard("inferwatch-overview", "inferwatch / Overview",
                     "Traffic, errors, tail latency and the latency SLO across the fleet.", b)


def quality():
    chart = var_query("chart", "SPC chart", f"label_values(inferwatch_spc_statistic{{{POD}}}, chart)")
    signal = var_query("signal", "Drift signal", f"label_values(inferwatch_drift_psi{{{POD}}}, signal)")
    ann = [
        {
            "name": "SPC alarms",
            "datasource": DS,
            "enable": True,
            "iconColor": "red",
            "expr": f'sum by (chart, signal, rule) (increase(inferwatch_spc_alarms_total{{{POD}, chart=~"$chart"}}[1m])) > 0',
            "step": "30s",
            "titleFormat": "SPC alarm {{chart}}",
            "textFormat": "{{signal}}: rule {{rule}}",
            "tagKeys": "chart,rule",
        },
        {
            "name": "SPC out of control",
            "datasource": DS,
            "enable": False,
            "iconColor": "orange",
            "expr": f'max by (chart, signal) (inferwatch_spc_alarm{{{POD}, chart=~"$chart"}}) == 1',
            "step": "30s",
            "titleFormat": "{{chart}} out of control",
            "textFormat": "{{signal}}",
            "tagKeys": "chart",
        },
    ]
    b = Board()
    b.row("Canary and shadow")
    b.panel("Canary accuracy", [
        (f"inferwatch_probe_accuracy_ratio{{{POD}}}", "{{pod}} {{probe}} {{window}}"),
    ], unit="percentunit", w=8, min_=0, max_=1)
    b.panel("Canary probes by result", [
        (f"sum by (probe, result) (rate(inferwatch_probes_total{{{POD}}}[{RI}]))", "{{probe}} {{result}}"),
    ], unit="ops", w=8)
    b.panel("Canary last run succeeded", [
        (f"min by (probe) (inferwatch_probe_success{{{POD}}})", "{{probe}}"),
    ], kind="stat", w=8)
    b.panel("Shadow agreement", [
        (f"inferwatch_shadow_agreement_ratio{{{POD}}}", "{{pod}} {{target}} {{window}}"),
    ], unit="percentunit", min_=0, max_=1)
    b.panel("Shadow comparisons by result", [
        (f"sum by (target, result) (rate(inferwatch_shadow_comparisons_total{{{POD}}}[{RI}]))",
         "{{target}} {{result}}"),
    ], unit="ops")
    b.row("SPC charts ($chart)")
    b.panel("Statistic with centre line and control limits", [
        (f'inferwatch_spc_statistic{{{POD}, chart=~"$chart"}}', "{{chart}} statistic {{pod}}"),
        (f'inferwatch_spc_center_line{{{POD}, chart=~"$chart"}}', "{{chart}} centre {{pod}}"),
        (f'inferwatch_spc_upper_control_limit{{{POD}, chart=~"$chart"}}', "{{chart}} UCL {{pod}}"),
        (f'inferwatch_spc_lower_control_limit{{{POD}, chart=~"$chart"}}', "{{chart}} LCL {{pod}}"),
    ], w=24, h=10, description="Red annotations mark signals (inferwatch_spc_alarms_total). Shewhart and p "
                               "charts plot the signal's units; EWMA and CUSUM plot standard errors.",
        overrides=[
            {"matcher": {"id": "byRegexp", "options": ".*(UCL|LCL).*"},
             "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]},
            {"matcher": {"id": "byRegexp", "options": ".*centre.*"},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}]},
        ])
    b.panel("Out of control", [
        (f'max by (chart, signal) (inferwatch_spc_alarm{{{POD}, chart=~"$chart"}})', "{{chart}}"),
    ], w=8, min_=0, max_=1)
    b.panel("Signals by rule", [
        (f'sum by (chart, rule) (increase(inferwatch_spc_alarms_total{{{POD}, chart=~"$chart"}}[{RI}]))',
         "{{chart}} {{rule}}"),
    ], w=8)
    b.panel("Learning baseline (Phase I)", [
        (f'max by (chart) (inferwatch_spc_phase1{{{POD}, chart=~"$chart"}})', "{{chart}}"),
    ], w=8, min_=0, max_=1)
    b.row("Drift ($signal)")
    b.panel("PSI against its no-drift threshold", [
        (f'inferwatch_drift_psi{{{POD}, signal=~"$signal"}}', "PSI {{signal}} {{pod}}"),
        (f'inferwatch_drift_psi_threshold{{{POD}, signal=~"$signal"}}', "threshold {{signal}} {{pod}}"),
    ], w=8)
    b.panel("KS statistic", [
        (f'inferwatch_drift_ks_statistic{{{POD}, signal=~"$signal"}}', "{{signal}} {{pod}}"),
    ], w=8)
    b.panel("p-values (KS, chi-square)", [
        (f'inferwatch_drift_ks_p_value{{{POD}, signal=~"$signal"}}', "KS {{signal}} {{pod}}"),
        (f'inferwatch_drift_chi_square_p_value{{{POD}, signal=~"$signal"}}', "chi2 {{signal}} {{pod}}"),
    ], w=8, description="Chi-square is only present for categorical drift tests.")
    b.panel("Drift alarm", [
        (f'max by (signal) (inferwatch_drift_alarm{{{POD}, signal=~"$signal"}})', "{{signal}}"),
    ], w=8, min_=0, max_=1)
    b.row("Predictions")
    b.panel("Predictions by class", [
        (f"sum by (route, model, class) (rate(inferwatch_predictions_total{{{SEL}}}[{RI}]))",
         "{{route}} {{model}} {{class}}"),
    ], unit="ops", w=8)
    b.panel("Confidence (median and mean)", [
        (hq(0.5, "inferwatch_prediction_confidence"), "median {{route}} {{model}}"),
        (f"sum by (route, model) (rate(inferwatch_prediction_confidence_sum{{{SEL}}}[{RI}])) "
         f"/ sum by (route, model) (rate(inferwatch_prediction_confidence_count{{{SEL}}}[{RI}]))",
         "mean {{route}} {{model}}"),
    ], unit="percentunit", w=8)
    b.panel("Input anomalies", [
        (f"sum by (route, model, kind) (rate(inferwatch_input_anomalies_total{{{SEL}}}[{RI}]))",
         "{{route}} {{kind}}"),
    ], unit="ops", w=8)
    return dashboard("inferwatch-quality", "inferwatch / Quality",
                     "Canary accuracy, shadow agreement, SPC charts with their limits and alarms, drift.",
                     b, extra_vars=(chart, signal), annotations=ann)


def energy():
    b = Board()
    b.row("Per inference")
    b.panel("Joules per inference per pod (sliding window)", [
        (f'inferwatch_energy_per_inference_joules{{{SEL}, kind="total"}}', "total {{pod}} {{route}} {{source}}"),
        (f'inferwatch_energy_per_inference_joules{{{SEL}, kind="dynamic"}}', "dynamic {{pod}} {{route}} {{source}}"),
    ], unit="J", description='source="estimate" is an estimate from CPU time, not a measurement.')
    b.panel("Fleet joules per inference (recording rule)", [
        (f"route_model_source:inferwatch_energy_per_inference_joules:ratio_rate5m{{{RM}}}",
         "{{route}} {{model}} {{source}}"),
    ], unit="J")
    b.panel("Fleet joules per output token (recording rule)", [
        (f"route_model_source:inferwatch_energy_per_output_token_joules:ratio_rate5m{{{RM}}}",
         "{{route}} {{model}} {{source}}"),
    ], unit="J", description="OpenAI-compatible routes: energy charged to the route over the tokens it generated.")
    b.panel("Energy charged to routes", [
        (f"sum by (route, model, source) (rate(inferwatch_energy_attributed_joules_total{{{SEL}}}[{RI}]))",
         "{{route}} {{model}} {{source}}"),
    ], unit="watt")
    b.row("Power")
    b.panel("Power by source", [
        (f"sum by (source) (inferwatch_energy_power_watts{{{POD}}})", "{{source}}"),
        (f"sum by (source) (inferwatch_energy_idle_power_watts{{{POD}}})", "idle {{source}}"),
    ], unit="watt", w=8)
    b.panel("Energy sources up", [
        (f"inferwatch_energy_source_up{{{POD}}}", "{{pod}} {{source}}"),
    ], w=8, min_=0, max_=1, description="0 for a source this host lacks (no GPU, no RAPL permission) is normal.")
    b.panel("CPU package power (RAPL)", [
        (f"sum by (pod, zone) (rate(inferwatch_cpu_energy_joules_total{{{POD}}}[{RI}]))", "{{pod}} {{zone}}"),
    ], unit="watt", w=8)
    b.row("GPU (NVML)")
    gpu = ("Present on GPU nodes only: the sidecar reads the GPUs named in the model container's "
           "NVIDIA_VISIBLE_DEVICES.")
    b.panel("GPU power", [
        (f"inferwatch_gpu_power_watts{{{POD}}}", "{{pod}} GPU {{gpu}}"),
    ], unit="watt", w=8, description=gpu)
    b.panel("GPU utilization", [
        (f"inferwatch_gpu_utilization_ratio{{{POD}}}", "{{pod}} GPU {{gpu}}"),
        (f"inferwatch_gpu_model_server_utilization_ratio{{{POD}}}", "model server {{pod}} GPU {{gpu}}"),
    ], unit="percentunit", w=8, min_=0, max_=1, description=gpu)
    b.panel("GPU memory used", [
        (f"inferwatch_gpu_memory_used_bytes{{{POD}}}", "{{pod}} GPU {{gpu}}"),
    ], unit="bytes", w=8, description=gpu)
    b.panel("GPU energy rate", [
        (f"sum by (pod, gpu) (rate(inferwatch_gpu_energy_joules_total{{{POD}}}[{RI}]))", "{{pod}} GPU {{gpu}}"),
    ], unit="watt", w=24, h=6, description=gpu)
    return dashboard("inferwatch-energy", "inferwatch / Energy",
                     "Joules per inference and per token, power by source, GPU utilization.", b)


def capacity():
    b = Board()
    b.row("Throughput against latency")
    b.panel("Throughput and p99", [
        (f"sum(rate(inferwatch_requests_total{{{SEL}}}[{RI}]))", "requests/s"),
        (hq(0.99, "inferwatch_request_duration_seconds", by="le"), "p99"),
    ], w=24, h=10, description="Where p99 turns upward as throughput rises is the knee: plan replicas below it.",
        overrides=[{"matcher": {"id": "byName", "options": "p99"},
                    "properties": [{"id": "unit", "value": "s"},
                                   {"id": "custom.axisPlacement", "value": "right"}]}])
    b.panel("Throughput per pod", [
        (f"sum by (pod) (rate(inferwatch_requests_total{{{SEL}}}[{RI}]))", "{{pod}}"),
    ], unit="reqps", w=8)
    b.panel("Concurrency per pod", [
        (f'sum by (pod) (inferwatch_in_flight_requests{{{POD}, route=~"$route"}})', "{{pod}}"),
    ], w=8)
    b.panel("Batch size p50 / p99", [
        (hq(0.5, "inferwatch_batch_size"), "p50 {{route}} {{model}}"),
        (hq(0.99, "inferwatch_batch_size"), "p99 {{route}} {{model}}"),
    ], w=8)
    b.row("Resources")
    b.panel("Model server CPU (cores)", [
        (f"sum by (pod) (rate(inferwatch_model_server_cpu_seconds_total{{{POD}}}[{RI}]))", "{{pod}}"),
    ], w=8, description="Needs [system] to name the model server (shareProcessNamespace in Kubernetes).")
    b.panel("Model server memory", [
        (f"inferwatch_model_server_resident_memory_bytes{{{POD}}}", "{{pod}}"),
    ], unit="bytes", w=8)
    b.panel("Host CPU utilization", [
        (f"inferwatch_host_cpu_utilization_ratio{{{POD}}}", "{{pod}}"),
    ], unit="percentunit", w=8, min_=0, max_=1)
    b.panel("Sidecar CPU (cores)", [
        (f'sum by (pod) (rate(process_cpu_seconds_total{{job=~".*inferwatch.*", {POD}}}[{RI}]))', "{{pod}}"),
    ], w=12, description="inferwatch's own cost, for sizing the sidecar's resources.")
    b.panel("Sidecar memory", [
        (f'process_resident_memory_bytes{{job=~".*inferwatch.*", {POD}}}', "{{pod}}"),
    ], unit="bytes", w=12)
    return dashboard("inferwatch-capacity", "inferwatch / Capacity",
                     "Throughput against latency, concurrency, batch sizes and resource use, for capacity planning.", b)


def main():
    for name, d in [("overview", overview()), ("quality", quality()),
                    ("energy", energy()), ("capacity", capacity())]:
        path = HERE / f"inferwatch-{name}.json"
        path.write_text(json.dumps(d, indent=2) + "\n")
        print(path)


if __name__ == "__main__":
    main()
