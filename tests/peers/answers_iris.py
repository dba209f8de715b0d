"""Peer side of tests/answers_mlserver.rs (MLServer set up by mlserver_iris.py).

  answers_iris.py golden DIR
      write DIR/golden.jsonl (every iris row with its true class) and DIR/golden_wrong.jsonl
      (the same, a third of the expectations deliberately wrong); print the share of rows of
      each that the served model answers as expected, computed with sklearn itself
  answers_iris.py traffic SIDECAR_URL REQUESTS MODELS_DIR
      send REQUESTS KServe V2 requests (batches of 1-4 rows near the iris data, seeded) through
      the sidecar; for every row compare the live class with models/iris.onnx and
      models/iris_perturbed.onnx run by onnxruntime on the same float32 input; print the counts
"""
import json
import os
import sys
import urllib.request

import numpy as np


def model():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    # As mlserver_iris.py trains it: the same data and settings give the same coefficients.
    return LogisticRegression(max_iter=1000).fit(X, y), X, y


def request(rows):
    return {
        "inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
             "data": rows.reshape(-1).tolist()}
        ],
        "outputs": [{"name": "predict"}],
    }


def golden(folder):
    m, X, y = model()
    predicted = m.predict(X)
    wrong = y.copy()
    wrong[::3] = (wrong[::3] + 1) % 3
    shares = {}
    for name, labels in (("golden", y), ("golden_wrong", wrong)):
        with open(os.path.join(folder, f"{name}.jsonl"), "w") as f:
            for row, label in zip(X, labels):
                f.write(json.dumps({"request": request(row[None, :]),
                                    "expect": {"class": int(label)}}) + "\n")
        shares[name] = float((predicted == labels).mean())
    print(json.dumps(shares))


def traffic(sidecar, n, models):
    import onnxruntime as ort

    _, X, _ = model()
    rng = np.random.default_rng(7)
    sessions = {k: ort.InferenceSession(os.path.join(models, f"{k}.onnx"))
                for k in ("iris", "iris_perturbed")}
    rows = 0
    disagree = {k: 0 for k in sessions}
    for i in range(n):
        k = int(rng.integers(1, 5))
        base = X[rng.integers(0, len(X), size=k)]
        batch = np.round(base + rng.normal(0, 0.3, size=base.shape), 3)
        body = json.dumps(request(batch)).encode()
        req = urllib.request.Request(f"{sidecar}/v2/models/iris/infer", data=body,
                                     headers={"content-type": "application/json",
                                              "x-request-id": f"r{i}"})
        with urllib.request.urlopen(req) as resp:
            out = json.loads(resp.read())
        live = np.array(out["outputs"][0]["data"]).reshape(-1)
        for key, s in sessions.items():
            label, _ = s.run(None, {"X": batch.astype(np.float32)})
            disagree[key] += int((label.reshape(-1) != live).sum())
        rows += len(batch)
    print(json.dumps({"requests": n, "rows": rows, "disagree": disagree}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "golden":
        golden(*args)
    elif cmd == "traffic":
        traffic(args[0], int(args[1]), args[2])
    else:
        sys.exit(f"unknown command {cmd}")
