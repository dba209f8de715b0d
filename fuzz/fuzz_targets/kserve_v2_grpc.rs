//! Fuzz the gRPC side of the kserve_v2 adapter (framing, gzip, protobuf, tensors): arbitrary
//! bytes, laid out as `fuzzing::grpc_exchange` reads them, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = inferwatch::protocol::fuzzing::run_grpc(data);
});
