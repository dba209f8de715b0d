"""Render and lint the Helm chart with Helm's own engine (helm_python), for tests/helm.rs.

usage: helm_render.py OUT_DIR CASE=CHART_DIR[:VALUES_FILE] ...

For each case: lint (strict), render with the values file, and write every non-empty manifest
document to OUT_DIR/CASE/NN-<kind>-<name>.yaml; then OUT_DIR/report.json with, per case, the
lint report and the parsed documents ({"file", "doc"}). A render error is reported, not raised.
"""
import json
import pathlib
import sys

import helm_python
import yaml

helm_python.disable_logging()
out = pathlib.Path(sys.argv[1])
report = {}
for arg in sys.argv[2:]:
    case, spec = arg.split("=", 1)
    chart_dir, _, values_file = spec.partition(":")
    values = yaml.safe_load(open(values_file)) if values_file else {}
    entry = {"lint": helm_python.lint(chart_dir, values, strict=True, kube_version="v1.33.0"),
             "docs": [], "error": None}
    try:
        chart = helm_python.Chart.load(chart_dir)
        rendered = chart.render(values, name="iw", namespace="ml", is_install=True)
    except helm_python.HelmError as e:
        entry["error"] = str(e)
        report[case] = entry
        continue
    case_dir = out / case
    case_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            n += 1
            path = case_dir / f"{n:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            entry["docs"].append({"file": str(path), "template": template, "doc": doc})
    report[case] = entry
(out / "report.json").write_text(json.dumps(report, indent=1))
