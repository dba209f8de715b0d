//! Deserializing the merged tree into [`Config`] while collecting every unknown key
//! (`serde_ignored`) and every type error with its key path (`serde_path_to_error`): a badly
//! typed value is taken out of the tree and the pass runs again, until one succeeds.

use std::collections::BTreeMap;

use super::env::EnvKeys;
use super::tree::{KeyPath, Node, Seg};
use crate::config::Config;

/// Type errors collected before giving up (each costs one more deserialization pass).
pub const MAX_TYPE_ERRORS: usize = 100;

/// What the deserialization passes found.
pub(super) struct Outcome {
    /// The typed config with every badly typed key defaulted; `None` if even that failed.
    pub(super) config: Option<Config>,
    pub(super) unknown: Vec<KeyPath>,
    pub(super) type_errors: Vec<(KeyPath, String)>,
    /// Keys whose values were removed or replaced with stand-ins.
    pub(super) tainted: Vec<KeyPath>,
}

/// One deserialization pass: the config or the first type error (path, message), plus every
/// unknown key seen on the way.
fn attempt(tree: &Node) -> (Result<Config, (KeyPath, String)>, Vec<KeyPath>) {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result: Result<Config, _> = {
        let de = serde_path_to_error::Deserializer::new(tree.clone(), &mut track);
        serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)))
    };
    match result {
        Ok(config) => (Ok(config), unknown),
        Err(e) => (Err((tracked_path(&track.path()), e.to_string())), unknown),
    }
}

/// Whether a pass over `tree` gets past `path`: it succeeds, or fails somewhere else.
fn passes(tree: &Node, path: &KeyPath) -> bool {
    match attempt(tree).0 {
        Ok(_) => true,
        Err((p, _)) => !p.starts_with(path),
    }
}

pub(super) fn deserialize_collecting(mut tree: Node, env: &EnvKeys) -> Outcome {
    let mut type_errors = Vec::new();
    let mut tainted = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..MAX_TYPE_ERRORS {
        let (result, seen) = attempt(&tree);
        unknown = seen;
        let (path, message) = match result {
            Ok(config) => {
                return Outcome {
                    config: Some(config),
                    unknown,
                    type_errors,
                    tainted,
                }
            }
            Err(error) => error,
        };
        // `try_parsing` turned an env value such as `5` or `true` into a number or a bool; if the
        // key wants a string, the variable's raw text is what the operator meant.
        if let Some((_, raw)) = env.get(&path) {
            if !matches!(tree.get(&path), Some(Node::Str(_))) {
                let mut retry = tree.clone();
                if let Some(node) = retry.get_mut(&path) {
                    *node = Node::Str(raw.clone());
                    if passes(&retry, &path) {
                        tree = retry;
                        continue;
                    }
                }
            }
        }
        let shown = tree.get(&path).cloned();
        type_errors.push((path.clone(), polish(&message, shown.as_ref())));
        match drop_value(&mut tree, &path) {
            Some(dropped) => tainted.push(dropped),
            None => {
                return Outcome {
                    config: None,
                    unknown,
                    type_errors,
                    tainted,
                }
            }
        }
    }
    type_errors.push((
        Vec::new(),
        format!("too many type errors, stopped after {MAX_TYPE_ERRORS}"),
    ));
    Outcome {
        config: None,
        unknown,
        type_errors,
        tainted,
    }
}

/// Takes the badly typed value at `path` out of the tree so that the next pass gets past it: a table
/// key is removed (its field falls back to its default); an array element is replaced by the first
/// stand-in its element type accepts, so that later indices keep their meaning. If neither works the
/// parent goes. Returns the path that was dropped, `None` if nothing could be.
fn drop_value(tree: &mut Node, path: &KeyPath) -> Option<KeyPath> {
    let mut path = path.clone();
    loop {
        match path.last()? {
            Seg::Key(_) => {
                if tree.remove_key(&path) {
                    return Some(path);
                }
            }
            Seg::Index(_) => {
                let stand_ins = [
                    Node::Table(BTreeMap::new()),
                    Node::Int(1),
                    Node::Float(1.0),
                    Node::Str(String::new()),
                    Node::Bool(false),
                ];
                for stand_in in stand_ins {
                    let mut retry = tree.clone();
                    let Some(node) = retry.get_mut(&path) else {
                        break;
                    };
                    *node = stand_in;
                    if passes(&retry, &path) {
                        *tree = retry;
                        return Some(path);
                    }
                }
            }
        }
        path.pop();
    }
}

/// Rewrites serde's wording for config authors: TOML words (table, array) and plain types.
fn polish(message: &str, value: Option<&Node>) -> String {
    if message == "invalid socket address syntax" {
        let got = value.map(|v| format!(" {v}")).unwrap_or_default();
        return format!("invalid socket address{got}, expected ip:port such as \"0.0.0.0:8081\"");
    }
    let mut m = message.to_string();
    for (from, to) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected an array"),
        ("invalid type: map,", "invalid type: table,"),
        ("invalid type: sequence,", "invalid type: array,"),
        ("invalid type: unit value,", "invalid type: empty value,"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(i) = m.find("expected struct ") {
        m.truncate(i);
        m.push_str("expected a table");
    }
    m
}

fn tracked_path(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push(Seg::Index(*index)),
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> KeyPath {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut KeyPath) {
        use serde_ignored::Path as P;
        match path {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut out = Vec::new();
    walk(path, &mut out);
    out
}
