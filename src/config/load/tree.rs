//! The intermediate value tree between the `config` crate's merged result and the typed [`Config`].
//!
//! Why not `serde_json::Value` or `config::Value`? `serde_json::Value` cannot hold `inf` or `nan`
//! (TOML can, and validation must see them to reject them), and `config::Value` converts leniently
//! (`"10"` becomes a number, `5` a string), which would hide type errors in the file. This tree is
//! strict, keeps its tables sorted (so errors come out in a stable order) and can be edited: the
//! loader removes a badly typed key and deserializes again to find the next error.
//!
//! [`Config`]: crate::config::Config

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Unexpected, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `proxy.routes[1].name`, as segments.
pub(crate) type KeyPath = Vec<Seg>;

/// Formats a key path in dotted form with indices: `proxy.routes[1].name`. Keys that are not bare
/// TOML keys are quoted, so that `proxy."my key"` cannot be mistaken for two levels.
pub(crate) fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// Parses a dotted path with indices (`proxy.routes[1].name`) as the validator writes them (bare
/// keys only).
pub(crate) fn parse_path(path: &str) -> KeyPath {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next() {
            if !key.is_empty() {
                out.push(Seg::Key(key.to_string()));
            }
        }
        for index in pieces {
            match index.trim_end_matches(']').parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => out.push(Seg::Key(index.to_string())),
            }
        }
    }
    out
}

/// A config value: what TOML and the environment can express.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Table(BTreeMap<String, Node>),
}

impl From<config::Value> for Node {
    fn from(value: config::Value) -> Self {
        use config::ValueKind as K;
        match value.kind {
            K::Nil => Node::Nil,
            K::Boolean(b) => Node::Bool(b),
            K::I64(i) => Node::Int(i.into()),
            K::I128(i) => Node::Int(i),
            K::U64(u) => Node::Int(u.into()),
            K::U128(u) => i128::try_from(u)
                .map(Node::Int)
                .unwrap_or(Node::Float(u as f64)),
            K::Float(f) => Node::Float(f),
            K::String(s) => Node::Str(s),
            K::Array(items) => Node::Array(items.into_iter().map(Node::from).collect()),
            K::Table(map) => Node::Table(map.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

impl fmt::Display for Node {
    /// A short rendering for error messages: strings quoted, containers summarised.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Nil => f.write_str("nothing"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Int(i) => write!(f, "{i}"),
            Node::Float(x) => write!(f, "{x}"),
            Node::Str(s) => write!(f, "{s:?}"),
            Node::Array(_) => f.write_str("an array"),
            Node::Table(_) => f.write_str("a table"),
        }
    }
}

impl Node {
    /// The node at `path`, if there is one.
    pub(crate) fn get(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, node) {
                (Seg::Key(k), Node::Table(map)) => map.get(k)?,
                (Seg::Index(i), Node::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The node at `path`, mutably.
    pub(crate) fn get_mut(&mut self, path: &[Seg]) -> Option<&mut Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, node) {
                (Seg::Key(k), Node::Table(map)) => map.get_mut(k)?,
                (Seg::Index(i), Node::Array(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Removes the table entry at `path`. False if `path` does not end in a table key that exists.
    pub(crate) fn remove_key(&mut self, path: &[Seg]) -> bool {
        let Some((Seg::Key(last), parent)) = path.split_last() else {
            return false;
        };
        match self.get_mut(parent) {
            Some(Node::Table(map)) => map.remove(last).is_some(),
            _ => false,
        }
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Nil => Unexpected::Unit,
            Node::Bool(b) => Unexpected::Bool(*b),
            Node::Int(i) => match i64::try_from(*i) {
                Ok(i) => Unexpected::Signed(i),
                Err(_) => Unexpected::Other("a large integer"),
            },
            Node::Float(x) => Unexpected::Float(*x),
            Node::Str(s) => Unexpected::Str(s),
            Node::Array(_) => Unexpected::Other("array"),
            Node::Table(_) => Unexpected::Other("table"),
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Node {
    type Deserializer = Node;

    fn into_deserializer(self) -> Node {
        self
    }
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Nil => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(b),
            Node::Int(i) => {
                if let Ok(i) = i64::try_from(i) {
                    visitor.visit_i64(i)
                } else if let Ok(u) = u64::try_from(i) {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_i128(i)
                }
            }
            Node::Float(x) => visitor.visit_f64(x),
            Node::Str(s) => visitor.visit_string(s),
            Node::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Node::Table(map) => {
                let mut access = MapDeserializer::new(map.into_iter());
                let value = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Nil => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Node::Str(s) => visitor.visit_enum(s.into_deserializer()),
            other => {
                let allowed: Vec<String> = variants.iter().map(|v| format!("`{v}`")).collect();
                let expected = format!("one of {}", allowed.join(", "));
                Err(de::Error::invalid_type(
                    other.unexpected(),
                    &expected.as_str(),
                ))
            }
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_dotted_with_indices_and_odd_keys_quoted() {
        let path = vec![
            Seg::Key("proxy".into()),
            Seg::Key("routes".into()),
            Seg::Index(1),
            Seg::Key("name".into()),
        ];
        assert_eq!(format_path(&path), "proxy.routes[1].name");
        let odd = vec![Seg::Key("proxy".into()), Seg::Key("my key".into())];
        assert_eq!(format_path(&odd), "proxy.\"my key\"");
    }

    #[test]
    fn parse_path_round_trips() {
        for p in [
            "proxy.routes[1].name",
            "latency.quantiles[0]",
            "admin",
            "a.b.c",
        ] {
            assert_eq!(format_path(&parse_path(p)), p);
        }
    }

    #[test]
    fn strict_types() {
        use serde::Deserialize;
        let err = u64::deserialize(Node::Str("10".into())).unwrap_err();
        assert_eq!(err.to_string(), "invalid type: string \"10\", expected u64");
        let err = String::deserialize(Node::Int(5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: integer `5`, expected a string"
        );
        assert_eq!(f64::deserialize(Node::Int(2)).unwrap(), 2.0);
        assert!(f64::deserialize(Node::Float(f64::INFINITY))
            .unwrap()
            .is_infinite());
    }
}
