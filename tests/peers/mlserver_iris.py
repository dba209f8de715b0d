"""MLServer peer for tests/protocol_mlserver.rs.

  mlserver_iris.py setup DIR HTTP_PORT GRPC_PORT METRICS_PORT
      train a logistic regression on iris and write an MLServer model folder in DIR
  mlserver_iris.py client SIDECAR_URL DIRECT_URL
      send iris batches with the real tritonclient.http client through the sidecar and directly;
      check the answers are identical (and, with raw HTTP, byte-identical); print a JSON summary
"""
import json
import sys
import urllib.request


def setup(folder, http_port, grpc_port, metrics_port):
    import os

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    os.makedirs(folder, exist_ok=True)
    joblib.dump(model, os.path.join(folder, "model.joblib"))
    with open(os.path.join(folder, "model-settings.json"), "w") as f:
        json.dump(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            },
            f,
        )
    with open(os.path.join(folder, "settings.json"), "w") as f:
        json.dump(
            {
                "host": "127.0.0.1",
                "http_port": int(http_port),
                "grpc_port": int(grpc_port),
                "metrics_port": int(metrics_port),
                # One process: worker pools take seconds to start and add nothing to a test.
                "parallel_workers": 0,
                "load_models_at_startup": True,
            },
            f,
        )


def rows():
    from sklearn.datasets import load_iris

    X, _ = load_iris(return_X_y=True)
    # Batches of 1, 7 and 30 rows spread over all three classes, plus the whole data set.
    return [X[i : i + n] for i, n in [(0, 1), (60, 7), (100, 30), (10, 45)]] + [X]


def client(sidecar, direct):
    import numpy as np
    import tritonclient.http as httpclient

    def infer(url, batch, request_id):
        c = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
        inp = httpclient.InferInput("input-0", list(batch.shape), "FP64")
        inp.set_data_from_numpy(batch.astype(np.float64), binary_data=False)
        outputs = [
            httpclient.InferRequestedOutput("predict", binary_data=False),
            httpclient.InferRequestedOutput("predict_proba", binary_data=False),
        ]
        r = c.infer("iris", [inp], outputs=outputs, request_id=request_id)
        return r.get_response(), r.as_numpy("predict")

    classes = {}
    total_rows = 0
    for i, batch in enumerate(rows()):
        via, predicted = infer(sidecar, batch, f"req-{i}")
        want, _ = infer(direct, batch, f"req-{i}")
        assert via == want, f"batch {i}: {via} != {want}"
        for c in predicted.reshape(-1).tolist():
            classes[str(c)] = classes.get(str(c), 0) + 1
        total_rows += len(batch)

    # Byte-identical: the same raw request to both, with a fixed id so nothing may differ.
    body = json.dumps(
        {
            "id": "raw-1",
            "inputs": [
                {"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                 "data": [5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5]}
            ],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
    ).encode()
    raw = []
    for base in (sidecar, direct):
        req = urllib.request.Request(
            f"{base}/v2/models/iris/infer", data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            raw.append(resp.read())
    assert raw[0] == raw[1], f"raw bodies differ:\n{raw[0]!r}\n{raw[1]!r}"
    for c in json.loads(raw[0])["outputs"][0]["data"]:
        classes[str(c)] = classes.get(str(c), 0) + 1
    total_rows += 2
    print(json.dumps({"classes": classes, "rows": total_rows, "requests": len(rows()) + 1}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "setup":
        setup(*args)
    elif cmd == "client":
        client(*args)
    else:
        sys.exit(f"unknown command {cmd}")
