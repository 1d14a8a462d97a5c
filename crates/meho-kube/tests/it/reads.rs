//! Reads: built-in and custom resources, selectors, paging, kubectl's columns or whole objects.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{AGENT_RBAC, READS, Spec, env, failed, names, rows};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: NS, labels: { app: web, test: NS } }
spec: { nodeName: node-a, containers: [{ name: app, image: registry.invalid/web:1 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-2, namespace: NS, labels: { app: web, test: NS } }
spec: { nodeName: node-a, containers: [{ name: app, image: registry.invalid/web:1 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: db-1, namespace: NS, labels: { app: db, test: NS } }
spec: { nodeName: node-a, containers: [{ name: db, image: registry.invalid/db:1 }] }
"#;

/// Listing pods in every namespace (a ClusterRole; the names carry the namespace, which is
/// unique to the test).
const LIST_EVERYWHERE: &str = r#"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: list-pods-NS }
rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list"] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: list-pods-NS }
subjects: [{ kind: ServiceAccount, name: agent, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: list-pods-NS }
"#;

#[tokio::test]
async fn pods_come_as_kubectls_columns_or_whole_objects_with_selectors() {
    let rbac = AGENT_RBAC.to_owned() + LIST_EVERYWHERE;
    let Some(env) = env(Spec {
        rbac: &rbac,
        cluster: &format!(
            "rules = [{READS}, {{ verbs = [\"list\"], resources = [\"pods\"], namespaces = [\"-\"], effect = \"allow\" }}]"
        ),
        ..Spec::new("reads-pods")
    })
    .await
    else {
        return;
    };
    env.apply(PODS).await;
    env.shared.pod_running(&env.ns, "web-1").await;
    let ns = env.ns.as_str();

    let table = env
        .call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "pods", "namespace": ns, "name": "web-1" }),
        )
        .await
        .unwrap();
    assert_eq!(
        table["columns"],
        json!(["Name", "Ready", "Status", "Restarts", "Age"]),
        "kubectl's default columns: {table}"
    );
    let row = &rows(&table)[0];
    assert_eq!(
        (row["Name"].as_str(), row["Status"].as_str()),
        (Some("web-1"), Some("Running"))
    );
    assert_eq!(row["Ready"], "1/1");

    // `Pod` and `pods` are one resource; `output: full` is the object without managedFields.
    let full = env
        .call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "Pod", "namespace": ns, "name": "web-1", "output": "full" }),
        )
        .await
        .unwrap();
    let object = &full["object"];
    assert_eq!(object["kind"], "Pod");
    assert_eq!(object["metadata"]["name"], "web-1");
    assert_eq!(
        object["spec"]["containers"][0]["image"],
        "registry.invalid/web:1"
    );
    assert!(
        object["metadata"].get("managedFields").is_none(),
        "{object}"
    );
    let (_, raw) = env.admin_get("/api/v1/namespaces/NS/pods/web-1").await;
    assert!(
        raw["metadata"]["managedFields"].is_array(),
        "the server has them: {raw}"
    );

    let list = |extra: Value| {
        let mut args = json!({ "cluster": "lab", "resource": "pods", "namespace": ns });
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        env.call("k8s_list", args)
    };
    let mut all = names(&list(json!({})).await.unwrap());
    all.sort();
    assert_eq!(all, ["db-1", "web-1", "web-2"]);
    let web = names(&list(json!({ "label_selector": "app=web" })).await.unwrap());
    assert_eq!(web, ["web-1", "web-2"]);
    let not_web = names(
        &list(json!({ "label_selector": "app in (web,db),app!=web" }))
            .await
            .unwrap(),
    );
    assert_eq!(not_web, ["db-1"]);
    let running = names(
        &list(json!({ "field_selector": "status.phase=Running" }))
            .await
            .unwrap(),
    );
    assert_eq!(running, ["web-1"]);
    let pending = names(
        &list(json!({ "field_selector": "status.phase!=Running", "label_selector": "app=web" }))
            .await
            .unwrap(),
    );
    assert_eq!(pending, ["web-2"]);
    let err = failed(
        list(json!({ "field_selector": "spec.bogus=1" })).await,
        "invalid_arguments",
    );
    assert!(
        err.message.contains("spec.bogus"),
        "the server's words: {err:?}"
    );

    let full = list(json!({ "output": "full", "label_selector": "app=db" }))
        .await
        .unwrap();
    let items = full["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{full}");
    assert_eq!(full["kind"], "PodList", "{full}");
    assert_eq!(full["apiVersion"], "v1", "{full}");
    assert_eq!(items[0]["metadata"]["name"], "db-1");
    assert!(
        items[0]["metadata"].get("managedFields").is_none(),
        "{full}"
    );

    // Across every namespace: the namespace is the first column.
    let everywhere = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "pods", "label_selector": format!("test={ns}") }),
        )
        .await
        .unwrap();
    assert_eq!(everywhere["columns"][0], "Namespace", "{everywhere}");
    let rows = rows(&everywhere);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["Namespace"] == ns), "{everywhere}");
    let decided = env.records_where("intent", "k8s_list").await;
    assert_eq!(
        crate::support::body(decided.last().unwrap())["arguments"]["action"],
        "list pods -/-"
    );
}

#[tokio::test]
async fn a_long_list_comes_in_pages() {
    let Some(env) = env(Spec {
        cluster: &format!("rules = [{READS}]"),
        ..Spec::new("reads-pages")
    })
    .await
    else {
        return;
    };
    let mut manifest = String::new();
    for i in 0..7 {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: page-{i}, namespace: NS, labels: {{ paged: \"yes\" }} }}\ndata: {{ i: \"{i}\" }}\n"
        ));
    }
    manifest.push_str(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: unpaged, namespace: NS }\n",
    );
    env.apply(&manifest).await;

    for output in ["compact", "full"] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut args = json!({
                "cluster": "lab", "resource": "configmaps", "namespace": env.ns,
                "label_selector": "paged=yes", "limit": 3, "output": output,
            });
            if let Some(token) = &token {
                args["continue"] = json!(token);
            }
            let page = env.call("k8s_list", args).await.unwrap();
            pages += 1;
            let page_names: Vec<String> = if output == "compact" {
                names(&page)
            } else {
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
                    .collect()
            };
            assert!(page_names.len() <= 3, "{page}");
            seen.extend(page_names);
            match page.get("continue").and_then(Value::as_str) {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(pages, 3, "{output}");
        assert_eq!(
            seen,
            (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>(),
            "{output}"
        );
    }
    // Without a selector the server says how many remain.
    let first = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "limit": 5 }),
        )
        .await
        .unwrap();
    assert_eq!(first["remaining_item_count"], 3, "{first}");
    let err = failed(
        env.call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "limit": 5, "continue": "not-a-token" }),
        )
        .await,
        "invalid_arguments",
    );
    assert!(err.message.contains("continue"), "{err:?}");
    failed(
        env.call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "limit": 0 }),
        )
        .await,
        "invalid_arguments",
    );
}

#[tokio::test]
async fn a_custom_resource_is_read_once_its_definition_is_established() {
    let group = "reads-crd.meho.test";
    let rbac = AGENT_RBAC.to_owned()
        + &format!(
            r#"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: widgets, namespace: NS }}
rules: [{{ apiGroups: ["{group}"], resources: ["widgets"], verbs: ["get", "list"] }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: widgets, namespace: NS }}
subjects: [{{ kind: ServiceAccount, name: agent, namespace: NS }}]
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: widgets }}
"#
        );
    let Some(env) = env(Spec {
        rbac: &rbac,
        cluster: &format!("rules = [{READS}]"),
        ..Spec::new("reads-crd")
    })
    .await
    else {
        return;
    };
    // The connector has looked the cluster up before the definition exists.
    env.call(
        "k8s_list",
        json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns }),
    )
    .await
    .unwrap();
    failed(
        env.call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "widgets", "namespace": env.ns }),
        )
        .await,
        "invalid_arguments",
    );

    env.apply(&format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{ name: widgets.{group} }}
spec:
  group: {group}
  scope: Namespaced
  names: {{ plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }}
  versions:
    - name: v1
      served: true
      storage: true
      additionalPrinterColumns:
        - {{ name: Size, type: integer, jsonPath: .spec.size }}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties: {{ size: {{ type: integer }} }}
"#
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, crd) = env
            .admin_get(&format!(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"
            ))
            .await;
        let established = crd["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        });
        if established {
            break;
        }
        assert!(Instant::now() < deadline, "never established: {crd}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Established: the connector's discovery sees it at once.
    let empty = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "widgets", "namespace": env.ns }),
        )
        .await
        .unwrap();
    assert_eq!(empty["rows"], json!([]), "{empty}");
    env.apply(&format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{ name: sprocket, namespace: NS, labels: {{ size: big }} }}\nspec: {{ size: 42 }}\n---\napiVersion: {group}/v1\nkind: Widget\nmetadata: {{ name: cog, namespace: NS }}\nspec: {{ size: 3 }}\n"
    ))
    .await;

    let listed = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": format!("widgets.{group}"), "namespace": env.ns }),
        )
        .await
        .unwrap();
    // The definition's printer columns replace the default `Age`, as kubectl shows them.
    assert_eq!(listed["columns"], json!(["Name", "Size"]), "{listed}");
    let listed = rows(&listed);
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (&listed[0]["Name"], &listed[0]["Size"]),
        (&json!("cog"), &json!(3))
    );
    let big = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "Widget", "namespace": env.ns, "label_selector": "size=big" }),
        )
        .await
        .unwrap();
    assert_eq!(names(&big), ["sprocket"]);
    let full = env
        .call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "widgets", "namespace": env.ns, "name": "sprocket", "output": "full" }),
        )
        .await
        .unwrap();
    assert_eq!(full["object"]["spec"]["size"], 42);
    assert_eq!(full["object"]["apiVersion"], format!("{group}/v1"));
    assert!(full["object"]["metadata"].get("managedFields").is_none());
    let intents = env.records_where("intent", "k8s_get").await;
    assert_eq!(
        crate::support::body(&intents[0])["arguments"]["action"],
        format!("get widgets.{group} {}/sprocket", env.ns)
    );
}

#[tokio::test]
async fn what_the_cluster_does_not_serve_or_hold_is_named() {
    let Some(env) = env(Spec {
        cluster: &format!(
            "rules = [{READS}, {{ verbs = [\"get\"], resources = [\"namespaces\"], namespaces = [\"-\"], effect = \"allow\" }}]"
        ),
        ..Spec::new("reads-errors")
    })
    .await
    else {
        return;
    };
    let ns = env.ns.as_str();
    for (args, needle) in [
        (
            json!({ "cluster": "lab", "resource": "gizmos", "namespace": ns, "name": "a" }),
            "serves no resource `gizmos`",
        ),
        (
            json!({ "cluster": "lab", "resource": "pods", "name": "a" }),
            "namespaced",
        ),
        (
            json!({ "cluster": "lab", "resource": "namespaces", "namespace": ns, "name": "a" }),
            "cluster-scoped",
        ),
        (
            json!({ "cluster": "lab", "resource": "pods/log", "namespace": ns, "name": "a" }),
            "not a resource name",
        ),
        (
            json!({ "cluster": "lab", "resource": "pods", "namespace": ns, "name": "Bad_Name" }),
            "name",
        ),
        (
            json!({ "cluster": "lab", "resource": "pods", "namespace": ns, "name": "a", "extra": 1 }),
            "unknown field",
        ),
    ] {
        let err = failed(env.call("k8s_get", args.clone()).await, "invalid_arguments");
        assert!(err.message.contains(needle), "{args}: {err:?}");
    }
    failed(
        env.call(
            "k8s_get",
            json!({ "cluster": "nope", "resource": "pods", "namespace": ns, "name": "a" }),
        )
        .await,
        "unknown_target",
    );
    let err = failed(
        env.call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "pods", "namespace": ns, "name": "absent" }),
        )
        .await,
        "not_found",
    );
    assert!(err.message.contains("\"absent\" not found"), "{err:?}");
    assert_eq!(
        env.minted(crate::support::AGENT_SA),
        1,
        "only the call that was allowed minted"
    );
}
