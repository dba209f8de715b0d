//! latency (in progress)
