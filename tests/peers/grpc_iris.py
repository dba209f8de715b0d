"""gRPC clients for tests/grpc_mlserver.rs: real Open Inference Protocol gRPC calls through the
sidecar to MLServer's gRPC port (the model folder comes from mlserver_iris.py setup).

  grpc_iris.py triton SIDECAR DIRECT   tritonclient.grpc: health, metadata, ModelInfer with raw
                                       FP64 inputs (answers compared with a direct call), unknown
                                       model and bad shape calls
  grpc_iris.py grpcio SIDECAR DIRECT   plain grpcio with MLServer's own generated stubs (its
                                       ModelStreamInfer answers bare ModelInferResponse messages,
                                       which tritonclient's stream reader cannot read): ModelInfer
                                       with typed contents, a ModelStreamInfer stream, failures
  grpc_iris.py dead SIDECAR            both clients against a sidecar whose upstream is down
  grpc_iris.py same HTTP_SIDECAR GRPC_SIDECAR
                                       the same batches with tritonclient.http (JSON) through one
                                       sidecar and tritonclient.grpc (raw FP64) through another;
                                       both must receive the same classes
  grpc_iris.py onnx SIDECAR N MODELS_DIR
                                       N ModelInfer calls (raw FP64, batches of 1-4 rows near the
                                       iris data, seeded) through the sidecar; every row's live
                                       class compared with MODELS_DIR/iris.onnx and
                                       iris_perturbed.onnx run by onnxruntime on the same input;
                                       each call's id (x-request-id metadata) and live classes

SIDECAR and DIRECT are host:port. Prints a JSON summary: calls that succeeded, the status code
names of the ones that failed (as the client library reported them), and the classes predicted.
Runs in its own process: tritonclient.grpc and mlserver cannot be imported together.
"""
import json
import sys

import numpy as np


def iris_batches():
    from sklearn.datasets import load_iris

    X, _ = load_iris(return_X_y=True)
    return [X[i : i + n] for i, n in [(0, 1), (60, 7), (100, 30), (10, 45)]] + [X]


class Tally:
    def __init__(self):
        self.ok = 0
        self.codes = {}
        self.classes = {}
        self.rows = 0
        self.infer_ok = 0

    def fail(self, code_name):
        self.codes[code_name] = self.codes.get(code_name, 0) + 1

    def predicted(self, classes):
        for c in classes.reshape(-1).tolist():
            self.classes[str(c)] = self.classes.get(str(c), 0) + 1
        self.rows += classes.size

    def dump(self):
        print(json.dumps(self.__dict__))


def triton(sidecar, direct):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    via = grpcclient.InferenceServerClient(url=sidecar)
    dir_ = grpcclient.InferenceServerClient(url=direct)
    t = Tally()

    assert via.is_server_live() and via.is_model_ready("iris")
    t.ok += 2
    assert via.get_model_metadata("iris", as_json=True) == dir_.get_model_metadata("iris", as_json=True)
    t.ok += 1

    def infer(client, batch, model="iris", rid="r"):
        inp = grpcclient.InferInput("input-0", list(batch.shape), "FP64")
        inp.set_data_from_numpy(batch.astype(np.float64))  # raw_input_contents
        outs = [grpcclient.InferRequestedOutput("predict")]
        return client.infer(model, [inp], outputs=outs, request_id=rid)

    for i, batch in enumerate(iris_batches() * 4):
        got = infer(via, batch, rid=f"t-{i}")
        want = infer(dir_, batch, rid=f"t-{i}")
        assert got.get_response().SerializeToString() == want.get_response().SerializeToString(), i
        t.ok += 1
        t.infer_ok += 1
        t.predicted(got.as_numpy("predict"))

    def failing(call):
        try:
            call()
        except InferenceServerException as e:
            # e.status() is "StatusCode.NOT_FOUND"
            t.fail(str(e.status()).removeprefix("StatusCode."))
        else:
            raise AssertionError("call did not fail")

    batch = iris_batches()[1]
    for _ in range(6):
        failing(lambda: infer(via, batch, model="no-such-model"))
    for _ in range(4):
        failing(lambda: infer(via, batch[:, :3]))  # 3 features: the model wants 4
    t.dump()


def grpcio(sidecar, direct):
    import grpc
    from mlserver.grpc import dataplane_pb2 as pb
    from mlserver.grpc import dataplane_pb2_grpc as svc

    via = svc.GRPCInferenceServiceStub(grpc.insecure_channel(sidecar))
    dir_ = svc.GRPCInferenceServiceStub(grpc.insecure_channel(direct))
    t = Tally()

    def request(batch, model="iris", rid="g"):
        req = pb.ModelInferRequest(model_name=model, id=rid)
        inp = req.inputs.add(name="input-0", datatype="FP64", shape=list(batch.shape))
        inp.contents.fp64_contents.extend(batch.reshape(-1).tolist())  # typed contents
        req.outputs.add(name="predict")
        return req

    def classes(resp):
        out = resp.outputs[0]
        if resp.raw_output_contents:
            return np.frombuffer(resp.raw_output_contents[0], dtype=np.int64)
        return np.array(out.contents.int64_contents)

    assert via.ServerLive(pb.ServerLiveRequest()).live
    t.ok += 1
    for i, batch in enumerate(iris_batches()):
        got = via.ModelInfer(request(batch, rid=f"g-{i}"))
        want = dir_.ModelInfer(request(batch, rid=f"g-{i}"))
        assert got.SerializeToString() == want.SerializeToString(), i
        t.ok += 1
        t.infer_ok += 1
        t.predicted(classes(got))

    # ModelStreamInfer: MLServer 1.7 answers the first request of a stream (one exchange per
    # stream), so each stream carries one request.
    for i, b in enumerate(iris_batches()[:3]):
        answers = list(via.ModelStreamInfer(iter([request(b, rid=f"s-{i}")])))
        assert len(answers) == 1, answers
        t.predicted(classes(answers[0]))
        t.ok += 1
        t.infer_ok += 1

    for model, batch in [("no-such-model", iris_batches()[1])] * 3 + [("iris", iris_batches()[1][:, :3])] * 2:
        try:
            via.ModelInfer(request(batch, model=model))
        except grpc.RpcError as e:
            t.fail(e.code().name)
        else:
            raise AssertionError("call did not fail")
    t.dump()


def dead(sidecar):
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as svc
    from tritonclient.utils import InferenceServerException

    t = Tally()
    stub = svc.GRPCInferenceServiceStub(grpc.insecure_channel(sidecar))
    try:
        stub.ServerLive(pb.ServerLiveRequest())
    except grpc.RpcError as e:
        t.fail(e.code().name)
        t.message = e.details()
    client = grpcclient.InferenceServerClient(url=sidecar)
    try:
        client.is_server_live()
    except InferenceServerException as e:
        t.fail(str(e.status()).removeprefix("StatusCode."))
    t.dump()


def same(http_sidecar, grpc_sidecar):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    h = httpclient.InferenceServerClient(url=http_sidecar)
    g = grpcclient.InferenceServerClient(url=grpc_sidecar)
    t = Tally()
    for i, batch in enumerate(iris_batches()):
        x = batch.astype(np.float64)
        hi = httpclient.InferInput("input-0", list(x.shape), "FP64")
        hi.set_data_from_numpy(x, binary_data=False)
        hout = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")]
        gi = grpcclient.InferInput("input-0", list(x.shape), "FP64")
        gi.set_data_from_numpy(x)
        gout = [grpcclient.InferRequestedOutput(n) for n in ("predict", "predict_proba")]
        hr = h.infer("iris", [hi], outputs=hout, request_id=f"h-{i}")
        gr = g.infer("iris", [gi], outputs=gout, request_id=f"g-{i}")
        assert (hr.as_numpy("predict") == gr.as_numpy("predict")).all(), i
        assert np.allclose(hr.as_numpy("predict_proba"), gr.as_numpy("predict_proba")), i
        t.predicted(gr.as_numpy("predict"))
        t.ok += 2
        t.infer_ok += 1
    t.dump()


def onnx(sidecar, n, models):
    import os

    import onnxruntime as ort
    import tritonclient.grpc as grpcclient
    from sklearn.datasets import load_iris

    X, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(11)
    sessions = {k: ort.InferenceSession(os.path.join(models, f"{k}.onnx"))
                for k in ("iris", "iris_perturbed")}
    client = grpcclient.InferenceServerClient(url=sidecar)
    t = Tally()
    t.disagree = {k: 0 for k in sessions}
    t.live = {}
    for i in range(int(n)):
        k = int(rng.integers(1, 5))
        base = X[rng.integers(0, len(X), size=k)]
        batch = np.round(base + rng.normal(0, 0.3, size=base.shape), 3)
        inp = grpcclient.InferInput("input-0", list(batch.shape), "FP64")
        inp.set_data_from_numpy(batch.astype(np.float64))
        # The request id travels as gRPC metadata, for the feedback join.
        r = client.infer("iris", [inp], outputs=[grpcclient.InferRequestedOutput("predict")],
                         headers={"x-request-id": f"g{i}"})
        live = r.as_numpy("predict").reshape(-1)
        t.live[f"g{i}"] = [str(c) for c in live.tolist()]
        for key, sess in sessions.items():
            label, _ = sess.run(None, {"X": batch.astype(np.float32)})
            t.disagree[key] += int((label.reshape(-1) != live).sum())
        t.predicted(live)
        t.ok += 1
        t.infer_ok += 1
    t.dump()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"triton": triton, "grpcio": grpcio, "dead": dead, "same": same, "onnx": onnx}[cmd](*args)
