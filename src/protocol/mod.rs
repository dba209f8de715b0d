//! Understanding the traffic: the tap that copies tapped exchanges off the live path, and the
//! protocol adapters that turn them into predictions (one file per protocol).

pub mod capture;

pub use capture::{Capture, InspectionMetrics, Tap, TapRecorder};
