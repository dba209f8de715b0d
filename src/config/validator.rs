//! The collector every component's `validate` reports through: each problem with its key path,
//! all of them kept, none stopping the rest, so an operator fixes a config in one go.

use super::error::ConfigError;

/// Collects the problems of one config. Rules that involve a key whose value had the wrong type
/// (the loader names them in `skip`) are not judged: such a value is a stand-in default, and a
/// rule judging it would report a problem the file does not have.
pub struct Validator<'a> {
    skip: &'a [String],
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    /// A collector that skips every rule involving one of `skip` (dotted key paths), or a key
    /// above or below one of them.
    pub fn new(skip: &'a [String]) -> Self {
        Self {
            skip,
            errors: Vec::new(),
        }
    }

    /// Every problem recorded, in the order the rules ran.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// True when none of `paths` is at, above or below a skipped key.
    pub fn clean(&self, paths: &[&str]) -> bool {
        paths
            .iter()
            .all(|p| !self.skip.iter().any(|s| within(s, p) || within(p, s)))
    }

    /// Records a problem at `path`, unless that path is skipped.
    pub fn report(&mut self, path: &str, message: String) {
        if self.clean(&[path]) {
            self.errors.push(ConfigError {
                path: path.to_string(),
                message,
            });
        }
    }

    /// Records `problem` at `path` when there is one (the shared rules in `config::checks`
    /// return `Option<String>` for this).
    pub fn check(&mut self, path: &str, problem: Option<String>) {
        if let Some(message) = problem {
            self.report(path, message);
        }
    }
}

/// Whether dotted path `inner` is `outer` or below it (`a.b[1]` is within `a.b` but not `a.bc`).
fn within(inner: &str, outer: &str) -> bool {
    inner.starts_with(outer)
        && matches!(
            inner.as_bytes().get(outer.len()),
            None | Some(b'.') | Some(b'[')
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_keys_hide_rules_above_and_below_them() {
        let skip = vec!["proxy.routes[1]".to_string()];
        let mut v = Validator::new(&skip);
        assert!(v.clean(&["proxy.routes[10].name"]));
        assert!(!v.clean(&["proxy.routes[1].name"]));
        assert!(!v.clean(&["proxy.routes"]));
        v.report("proxy.routes[1].model", "hidden".into());
        v.check("proxy.upstream", Some("kept".into()));
        v.check("proxy.listen", None);
        let errors = v.into_errors();
        assert_eq!(errors, vec![ConfigError::new("proxy.upstream", "kept")]);
    }
}
