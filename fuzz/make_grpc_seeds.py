"""Writes the seeds of fuzz/corpus/kserve_v2_grpc/ with the protocol's own generated protobuf
code (tritonclient's service_pb2), so the corpus is encoded by a real protobuf library, not by
the messages under test. Layout (see inferwatch::protocol::fuzzing::grpc_exchange): byte 0 the
method (0 ModelInfer, 1 ModelStreamInfer, 2 ModelInfer with a gzip response), 2 bytes request
length, request body, response body. `ok_*` seeds must decode, `bad_*` must be malformed.

    .venv-peers/bin/python fuzz/make_grpc_seeds.py
"""
import gzip
import pathlib
import struct

import numpy as np
from tritonclient.grpc import service_pb2 as pb

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "kserve_v2_grpc"


def frame(msg, compressed=False):
    body = gzip.compress(msg) if compressed else msg
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def seed(name, method, request, response):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(bytes([method]) + struct.pack(">H", len(request)) + request + response)


def iris_request(raw, rows=2):
    req = pb.ModelInferRequest(model_name="iris", id="seed")
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]][:rows], dtype=np.float32)
    t = req.inputs.add(name="input-0", datatype="FP32", shape=list(x.shape))
    if raw:
        req.raw_input_contents.append(x.tobytes())
    else:
        t.contents.fp32_contents.extend(x.reshape(-1).tolist())
    return req


def iris_response(raw, rows=2):
    resp = pb.ModelInferResponse(model_name="iris", model_version="v1", id="seed")
    labels = np.array([0, 2][:rows], dtype=np.int64)
    probs = np.array([[0.97, 0.02, 0.01], [0.0, 0.1, 0.9]][:rows], dtype=np.float64)
    a = resp.outputs.add(name="predict", datatype="INT64", shape=[rows, 1])
    b = resp.outputs.add(name="predict_proba", datatype="FP64", shape=[rows, 3])
    if raw:
        resp.raw_output_contents.extend([labels.tobytes(), probs.tobytes()])
    else:
        a.contents.int64_contents.extend(labels.tolist())
        b.contents.fp64_contents.extend(probs.reshape(-1).tolist())
    return resp


req_typed = frame(iris_request(False).SerializeToString())
resp_typed = frame(iris_response(False).SerializeToString())
req_raw = frame(iris_request(True).SerializeToString())
resp_raw = frame(iris_response(True).SerializeToString())
seed("ok_typed_contents", 0, req_typed, resp_typed)
seed("ok_raw_contents", 0, req_raw, resp_raw)
seed("ok_gzip_response", 2, req_raw, frame(iris_response(True).SerializeToString(), True))

# Triton's classification extension: BYTES "score:index:label", top class first.
cls = pb.ModelInferResponse(model_name="iris")
o = cls.outputs.add(name="predict_proba", datatype="BYTES", shape=[2, 1])
o.contents.bytes_contents.extend([b"0.97:0:setosa", b"0.9:2:virginica"])
seed("ok_triton_classification", 0, req_typed, frame(cls.SerializeToString()))

# BYTES input in raw form: 4-byte little-endian length before each element.
breq = pb.ModelInferRequest(model_name="echo")
breq.inputs.add(name="text", datatype="BYTES", shape=[2])
breq.raw_input_contents.append(b"".join(struct.pack("<I", len(s)) + s for s in [b"hi", b"there"]))
seed("ok_raw_bytes_input", 0, frame(breq.SerializeToString()), resp_typed)

# A stream: Triton's wrapped answers (ModelStreamInferResponse) for two requests.
wrapped = b"".join(
    frame(pb.ModelStreamInferResponse(infer_response=iris_response(True, 1)).SerializeToString())
    for _ in range(2)
)
one = frame(iris_request(True, 1).SerializeToString())
seed("ok_stream_triton_wrapped", 1, one + one, wrapped)
# MLServer's bare answers, split anywhere: the framing is over the whole body.
seed("ok_stream_bare", 1, one, frame(iris_response(False, 1).SerializeToString()))

seed("bad_truncated_frame", 0, req_typed, resp_typed[:-3])
seed("bad_not_protobuf", 0, req_typed, frame(b"\xff\xff\xff\xff not a message"))
wrong = iris_response(False)
wrong.outputs[0].shape[0] = 3  # 3 rows declared, 2 values sent
seed("bad_shape", 0, req_typed, frame(wrong.SerializeToString()))
seed("bad_raw_count", 0, frame(pb.ModelInferRequest(
    inputs=[pb.ModelInferRequest.InferInputTensor(name="a", datatype="FP32", shape=[1])],
    raw_input_contents=[b"\0\0\0\0", b"\0\0\0\0"]).SerializeToString()), resp_typed)
seed("bad_compressed_flag", 0, req_typed, b"\x07" + resp_typed[1:])
seed("bad_gzip_unknown_encoding", 0, req_typed, frame(iris_response(True).SerializeToString(), True))
seed("bad_stream_error", 1, one, frame(pb.ModelStreamInferResponse(error_message="model failed").SerializeToString()))
print(f"wrote {len(list(OUT.iterdir()))} seeds to {OUT}")
