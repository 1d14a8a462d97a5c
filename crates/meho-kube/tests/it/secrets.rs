//! Secret values never reach the model, the records or an approver unless a `reveal` rule lets
//! the model see them.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Spec, agent, boss, env, preview_of};

const CANARY: &str = "canary-7f3a9c-data";
const STRING_CANARY: &str = "canary-51be0d-string";
const ANNOTATION_CANARY: &str = "canary-c0ffee-annotation";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Every spelling of every canary a leak could take.
fn assert_clean(what: &str, text: &str) {
    for canary in [CANARY, STRING_CANARY, ANNOTATION_CANARY] {
        for spelling in [canary.to_owned(), b64(canary)] {
            assert!(
                !text.contains(&spelling),
                "{what} carries a Secret value ({spelling}): {text}"
            );
        }
    }
}

/// A Secret as `kubectl apply` leaves it: values in `data` and `stringData`, and the whole
/// object again in the last-applied annotation.
fn secret(name: &str) -> String {
    let last_applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": name, "namespace": "NS" },
        "data": { "password": b64(CANARY) },
        "stringData": { "token": ANNOTATION_CANARY },
    })
    .to_string();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name, "namespace": "NS",
            "annotations": { "kubectl.kubernetes.io/last-applied-configuration": last_applied },
        },
        "data": { "password": b64(CANARY) },
        "stringData": { "token": STRING_CANARY },
    })
    .to_string()
}

/// Reads, and a held apply of Secrets; nothing revealed.
const RULES: &str = r#"rules = [
    { verbs = ["get", "list"], resources = ["*"], namespaces = ["NS"], effect = "allow" },
    { verbs = ["apply", "delete"], resources = ["secrets"], namespaces = ["NS"], effect = "require_approval" },
]"#;

/// The Secret `shown`, and lists of Secrets, revealed.
const REVEAL: &str = r#"rules = [
    { verbs = ["get", "list"], resources = ["secrets"], namespaces = ["NS"], names = ["shown", "-"], effect = "allow", reveal = true },
    { verbs = ["get", "list"], resources = ["*"], namespaces = ["NS"], effect = "allow" },
]"#;

#[tokio::test]
async fn secret_values_are_sizes_for_the_model_the_records_and_the_approver() {
    let Some(env) = env(Spec {
        cluster: RULES,
        ..Spec::new("secrets-redact")
    })
    .await
    else {
        return;
    };
    env.apply(&secret("db")).await;
    let (_, stored) = env.admin_get("/api/v1/namespaces/NS/secrets/db").await;
    assert_eq!(
        stored["data"]["token"],
        b64(STRING_CANARY),
        "stringData is stored as data"
    );
    let ns = env.ns.as_str();

    let mut answers = Vec::new();
    for output in ["compact", "full"] {
        answers.push(
            env.call(
                "k8s_get",
                json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "name": "db", "output": output }),
            )
            .await
            .unwrap(),
        );
    }
    let full = &answers[1]["object"];
    assert_eq!(
        full["data"]["password"],
        format!("<redacted: {} bytes>", CANARY.len())
    );
    assert_eq!(
        full["data"]["token"],
        format!("<redacted: {} bytes>", STRING_CANARY.len())
    );
    assert_eq!(
        full["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "<redacted: repeats the Secret's values>"
    );
    // Listing (Table or whole objects) hides them the same way: items of a list carry no kind.
    for output in ["compact", "full"] {
        answers.push(
            env.call(
                "k8s_list",
                json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "output": output }),
            )
            .await
            .unwrap(),
        );
    }
    let items = answers[3]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", answers[3]);
    assert_eq!(
        items[0]["data"]["password"],
        format!("<redacted: {} bytes>", CANARY.len())
    );
    for answer in &answers {
        assert_clean("a tool result", &answer.to_string());
    }

    // A held apply of a Secret: the approver's preview shows which values the object gets, not
    // what they are.
    let manifest = secret("db-new").replace("NS", ns);
    let held = env
        .call(
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": manifest }),
        )
        .await
        .unwrap();
    assert_eq!(held["status"], "pending_approval", "{held}");
    let id = held["approval_id"].as_str().unwrap();
    let approval = env
        .lab
        .governance
        .approvals
        .get("default", id)
        .await
        .unwrap();
    let preview = preview_of(&approval);
    assert!(
        preview.contains(&format!("# apply secrets {ns}/db-new")),
        "{preview}"
    );
    assert_clean("the held call's result", &held.to_string());
    // The whole preview (the approval carries its first lines), from the connector's stages.
    let whole = whole_preview(
        &env,
        "k8s_apply",
        json!({ "cluster": "lab", "manifest": manifest }),
    )
    .await;
    assert!(
        whole.contains(&format!(
            "+  password: \"<redacted: {} bytes, sha256 ",
            CANARY.len()
        )),
        "{whole}"
    );
    assert!(
        whole.contains("<redacted: repeats the Secret's values>"),
        "{whole}"
    );
    assert_clean("the whole preview", &whole);
    assert_clean("the approval", &serde_json::to_string(&approval).unwrap());
    assert_clean("the preview", &preview);
    // Approved and collected, it runs; the result names what changed, not the values.
    env.lab
        .governance
        .decide(&boss(), id, true, "rotate", None)
        .await
        .unwrap();
    let done = env
        .lab
        .gateway
        .approval_status(&agent(), id, std::time::Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed", "{done}");
    assert_clean("the applied call's result", &done.to_string());
    let (_, stored) = env.admin_get("/api/v1/namespaces/NS/secrets/db-new").await;
    assert_eq!(stored["data"]["password"], b64(CANARY));

    // A held delete shows the Secret that would go, without its values.
    let held = env
        .call(
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "name": "db" }),
        )
        .await
        .unwrap();
    let id = held["approval_id"].as_str().unwrap();
    let approval = env
        .lab
        .governance
        .approvals
        .get("default", id)
        .await
        .unwrap();
    let preview = preview_of(&approval);
    assert!(preview.contains("+++ (deleted)"), "{preview}");
    let whole = whole_preview(
        &env,
        "k8s_delete",
        json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "name": "db" }),
    )
    .await;
    assert!(whole.contains("-  password: \"<redacted: "), "{whole}");
    assert_clean("the whole preview of a delete", &whole);
    assert_clean(
        "the held delete's approval",
        &serde_json::to_string(&approval).unwrap(),
    );

    for record in env.records().await {
        assert_clean("an audit record", &serde_json::to_string(&record).unwrap());
    }
    env.assert_no_token_recorded().await;
}

/// The preview the connector hands the gateway for a held `tool` call, as the connector made it
/// (before the gateway's redaction, which must find nothing here to redact).
async fn whole_preview(env: &crate::support::Env, tool: &str, args: Value) -> String {
    use meho_gateway::{CallContext, Connector as _, Refusal};
    let caller = agent();
    let call = CallContext {
        caller: &caller,
        call_id: "preview-test",
    };
    let plan = env.lab.connector.plan(call, tool, &args).await.unwrap();
    match env.lab.connector.authorize(call, &plan, None).await {
        Err(Refusal::Decided {
            decision,
            preview: Some(preview),
            ..
        }) if decision.decision.needs_approval() => preview,
        Err(Refusal::Decided {
            decision, preview, ..
        }) => panic!("{decision:?} {preview:?}"),
        Err(Refusal::Error(error)) => panic!("{error:?}"),
        Ok(_) => panic!("{tool} was not held"),
    }
}

#[tokio::test]
async fn a_reveal_rule_shows_the_values_of_exactly_the_secrets_it_names() {
    let Some(env) = env(Spec {
        cluster: REVEAL,
        ..Spec::new("secrets-reveal")
    })
    .await
    else {
        return;
    };
    env.apply(&secret("shown")).await;
    env.apply(&secret("hidden")).await;
    let ns = env.ns.as_str();
    let get = |name: &str| {
        env.call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "name": name, "output": "full" }),
        )
    };
    let shown = get("shown").await.unwrap();
    assert_eq!(shown["object"]["data"]["password"], b64(CANARY));
    assert_eq!(shown["object"]["data"]["token"], b64(STRING_CANARY));
    let hidden = get("hidden").await.unwrap();
    assert_clean("a Secret no reveal rule names", &hidden.to_string());
    // The list rule reveals (`-` is the list's name).
    let listed = env
        .call(
            "k8s_list",
            json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "output": "full" }),
        )
        .await
        .unwrap();
    let values: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["data"]["password"])
        .collect();
    assert_eq!(values, [&json!(b64(CANARY)), &json!(b64(CANARY))]);
    // What the model saw is its business; the records never hold it.
    for record in env.records().await {
        assert_clean("an audit record", &serde_json::to_string(&record).unwrap());
    }
}
