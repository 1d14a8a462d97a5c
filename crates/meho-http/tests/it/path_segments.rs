use meho_http::{Spec, build};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::json;

fn spec() -> Spec {
    Spec::parse(
        r#"{"openapi": "3.1.0", "paths": {"/v1/{a}/items/{b}": {"get": {"parameters": [
            {"name": "a", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "b", "in": "path", "required": true, "schema": {"type": "string"}}]}}}}"#,
    )
    .unwrap()
}

proptest! {
    #[test]
    fn a_path_value_is_always_exactly_one_segment(a in ".+", b in "\\PC+") {
        let spec = spec();
        let op = spec.find("GET /v1/{a}/items/{b}").unwrap();
        let req = build(op, &json!({"a": a, "b": b})).unwrap();
        let segments: Vec<&str> = req.path.split('/').collect();
        prop_assert_eq!(segments.len(), "/v1/{a}/items/{b}".split('/').count());
        prop_assert_eq!(segments[1], "v1");
        prop_assert_eq!(segments[3], "items");
        prop_assert_eq!(percent_decode_str(segments[2]).decode_utf8().unwrap(), a.as_str());
        prop_assert_eq!(percent_decode_str(segments[4]).decode_utf8().unwrap(), b.as_str());
        prop_assert!(segments.iter().all(|s| *s != "." && *s != ".."));
        prop_assert!(!req.path.contains('?') && !req.path.contains('#'));
    }
}
