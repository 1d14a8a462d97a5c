//! The checked-in `schema/meho.schema.json` is what this build generates.

use serde_json::Value;

const REGENERATE: &str = "cargo run -p meho -- config schema > schema/meho.schema.json";

fn schema_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/meho.schema.json")
}

#[test]
fn checked_in_schema_is_fresh() {
    let path = schema_path();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {}: {err}; generate it with `{REGENERATE}`",
            path.display()
        )
    });
    let generated = meho_config::json_schema();
    assert!(
        checked_in == generated,
        "schema/meho.schema.json is stale: the config types changed. Regenerate it with `{REGENERATE}` and commit the result."
    );
}

fn generated() -> Value {
    serde_json::from_str(&meho_config::json_schema()).unwrap()
}

/// The schema object of a definition, following one `$ref` if there is one.
fn definition<'a>(schema: &'a Value, name: &str) -> &'a Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .expect("schema has definitions");
    defs.get(name)
        .unwrap_or_else(|| panic!("no definition `{name}` in {defs:#}"))
}

#[test]
fn schema_rejects_unknown_keys_on_host_and_top_level() {
    let schema = generated();
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
    let host = definition(&schema, "RawHost");
    assert_eq!(
        host["additionalProperties"],
        Value::Bool(false),
        "hosts must reject unknown keys: {host:#}"
    );
    for name in ["RawServer", "RawStore", "RawLog", "RawCommandPolicy"] {
        assert_eq!(
            definition(&schema, name)["additionalProperties"],
            Value::Bool(false),
            "`{name}` must reject unknown keys"
        );
    }
}

#[test]
fn schema_requires_host_connection_fields() {
    let schema = generated();
    let host = definition(&schema, "RawHost");
    let required: Vec<&str> = host["required"]
        .as_array()
        .expect("host has required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in ["addr", "user", "host_key"] {
        assert!(required.contains(&field), "`{field}` must be required");
    }
    assert!(host["properties"].get("max_ttl_seconds").is_some());
    assert!(host["properties"].get("command_policy").is_some());
}

#[test]
fn schema_is_titled_and_ends_with_newline() {
    let text = meho_config::json_schema();
    assert!(text.ends_with('\n'));
    assert_eq!(generated()["title"], "meho.toml");
}
