//! Talking to a model server off the live path: the small HTTP client that canary probes, HTTP
//! shadow targets, the demo's traffic and the load generator send with (its own connection
//! pools, never the proxy's), reading an answer into predictions the way the live path reads
//! one ([`answer`]), comparing two answers row by row ([`compare`]), and unary gRPC calls over
//! h2c ([`grpc`]).
//!
//! Nothing on the live path (proxy, route table, latency sketches, tap) imports this module:
//! it is for the components that make requests of their own, so a slow or failing probe,
//! shadow or demo client can never hold a live connection or slow a live request
//! (`tests/architecture.rs` checks it).

pub mod answer;
pub mod compare;
pub mod grpc;
mod send;
pub mod similarity;

pub use answer::Answer;
pub use send::{headers, new, send, traffic, HeaderError, HttpClient, Reply, SendError};
