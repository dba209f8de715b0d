"""gRPC peer of bench/callgrind.sh: a fixed-answer Open Inference Protocol server, and a client
sending unary ModelInfer calls one after another on one channel.

  grpc_peer.py serve PORT          answer every ModelInfer with the same ModelInferResponse
  grpc_peer.py call PORT N         N ModelInfer calls (one FP32 row of 4) to 127.0.0.1:PORT

The messages are encoded by hand from the protocol's field numbers (no generated stubs), so
only grpcio is needed; the server is grpcio's own (C core), not measured.
"""
import struct
import sys
import time
from concurrent import futures

import grpc

SERVICE = "inference.GRPCInferenceService"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(tag, payload):
    return varint(tag << 3 | 2) + varint(len(payload)) + payload


def tensor(name, datatype, shape, fp32):
    contents = field(6, struct.pack(f"<{len(fp32)}f", *fp32))  # fp32_contents, packed
    return (field(1, name.encode()) + field(2, datatype.encode())
            + field(3, b"".join(varint(d) for d in shape)) + field(5, contents))


# ModelInferRequest: 1 model_name, 5 inputs; ModelInferResponse: 1 model_name, 5 outputs.
REQUEST = field(1, b"m") + field(5, tensor("x", "FP32", [1, 4], [5.1, 3.5, 1.4, 0.2]))
RESPONSE = field(1, b"m") + field(5, tensor("probs", "FP32", [1, 3], [0.1, 0.7, 0.2]))


def serve(port):
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(lambda req, ctx: RESPONSE)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(port, n):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    infer = channel.unary_unary(f"/{SERVICE}/ModelInfer")
    for _ in range(600):
        try:
            grpc.channel_ready_future(channel).result(timeout=0.1)
            break
        except grpc.FutureTimeoutError:
            time.sleep(0.1)
    for _ in range(n):
        assert infer(REQUEST, timeout=30) == RESPONSE


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        call(int(sys.argv[2]), int(sys.argv[3]))
