use meho_http::{Spec, SpecError, build};
use serde_json::json;

#[test]
fn refuses_text_that_is_neither_json_nor_yaml() {
    let err = Spec::parse("{ this: is: not [ yaml").unwrap_err();
    assert!(matches!(err, SpecError::Syntax { .. }), "{err}");
    assert!(err.to_string().starts_with("not JSON or YAML: "), "{err}");
}

#[test]
fn refuses_a_scalar_document() {
    let err = Spec::parse("just a string").unwrap_err();
    assert!(matches!(err, SpecError::NotAnObject), "{err}");
}

#[test]
fn refuses_swagger_2() {
    let err =
        Spec::parse(r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {}}"#)
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no `openapi` field: not an OpenAPI 3 document (Swagger 2.0 is not supported)"
    );
}

#[test]
fn refuses_other_openapi_versions() {
    let err = Spec::parse("openapi: 4.0.0\npaths: {}\n").unwrap_err();
    assert!(matches!(err, SpecError::UnsupportedVersion(_)), "{err}");
}

#[test]
fn refuses_missing_or_empty_paths() {
    for text in [
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n",
        "openapi: 3.1.0\npaths: {}\n",
    ] {
        let err = Spec::parse(text).unwrap_err();
        assert_eq!(err.to_string(), "`paths` is missing or empty");
    }
}

#[test]
fn a_dangling_ref_skips_only_its_operation() {
    let spec = Spec::parse(
        r##"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /good:
    get:
      operationId: good
      parameters:
        - {name: q, in: query, schema: {$ref: "#/components/schemas/Q"}}
  /bad:
    get:
      operationId: bad
      parameters:
        - {name: q, in: query, schema: {$ref: "#/components/schemas/Missing"}}
    post:
      operationId: remote
      requestBody:
        content:
          application/json:
            schema: {$ref: "https://example.com/schema.json"}
components:
  schemas:
    Q: {type: string}
"##,
    )
    .unwrap();
    assert_eq!(spec.operations().len(), 1);
    assert!(spec.find("good").is_some());
    assert!(spec.find("bad").is_none());
    assert_eq!(spec.warnings().len(), 2, "{:#?}", spec.warnings());
    assert!(
        spec.warnings()[0].contains("#/components/schemas/Missing"),
        "{:#?}",
        spec.warnings()
    );
    assert!(
        spec.warnings()[1].contains("not local"),
        "{:#?}",
        spec.warnings()
    );
}

#[test]
fn a_spec_whose_every_operation_is_broken_is_an_error() {
    let err = Spec::parse(
        r##"{"openapi": "3.0.3", "paths": {"/x": {"get": {"parameters": [{"$ref": "#/nope"}]}}}}"##,
    )
    .unwrap_err();
    assert!(matches!(err, SpecError::NoOperations(_)), "{err}");
    assert!(err.to_string().contains("`#/nope`"), "{err}");
}

#[test]
fn a_self_recursive_schema_terminates() {
    let spec = Spec::parse(
        r##"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /tree:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Node"}
components:
  schemas:
    Node:
      type: object
      properties:
        name: {type: string}
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
        parent: {$ref: "#/components/schemas/Node"}
"##,
    )
    .unwrap();
    let op = spec.find("POST /tree").unwrap();
    assert!(op.body.as_ref().unwrap().schema.to_string().len() < 10_000);
    // The top level is still checked.
    let err = build(op, &json!({"body": {"name": 1}})).unwrap_err();
    assert!(err.to_string().starts_with("`body` at `/name`"), "{err}");
    build(
        op,
        &json!({"body": {"name": "a", "children": [{"name": "b"}]}}),
    )
    .unwrap();
}

#[test]
fn mutually_recursive_schemas_terminate() {
    let spec = Spec::parse(
        r##"{"openapi": "3.1.0", "paths": {"/a": {"put": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},
            "components": {"schemas": {
              "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}, "b2": {"$ref": "#/components/schemas/B"}}},
              "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}, "a2": {"$ref": "#/components/schemas/A"}}}}}}"##,
    )
    .unwrap();
    assert_eq!(spec.operations().len(), 1);
}

#[test]
fn nullable_in_3_0_becomes_a_null_type() {
    let spec = Spec::parse(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 0, exclusiveMinimum: true}}
    patch:
      requestBody:
        content:
          application/merge-patch+json:
            schema:
              type: object
              properties:
                note: {type: string, nullable: true}
                color: {type: string, enum: [red, blue], nullable: true}
                owner: {nullable: true, allOf: [{$ref: "#/components/schemas/Owner"}]}
components:
  schemas:
    Owner: {type: object, required: [name], properties: {name: {type: string}}}
"##,
    )
    .unwrap();
    let op = spec.find("PATCH /items/{id}").unwrap();
    let body = op.body.as_ref().unwrap();
    assert_eq!(body.content_type, "application/merge-patch+json");
    assert_eq!(
        body.schema["properties"]["note"]["type"],
        json!(["string", "null"])
    );
    let req = build(
        op,
        &json!({"id": 3, "body": {"note": null, "color": null, "owner": null}}),
    )
    .unwrap();
    assert_eq!(req.path, "/items/3");
    build(op, &json!({"id": 3, "body": {"owner": {"name": "x"}}})).unwrap();
    assert!(build(op, &json!({"id": 3, "body": {"owner": {}}})).is_err());
    assert!(build(op, &json!({"id": 3, "body": {"color": "green"}})).is_err());
    // `exclusiveMinimum: true` with `minimum: 0` means > 0.
    let err = build(op, &json!({"id": 0})).unwrap_err();
    assert!(err.to_string().starts_with("`id` (path): "), "{err}");
}

#[test]
fn duplicate_operation_ids_keep_the_first() {
    let spec = Spec::parse(
        r#"{"openapi": "3.1.0", "paths": {
            "/a": {"get": {"operationId": "same"}},
            "/b": {"get": {"operationId": "same"}}}}"#,
    )
    .unwrap();
    assert_eq!(spec.find("same").unwrap().path, "/a");
    assert!(spec.find("GET /b").unwrap().id.is_none());
    assert_eq!(spec.warnings().len(), 1);
    assert!(spec.warnings()[0].contains("duplicate operationId `same`"));
}

#[test]
fn refs_to_parameters_bodies_and_path_items_with_pointer_escapes() {
    let spec = Spec::parse(
        r##"{"openapi": "3.1.0",
            "paths": {
              "/things/{id}": {"$ref": "#/components/pathItems/thing"},
              "/a~b/c": {"get": {"operationId": "tilde"}}},
            "components": {
              "pathItems": {"thing": {"parameters": [{"$ref": "#/components/parameters/id"}],
                  "put": {"operationId": "putThing", "requestBody": {"$ref": "#/components/requestBodies/thing"}}}},
              "parameters": {"id": {"name": "id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/a~1b~0c"}}},
              "requestBodies": {"thing": {"required": true, "content": {
                  "text/plain": {"schema": {"type": "string"}},
                  "application/json": {"schema": {"type": "object"}}}}},
              "schemas": {"a/b~c": {"type": "string", "pattern": "^[a-z]+$"}}}}"##,
    )
    .unwrap();
    let op = spec.find("putThing").unwrap();
    assert_eq!(op.parameters[0].schema["pattern"], json!("^[a-z]+$"));
    assert_eq!(op.body.as_ref().unwrap().content_type, "application/json");
    assert!(
        build(op, &json!({"id": "abc"})).is_err(),
        "body is required"
    );
    assert!(build(op, &json!({"id": "ABC", "body": {}})).is_err());
    assert_eq!(
        build(op, &json!({"id": "abc", "body": {}})).unwrap().path,
        "/things/abc"
    );
    assert!(spec.find("tilde").is_some());
}

#[test]
fn an_invalid_vendor_schema_is_not_validated_but_the_operation_stays() {
    let spec = Spec::parse(
        r#"{"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
            {"name": "q", "in": "query", "schema": {"type": "strnig"}}]}}}}"#,
    )
    .unwrap();
    assert_eq!(spec.warnings().len(), 1, "{:#?}", spec.warnings());
    let op = spec.find("GET /x").unwrap();
    assert_eq!(
        build(op, &json!({"q": "a"})).unwrap().path_and_query(),
        "/x?q=a"
    );
}
