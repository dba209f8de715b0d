//! JSON Schema checks of LLM answers (structured output): a route's
//! `[proxy.routes.output] json_schema_file` and a canary golden row's `json_schema`. Compiled
//! once (at config load, then at start), judged off the live path only (the inspector, the
//! canary prober). Schemas are self-contained: `$ref`s to other files or URLs are not fetched
//! (the crate is built without its resolvers), so a schema needing them is refused when loaded.

use std::path::Path;

use serde_json::Value;

/// A compiled JSON Schema.
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSchema")
    }
}

impl JsonSchema {
    /// Compile `schema` (its draft from `$schema`, else 2020-12), checked against its
    /// meta-schema; the error says what is wrong and where.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    format!("invalid JSON Schema: {e}")
                } else {
                    format!("invalid JSON Schema at {at}: {e}")
                }
            })
    }

    /// Read and compile the schema in `file`; the error names the file.
    pub fn load(file: &Path) -> Result<Self, String> {
        let shown = file.display();
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|e| format!("{shown} is not JSON: {e}"))?;
        Self::compile(&schema).map_err(|e| format!("{shown}: {e}"))
    }

    /// Whether `doc` is valid against the schema.
    pub fn is_valid(&self, doc: &Value) -> bool {
        self.validator.is_valid(doc)
    }

    /// Whether `text` is a JSON document valid against the schema.
    pub fn text_is_valid(&self, text: &str) -> bool {
        serde_json::from_str::<Value>(text).is_ok_and(|doc| self.is_valid(&doc))
    }

    /// Why `text` is not a JSON document valid against the schema (the first problem).
    pub fn check_text(&self, text: &str) -> Result<(), String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the answer is not JSON: {e}"))?;
        self.validator.validate(&doc).map_err(|e| {
            let at = e.instance_path().to_string();
            format!("not valid against the JSON Schema at {at:?}: {e}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> JsonSchema {
        JsonSchema::compile(&json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
            "required": ["name", "age"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn answers_are_judged_as_json_documents() {
        let s = person();
        assert!(s.text_is_valid(r#"{"name": "Ada", "age": 36}"#));
        assert!(!s.text_is_valid(r#"{"name": "Ada"}"#), "required");
        assert!(!s.text_is_valid(r#"{"name": "Ada", "age": -1}"#), "minimum");
        assert!(!s.text_is_valid(r#"{"name": "Ada", "age": 36, "x": 1}"#));
        assert!(!s.text_is_valid("not json"));
        let e = s.check_text(r#"{"name": 5, "age": 1}"#).unwrap_err();
        assert!(e.contains("\"/name\""), "{e}");
        assert!(s
            .check_text("{")
            .unwrap_err()
            .starts_with("the answer is not JSON"));
    }

    #[test]
    fn invalid_schemas_and_unfetchable_refs_are_refused() {
        let e = JsonSchema::compile(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(e.starts_with("invalid JSON Schema"), "{e}");
        let e = JsonSchema::compile(&json!({"minimum": "five"})).unwrap_err();
        assert!(e.starts_with("invalid JSON Schema"), "{e}");
        // Nothing is fetched: a remote or file reference is an error, not a network call.
        for r in ["https://example.com/s.json", "file:///etc/s.json"] {
            assert!(JsonSchema::compile(&json!({"$ref": r})).is_err(), "{r}");
        }
        // Local references resolve.
        let s = JsonSchema::compile(&json!({
            "$defs": {"n": {"type": "integer"}},
            "type": "array", "items": {"$ref": "#/$defs/n"}
        }))
        .unwrap();
        assert!(s.text_is_valid("[1, 2]") && !s.text_is_valid("[1, \"2\"]"));
    }

    #[test]
    fn load_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let e = JsonSchema::load(&missing).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{type: object}").unwrap();
        let e = JsonSchema::load(&bad).unwrap_err();
        assert!(
            e.starts_with(&format!("{} is not JSON", bad.display())),
            "{e}"
        );
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"type": "array"}"#).unwrap();
        assert!(JsonSchema::load(&good).unwrap().text_is_valid("[]"));
    }
}
