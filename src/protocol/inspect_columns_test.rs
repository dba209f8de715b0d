//! Which input columns an inspector's routes read (`Rule::read_columns`), kept apart from
//! `inspect.rs` to hold that file under the size limit.

use std::sync::Arc;

use super::*;
use crate::routes::config::{FeatureBound, PredictionConfig};

/// A route reads the tracked and the bounded input columns, and every column once a hook
/// says it reads inputs (an ONNX shadow); hooks that say not leave the limit alone.
#[test]
fn routes_read_tracked_and_bounded_columns_unless_a_hook_reads_inputs() {
    struct Hook(bool);
    impl CaptureHook for Hook {
        fn seen(&self, _: &Seen<'_>) {}
        fn reads_inputs(&self, _route: &str) -> bool {
            self.0
        }
    }
    let registry = prometheus::Registry::new();
    let route = RouteConfig {
        name: "r".into(),
        protocol: Protocol::KserveV2,
        prediction: PredictionConfig {
            feature_bounds: vec![FeatureBound {
                feature: 40,
                min: 0.0,
                max: 1.0,
            }],
            ..PredictionConfig::default()
        },
        ..RouteConfig::default()
    };
    let inspector = Inspector::new(
        &[route],
        &InspectionConfig::default(),
        ProtocolMetrics::register(&registry, vec![0.1]).unwrap(),
        InspectionMetrics::register(&registry).unwrap(),
        Arc::new(NoSignals),
    );
    let read = |i: &Inspector| i.routes["r"].rule.read_columns;
    assert_eq!(read(&inspector), Some(41));
    let inspector = inspector.with_hook(Arc::new(Hook(false)));
    assert_eq!(read(&inspector), Some(41));
    let inspector = inspector.with_hook(Arc::new(Hook(true)));
    assert_eq!(read(&inspector), None);
}
