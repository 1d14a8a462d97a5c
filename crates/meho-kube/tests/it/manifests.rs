//! A manifest means to meho what it means to Kubernetes: the objects `k8s_apply` decides and
//! sends are the objects Kubernetes' own YAML library (sigs.k8s.io/yaml, through the test
//! peer's `yaml2json`) reads from the same text.

use serde_json::json;

use crate::support::{SharedKube, Spec, env};

/// Texts where YAML readers differ: YAML 1.1 scalars (octal, booleans, sexagesimal), numbers in
/// float spelling, anchors and merge keys, block scalars, empty documents, JSON and flow style.
const CORPUS: &[&str] = &[
    r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: scalars }
spec:
  octal: 0644
  octal-o: 0o17
  exponent: 1e3
  float-integral: 2.0
  half: 0.5
  yes-word: yes
  y-letter: y
  on-word: on
  no-word: NO
  tilde: ~
  empty:
  hex: 0x1F
  underscores: 1_000
  date: 2001-12-14
  sexagesimal: 1:20
  plus: +12
  binary: 0b101
  quoted-octal: "0644"
  single: 'it''s'
  escaped: "caf\u00e9\ttab"
  big: 12345678901234
  negative-zero: -0
  plain: hello world
"#,
    r#"
# a comment before the first document
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: blocks
data:
  literal: |
    line one
    line two
  stripped: |-
    no newline
  kept: |+
    kept newlines

  folded: >
    a
    b
...
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: second}
"#,
    r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: anchors, labels: &labels { app: web, tier: "1" } }
spec:
  copy: *labels
  merged:
    <<: *labels
    extra: x
"#,
    r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json"}, "data": {"n": "1"}, "spec": {"f": 2.0, "e": 1e3, "i": 7}}"#,
    r#"[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]"#,
    "{apiVersion: v1, kind: ConfigMap, metadata: {name: flow}, spec: {mode: 0600}}",
    r#"
apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: one } }
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: two } }
"#,
];

#[tokio::test]
async fn a_manifest_reads_as_kubernetes_reads_it() {
    let Some(shared) = SharedKube::get().await else {
        return;
    };
    for manifest in CORPUS {
        let ours = meho_kube::read_manifest(manifest)
            .unwrap_or_else(|e| panic!("{manifest}\nmeho: {e:?}"));
        let kubernetes = shared.kube().manifest_objects(manifest);
        assert_eq!(
            serde_json::Value::Array(ours),
            serde_json::Value::Array(kubernetes),
            "meho (left) and Kubernetes (right) read this differently:\n{manifest}"
        );
    }
}

#[tokio::test]
async fn a_key_given_twice_is_refused_where_kubernetes_would_keep_the_last() {
    let Some(shared) = SharedKube::get().await else {
        return;
    };
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shown\n  name: applied\n";
    let kubernetes = shared.kube().manifest_objects(manifest);
    assert_eq!(kubernetes[0]["metadata"]["name"], "applied");
    let err = meho_kube::read_manifest(manifest).unwrap_err();
    assert_eq!(err.code, "invalid_arguments");
    assert!(err.message.contains("duplicate"), "{err:?}");
}

#[tokio::test]
async fn an_octal_mode_and_a_float_spelled_count_apply_as_kubectl_would() {
    let Some(env) = env(Spec {
        cluster: r#"rules = [{ verbs = ["get", "apply"], resources = ["*"], namespaces = ["NS"], effect = "allow" }]"#,
        ..Spec::new("manifest-numbers")
    })
    .await
    else {
        return;
    };
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: web, namespace: {ns} }}
spec:
  replicas: 2.0
  selector: {{ matchLabels: {{ app: web }} }}
  template:
    metadata: {{ labels: {{ app: web }} }}
    spec:
      containers: [{{ name: app, image: registry.invalid/web:1 }}]
      volumes:
        - name: config
          configMap: {{ name: web, defaultMode: 0440 }}
"#,
        ns = env.ns
    );
    env.call(
        "k8s_apply",
        json!({ "cluster": "lab", "manifest": manifest }),
    )
    .await
    .unwrap();
    let (_, stored) = env
        .admin_get("/apis/apps/v1/namespaces/NS/deployments/web")
        .await;
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(
        stored["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"], 0o440,
        "0440 is octal, as kubectl reads it"
    );
    // A value YAML reads as a boolean is not a name, and a namespace that is not a string is
    // refused, never taken for `default`.
    for (manifest, needle) in [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: y }\n",
            "`metadata.name` is `true`",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, namespace: on }\n",
            "`metadata.namespace` is `true`",
        ),
    ] {
        let err = crate::support::failed(
            env.call(
                "k8s_apply",
                json!({ "cluster": "lab", "manifest": manifest }),
            )
            .await,
            "invalid_arguments",
        );
        assert!(err.message.contains(needle), "{err:?}");
    }
}
