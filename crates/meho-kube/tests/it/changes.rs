//! Changes: server-side apply (create, update, a conflict never forced, strict validation, many
//! objects each decided) and delete with a propagation policy.

use serde_json::{Value, json};

use crate::support::{AGENT_SA, READS, Spec, env, failed};

const RULES: &str = r#"rules = [
    READS_RULE,
    { verbs = ["apply", "delete"], resources = ["configmaps", "deployments.apps"], namespaces = ["NS"], effect = "allow" },
    { verbs = ["apply"], resources = ["configmaps"], names = ["locked-*"], effect = "deny" },
]"#;

fn rules() -> String {
    RULES.replace("READS_RULE", READS)
}

fn config_map(name: &str, data: Value) -> String {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": "NS" },
        "data": data,
    })
    .to_string()
}

#[tokio::test]
async fn apply_creates_then_updates_as_field_manager_meho() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("apply-update")
    })
    .await
    else {
        return;
    };
    let ns = env.ns.as_str();
    let yaml = |colour: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  colour: {colour}\n"
        )
    };
    let created = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": yaml("blue") }),
        )
        .await
        .unwrap();
    assert_eq!(created["field_manager"], "meho");
    let applied = &created["applied"][0];
    assert_eq!(applied["action"], format!("apply configmaps {ns}/settings"));
    let (status, stored) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/settings")
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored["data"]["colour"], "blue");
    assert_eq!(stored["metadata"]["uid"], applied["uid"]);
    let managers: Vec<&Value> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["manager"])
        .collect();
    assert_eq!(managers, [&json!("meho")]);
    assert_eq!(
        env.cluster_events("patch", "configmaps", "settings")[0]["user"]["username"],
        format!("system:serviceaccount:{ns}:{AGENT_SA}")
    );

    let updated = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": yaml("green") }),
        )
        .await
        .unwrap();
    assert_ne!(
        updated["applied"][0]["resource_version"],
        applied["resource_version"]
    );
    let (_, stored) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/settings")
        .await;
    assert_eq!(stored["data"]["colour"], "green");
    // The same again changes nothing.
    let again = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": yaml("green") }),
        )
        .await
        .unwrap();
    assert_eq!(
        again["applied"][0]["resource_version"],
        updated["applied"][0]["resource_version"]
    );

    // A namespaced object without a namespace lands in `default`, and that is what is decided.
    let err = failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: stray }\n" }),
        )
        .await,
        "denied",
    );
    assert_eq!(err.detail.unwrap()["decision"]["rule"], "default-deny:lab");
    let denial = env.records_where("denial", "k8s_apply").await;
    assert_eq!(
        crate::support::body(&denial[0])["arguments"]["objects"],
        json!(["apply configmaps default/stray"])
    );
}

#[tokio::test]
async fn a_field_another_manager_owns_is_a_conflict_never_forced() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("apply-conflict")
    })
    .await
    else {
        return;
    };
    // The fixture (another field manager) owns `data.colour`.
    env.apply(&config_map("shared", json!({ "colour": "blue" })))
        .await;
    let err = failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": config_map("shared", json!({ "colour": "red" })).replace("NS", &env.ns) }),
        )
        .await,
        "conflict",
    );
    assert!(
        err.message.contains("conflict with \"fixture\""),
        "the server's words: {err:?}"
    );
    let (_, stored) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/shared")
        .await;
    assert_eq!(stored["data"]["colour"], "blue", "the apply was forced");
    // Its own fields (and the same value of a shared one) apply.
    env.call(
        "k8s_apply",
        json!({ "cluster": "lab", "manifest": config_map("shared", json!({ "colour": "blue", "size": "xl" })).replace("NS", &env.ns) }),
    )
    .await
    .unwrap();
    let (_, stored) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/shared")
        .await;
    assert_eq!(stored["data"], json!({ "colour": "blue", "size": "xl" }));
    let outcome = env
        .records_where("outcome", "k8s_apply")
        .await
        .into_iter()
        .find(|r| r.outcome.as_deref() == Some("error"))
        .unwrap();
    assert!(
        crate::support::body(&outcome)["error"]
            .as_str()
            .unwrap()
            .contains("conflict"),
    );
}

#[tokio::test]
async fn an_unknown_field_is_refused_with_the_servers_words() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("apply-strict")
    })
    .await
    else {
        return;
    };
    let ns = env.ns.as_str();
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: web, namespace: {ns} }}
spec:
  replicas: 2
  selector: {{ matchLabels: {{ app: web }} }}
  template:
    metadata: {{ labels: {{ app: web }} }}
    spec:
      containers:
        - name: app
          image: registry.invalid/web:1
          imagePullPolicyy: Always
"#
    );
    let err = failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": manifest }),
        )
        .await,
        "invalid_arguments",
    );
    assert!(err.message.contains("imagePullPolicyy"), "{err:?}");
    let (status, _) = env
        .admin_get("/apis/apps/v1/namespaces/NS/deployments/web")
        .await;
    assert_eq!(status, 404);
    let fixed = manifest.replace("imagePullPolicyy", "imagePullPolicy");
    env.call("k8s_apply", json!({ "cluster": "lab", "manifest": fixed }))
        .await
        .unwrap();
    let (status, stored) = env
        .admin_get("/apis/apps/v1/namespaces/NS/deployments/web")
        .await;
    assert_eq!((status, &stored["spec"]["replicas"]), (200, &json!(2)));
    // Malformed manifests never reach the cluster.
    for (manifest, needle) in [
        ("kind: ConfigMap\nmetadata: { name: a }\n", "apiVersion"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: { generateName: a- }\n",
            "generateName",
        ),
        (
            "apiVersion: v1\nkind: Gizmo\nmetadata: { name: a }\n",
            "no kind `Gizmo`",
        ),
        ("{ not json", "not JSON"),
        ("a: [unclosed", "not YAML"),
        ("", "no object"),
    ] {
        let err = failed(
            env.call(
                "k8s_apply",
                json!({ "cluster": "lab", "manifest": manifest }),
            )
            .await,
            "invalid_arguments",
        );
        assert!(err.message.contains(needle), "{manifest:?}: {err:?}");
    }
}

#[tokio::test]
async fn each_object_of_a_manifest_is_decided_and_one_refusal_applies_nothing() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("apply-many")
    })
    .await
    else {
        return;
    };
    let ns = env.ns.as_str();
    let doc = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata: {{ k: v }}\n"
        )
    };
    let before = env.minted(AGENT_SA);
    let refused = format!(
        "{}---\n{}---\n{}",
        doc("one"),
        doc("locked-two"),
        doc("three")
    );
    let err = failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": refused }),
        )
        .await,
        "denied",
    );
    let decision = &err.detail.unwrap()["decision"];
    assert_eq!(decision["rule"], "deny:lab/rules[2]");
    let warnings = decision["warnings"].to_string();
    assert!(
        warnings.contains(&format!("apply configmaps {ns}/one: allow"))
            && warnings.contains(&format!("apply configmaps {ns}/locked-two: deny")),
        "each object's decision: {warnings}"
    );
    for name in ["one", "locked-two", "three"] {
        let (status, _) = env
            .admin_get(&format!("/api/v1/namespaces/NS/configmaps/{name}"))
            .await;
        assert_eq!(status, 404, "{name} was applied");
    }
    assert_eq!(env.minted(AGENT_SA), before);
    // An object in a namespace no rule allows refuses the whole call too.
    let elsewhere = format!("{}---\n{}", doc("one"), doc("four").replace(ns, "default"));
    failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": elsewhere }),
        )
        .await,
        "denied",
    );
    assert_eq!(env.minted(AGENT_SA), before);

    // All allowed: all applied, in order, with one token; as JSON (a List) too.
    let allowed = format!("---\n{}---\n{}---\n", doc("one"), doc("three"));
    let done = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": allowed }),
        )
        .await
        .unwrap();
    let actions: Vec<&Value> = done["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["action"])
        .collect();
    assert_eq!(
        actions,
        [
            &json!(format!("apply configmaps {ns}/one")),
            &json!(format!("apply configmaps {ns}/three"))
        ]
    );
    assert_eq!(env.minted(AGENT_SA), before + 1);
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": [
        { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "five", "namespace": ns } },
        { "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "six", "namespace": ns } },
    ]});
    let done = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": list.to_string() }),
        )
        .await
        .unwrap();
    assert_eq!(done["applied"].as_array().unwrap().len(), 2);
    for name in ["one", "three", "five", "six"] {
        let (status, _) = env
            .admin_get(&format!("/api/v1/namespaces/NS/configmaps/{name}"))
            .await;
        assert_eq!(status, 200, "{name}");
    }
    // The records name the objects and the manifest's hash, never its text.
    let intent = env.records_where("intent", "k8s_apply").await;
    let shown = &crate::support::body(intent.last().unwrap())["arguments"];
    assert!(shown.get("manifest").is_none(), "{shown}");
    assert_eq!(shown["objects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn delete_passes_its_propagation_policy() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("delete-propagation")
    })
    .await
    else {
        return;
    };
    for name in ["gone", "fore", "orphaned"] {
        env.apply(&config_map(name, json!({ "k": "v" }))).await;
    }
    let delete = |name: &str, propagation: Option<&str>| {
        let mut args = json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": name });
        if let Some(p) = propagation {
            args["propagation"] = json!(p);
        }
        env.call("k8s_delete", args)
    };
    let done = delete("gone", Some("background")).await.unwrap();
    assert_eq!(done["deleted"], true);
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/gone")
            .await
            .0,
        404
    );
    // No garbage collector runs here: foreground and orphan deletes leave the object with the
    // finalizer the policy asks for, which is how the policy shows it reached the server.
    for (name, propagation, finalizer) in [
        ("fore", "foreground", "foregroundDeletion"),
        ("orphaned", "orphan", "orphan"),
    ] {
        delete(name, Some(propagation)).await.unwrap();
        let (status, stored) = env
            .admin_get(&format!("/api/v1/namespaces/NS/configmaps/{name}"))
            .await;
        assert_eq!(status, 200, "{name}");
        assert!(
            stored["metadata"]["deletionTimestamp"].is_string(),
            "{stored}"
        );
        assert_eq!(
            stored["metadata"]["finalizers"],
            json!([finalizer]),
            "{stored}"
        );
    }
    failed(delete("never-was", None).await, "not_found");
    let err = failed(delete("gone", Some("sideways")).await, "invalid_arguments");
    assert!(err.message.contains("sideways"), "{err:?}");
    let events = env.cluster_events("delete", "configmaps", "gone");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["user"]["username"],
        format!("system:serviceaccount:{}:{AGENT_SA}", env.ns)
    );
}

#[tokio::test]
async fn a_cluster_scoped_object_is_applied_and_deleted_without_a_namespace() {
    let rbac = crate::support::AGENT_RBAC.to_owned()
        + r#"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: namespaces-NS }
rules:
  - { apiGroups: [""], resources: ["namespaces"], verbs: ["get", "patch", "delete"], resourceNames: ["NS-child"] }
  # Creating by server-side apply is authorized as `create`, which no name restricts.
  - { apiGroups: [""], resources: ["namespaces"], verbs: ["create"] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: namespaces-NS }
subjects: [{ kind: ServiceAccount, name: agent, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: namespaces-NS }
"#;
    let Some(env) = env(Spec {
        rbac: &rbac,
        cluster: r#"rules = [{ verbs = ["get", "apply", "delete"], resources = ["namespaces"], namespaces = ["-"], names = ["NS-child"], effect = "allow" }]"#,
        ..Spec::new("apply-cluster-scoped")
    })
    .await
    else {
        return;
    };
    let child = format!("{}-child", env.ns);
    let done = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": format!("apiVersion: v1\nkind: Namespace\nmetadata: {{ name: {child}, labels: {{ team: a }} }}\n") }),
        )
        .await
        .unwrap();
    assert_eq!(
        done["applied"][0]["action"],
        format!("apply namespaces -/{child}")
    );
    let (status, stored) = env.admin_get(&format!("/api/v1/namespaces/{child}")).await;
    assert_eq!(
        (status, &stored["metadata"]["labels"]["team"]),
        (200, &json!("a"))
    );
    let got = env
        .call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "namespaces", "name": child, "output": "full" }),
        )
        .await
        .unwrap();
    assert_eq!(got["object"]["metadata"]["name"], child.as_str());
    // Naming a namespace for it is refused, in a manifest as in a call.
    let err = failed(
        env.call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": format!("apiVersion: v1\nkind: Namespace\nmetadata: {{ name: {child}, namespace: x }}\n") }),
        )
        .await,
        "invalid_arguments",
    );
    assert!(err.message.contains("cluster-scoped"), "{err:?}");
    env.call(
        "k8s_delete",
        json!({ "cluster": "lab", "resource": "namespaces", "name": child }),
    )
    .await
    .unwrap();
    // No namespace controller runs here: the namespace stays, terminating.
    let (_, stored) = env.admin_get(&format!("/api/v1/namespaces/{child}")).await;
    assert_eq!(stored["status"]["phase"], "Terminating", "{stored}");
}
