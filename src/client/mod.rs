//! Talking to a model server off the live path: the small HTTP client that canary probes,
//! HTTP shadow targets and the demo's traffic send with (its own connection pools, never the
//! proxy's), reading an answer into predictions the way the live path reads one
//! ([`answer`]), and comparing two answers row by row ([`compare`]).
//!
//! Nothing on the live path (proxy, route table, latency sketches, tap) imports this module:
//! it is for the components that make requests of their own, so a slow or failing probe,
//! shadow or demo client can never hold a live connection or slow a live request.

pub mod answer;
pub mod compare;
mod send;

pub use answer::Answer;
pub use send::{headers, new, send, traffic, HeaderError, HttpClient, Reply, SendError};

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `path` (a file or a folder).
    fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                sources(&entry.unwrap().path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
    }

    /// The rule in this module's doc, checked so an import that breaks it fails CI.
    #[test]
    fn the_live_path_does_not_import_the_client() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for live in ["proxy", "routes", "latency", "metrics", "tap.rs"] {
            sources(&root.join(live), &mut files);
        }
        assert!(
            files.len() > 5,
            "live-path sources not found under {root:?}"
        );
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                !text.contains("crate::client"),
                "{} imports crate::client, which is off the live path",
                f.display()
            );
        }
    }
}
