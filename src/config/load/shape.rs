//! The known keys of [`Config`], in declaration order: what unknown-key suggestions are drawn
//! from, and the order the report follows (it reads like the file).

use std::fmt;

use super::tree::Seg;
use crate::config::Config;
use crate::routes::config::RouteConfig;
use crate::shadow::config::ShadowTargetConfig;

/// The known keys of [`Config`] in declaration order: the defaults serialized (with one route so
/// that route keys are known too, and every optional key set) and read back keeping the order of every table.
pub(super) enum Shape {
    Leaf,
    Array(Vec<Shape>),
    Table(Vec<(String, Shape)>),
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Shape::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Shape, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Shape::Table(entries))
            }
        }
        deserializer.deserialize_any(ShapeVisitor)
    }
}

impl Shape {
    pub(super) fn of_config() -> Shape {
        let mut sample = Config::default();
        sample.proxy.routes.push(RouteConfig::default());
        // Optional keys are left out of the defaults when unset; set them so they are known.
        sample.energy.nvml_idle_watts = Some(0.0);
        sample.energy.rapl_idle_watts = Some(0.0);
        sample.energy.estimate_idle_watts = Some(0.0);
        // One chart and one drift test, so their keys are known (suggestions, report order).
        sample.quality.charts.push(Default::default());
        sample.quality.drift.push(Default::default());
        // One probe and one shadow target with an input, likewise.
        sample.canary.push(Default::default());
        let mut target = ShadowTargetConfig::default();
        target.inputs.push(Default::default());
        sample.shadow.targets.push(target);
        serde_json::to_string(&sample)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or(Shape::Leaf)
    }

    fn child(&self, seg: &Seg) -> Option<(usize, &Shape)> {
        match (seg, self) {
            (Seg::Key(key), Shape::Table(entries)) => entries
                .iter()
                .enumerate()
                .find(|(_, (k, _))| k == key)
                .map(|(i, (_, shape))| (i, shape)),
            (Seg::Index(i), Shape::Array(items)) => items.first().map(|shape| (*i, shape)),
            _ => None,
        }
    }

    /// Sort key of `path`: each step's declaration index (array steps: the index itself); keys
    /// that are not known sort after the known ones, by name.
    pub(super) fn position(&self, path: &[Seg]) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut shape = Some(self);
        for seg in path {
            let step = shape.and_then(|s| s.child(seg));
            out.push(match (seg, step) {
                (_, Some((i, _))) => (i, String::new()),
                (Seg::Index(i), None) => (*i, String::new()),
                (Seg::Key(key), None) => (usize::MAX, key.clone()),
            });
            shape = step.map(|(_, s)| s);
        }
        out
    }

    /// The known key closest to the unknown one at the end of `path`, if one is close enough
    /// (case, `-` for `_`, and up to one edit per three characters are forgiven).
    pub(super) fn suggest(&self, path: &[Seg]) -> Option<String> {
        let (Seg::Key(unknown), parent) = path.split_last()? else {
            return None;
        };
        let mut shape = self;
        for seg in parent {
            shape = shape.child(seg)?.1;
        }
        let Shape::Table(known) = shape else {
            return None;
        };
        let wanted = unknown.to_lowercase().replace('-', "_");
        known
            .iter()
            .filter_map(|(k, _)| {
                let distance = edit_distance(&wanted, k);
                (distance <= (k.chars().count() / 3).max(1)).then_some((distance, k))
            })
            .min()
            .map(|(_, k)| k.clone())
    }
}

/// Edit distance between two strings by characters, counting a swap of two neighbours as one
/// edit (optimal string alignment), so that `modle` is one edit from `model`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::tree::{parse_path, KeyPath};
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("modle", "model"), 1);
    }

    #[test]
    fn suggestions() {
        let schema = Shape::of_config();
        let path =
            |keys: &[&str]| -> KeyPath { keys.iter().map(|k| Seg::Key(k.to_string())).collect() };
        assert_eq!(schema.suggest(&path(&["proxxy"])).as_deref(), Some("proxy"));
        assert_eq!(
            schema
                .suggest(&path(&["proxy", "max-in-flight"]))
                .as_deref(),
            Some("max_in_flight")
        );
        assert_eq!(schema.suggest(&path(&["log", "colour"])), None);
        let route_key = vec![
            Seg::Key("proxy".into()),
            Seg::Key("routes".into()),
            Seg::Index(3),
            Seg::Key("modle".into()),
        ];
        assert_eq!(schema.suggest(&route_key).as_deref(), Some("model"));
    }

    #[test]
    fn positions_follow_declaration_order() {
        let schema = Shape::of_config();
        let key = |p: &str| schema.position(&parse_path(p));
        assert!(key("proxy.upstream") < key("proxy.routes[0].name"));
        assert!(key("proxy.routes[2].name") < key("proxy.routes[10].name"));
        assert!(key("proxy.routes[0].model") < key("proxy.connect_timeout_secs"));
        assert!(key("proxy.pool_idle_timeout_secs") < key("proxy.zzz"));
        assert!(key("proxy.zzz") < key("admin.listen"));
        assert!(key("log.level") < key("aaa"));
    }
}
