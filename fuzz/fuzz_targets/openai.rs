//! Fuzz the openai adapter: arbitrary request and response bytes must never panic.
#![no_main]

use inferwatch::routes::config::Protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = inferwatch::protocol::fuzzing::run(Protocol::Openai, data);
});
