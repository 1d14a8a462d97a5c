//! The credential: a token per call for exactly the caller's bound ServiceAccount, living
//! `token_ttl_seconds`, never recorded; two layers of refusal, the first before anything is
//! minted.

use meho_gateway::Caller;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{AGENT_SA, Spec, agent, body, env, failed};

const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: NS }
data: { colour: blue }
"#;

#[tokio::test]
async fn each_call_mints_a_token_for_exactly_the_bound_service_account_that_expires() {
    let Some(env) = env(Spec {
        more_accounts: &["operator"],
        rbac: &(crate::support::AGENT_RBAC.to_owned()
            + r#"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: operator, namespace: NS }
subjects: [{ kind: ServiceAccount, name: operator, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
"#),
        cluster: &format!(
            "token_ttl_seconds = 700\ngroups = [\"ops\", \"dev\"]\n\
             sa_bindings = [{{ groups = [\"ops\"], namespace = \"NS\", service_account = \"operator\" }}, \
             {{ namespace = \"NS\", service_account = \"{AGENT_SA}\" }}]\nrules = [{}]\n",
            crate::support::READS
        ),
        ..Spec::new("tok-mint")
    })
    .await
    else {
        return;
    };
    env.apply(CONFIG).await;
    let get = json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "settings", "output": "full" });
    let before = env.minted(AGENT_SA);

    let first = env.call("k8s_get", get.clone()).await.unwrap();
    assert_eq!(first["object"]["data"]["colour"], "blue", "{first}");
    assert_eq!(env.minted(AGENT_SA), before + 1);
    let second = env.call("k8s_get", get.clone()).await.unwrap();
    assert_eq!(second["object"]["data"], first["object"]["data"]);
    assert_eq!(env.minted(AGENT_SA), before + 2);

    // One credential record per call, each its own token (serial = the token's jti), for the
    // bound account, expiring token_ttl_seconds after it was minted.
    let credentials = env.records_where("credential", "k8s_get").await;
    assert_eq!(credentials.len(), 2, "{credentials:#?}");
    let mut serials = Vec::new();
    for record in &credentials {
        let credential = &body(record)["credential"];
        assert_eq!(credential["kind"], "serviceaccount_token");
        assert_eq!(credential["service_account"], env.sa(AGENT_SA));
        assert_eq!(credential["ttl_seconds"], 700);
        assert_eq!(credential["purpose"], "call");
        assert_eq!(record.outcome.as_deref(), Some("issued"));
        let expires = OffsetDateTime::parse(credential["expires_at"].as_str().unwrap(), &Rfc3339)
            .unwrap()
            .unix_timestamp();
        let issued = record.ts / 1_000_000;
        assert!(
            (expires - issued - 700).abs() <= 5,
            "expires {expires}, recorded {issued}: not token_ttl_seconds later"
        );
        let serial = credential["serial"].as_str().unwrap().to_owned();
        assert!(
            !serial.is_empty() && !serial.starts_with("sha256:"),
            "{serial}"
        );
        // The call's intent and outcome name the same credential.
        let call = env
            .lab
            .records_of_call(record.call_id.as_deref().unwrap())
            .await;
        let outcome = call.iter().find(|r| r.kind == "outcome").unwrap();
        assert_eq!(body(outcome)["credential_serial"], serial.as_str());
        assert!(call.iter().any(|r| r.kind == "intent"));
        serials.push(serial);
    }
    assert_ne!(serials[0], serials[1], "a token served two calls");

    // The cluster saw each read as the bound account, and each TokenRequest from the minter.
    // Each read was authenticated by the token minted for it: the apiserver names the token's
    // jti, which is the serial meho recorded.
    let reads = env.cluster_events("get", "configmaps", "settings");
    assert_eq!(reads.len(), 2, "{reads:#?}");
    for (read, serial) in reads.iter().zip(&serials) {
        assert_eq!(
            read["user"]["username"],
            format!("system:serviceaccount:{}:{AGENT_SA}", env.ns)
        );
        assert_eq!(
            read["user"]["extra"]["authentication.kubernetes.io/credential-id"],
            json!([format!("JTI={serial}")])
        );
        assert_eq!(read["responseStatus"]["code"], 200);
    }
    let mints = env.cluster_events("create", "serviceaccounts", AGENT_SA);
    assert_eq!(mints.len(), 2);
    for mint in &mints {
        assert_eq!(
            mint["user"]["username"],
            "system:serviceaccount:meho-system:meho-minter"
        );
        assert_eq!(mint["objectRef"]["subresource"], "token");
    }

    // A caller of group `ops` runs as its binding's account, one of `dev` as the default.
    let ops = Caller {
        groups: Some(vec!["ops".into()]),
        end_user: Some("alice".into()),
        ..agent()
    };
    let operator_before = env.minted("operator");
    env.call_as(&ops, "k8s_get", get.clone()).await.unwrap();
    assert_eq!(env.minted("operator"), operator_before + 1);
    assert_eq!(env.minted(AGENT_SA), before + 2);
    let reads = env.cluster_events("get", "configmaps", "settings");
    assert_eq!(
        reads.last().unwrap()["user"]["username"],
        format!("system:serviceaccount:{}:operator", env.ns)
    );
    let dev = Caller {
        groups: Some(vec!["dev".into()]),
        end_user: Some("bob".into()),
        ..agent()
    };
    env.call_as(&dev, "k8s_get", get.clone()).await.unwrap();
    assert_eq!(env.minted(AGENT_SA), before + 3);
    // A human of no group of the cluster reaches nothing, and nothing is minted.
    let stranger = Caller {
        groups: Some(vec!["finance".into()]),
        end_user: Some("carol".into()),
        ..agent()
    };
    failed(env.call_as(&stranger, "k8s_get", get).await, "forbidden");
    assert_eq!(env.minted(AGENT_SA), before + 3);
    assert_eq!(env.minted("operator"), operator_before + 1);

    env.assert_no_token_recorded().await;
}

#[tokio::test]
async fn meho_policy_refuses_before_anything_is_minted() {
    let Some(env) = env(Spec {
        cluster: r#"rules = [
            { verbs = ["get", "list"], resources = ["configmaps"], namespaces = ["NS"], effect = "allow" },
            { verbs = ["get"], resources = ["configmaps"], names = ["forbidden-*"], effect = "deny" },
        ]"#,
        ..Spec::new("tok-layer-a")
    })
    .await
    else {
        return;
    };
    env.apply(CONFIG).await;
    let before = env.minted(AGENT_SA);
    let refused = [
        // No rule allows it: the default.
        json!({ "cluster": "lab", "resource": "secrets", "namespace": env.ns, "name": "db" }),
        // Another namespace.
        json!({ "cluster": "lab", "resource": "configmaps", "namespace": "default", "name": "settings" }),
        // A deny rule wins over the allow.
        json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "forbidden-1" }),
    ];
    for args in &refused {
        let err = failed(env.call("k8s_get", args.clone()).await, "denied");
        assert!(err.message.contains("denied by policy"), "{err:?}");
    }
    let err = failed(
        env.call(
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "settings" }),
        )
        .await,
        "denied",
    );
    assert_eq!(
        err.detail.unwrap()["decision"]["rule"],
        "default-deny:lab",
        "the default denies"
    );
    assert_eq!(
        env.minted(AGENT_SA),
        before,
        "a token was minted for a refused call"
    );
    assert!(env.records_where("credential", "k8s_get").await.is_empty());

    // Each refusal is one denial record naming the action and the rule; nothing ran.
    let denials = env.records_where("denial", "k8s_get").await;
    assert_eq!(denials.len(), 3);
    let actions: Vec<Value> = denials
        .iter()
        .map(|d| body(d)["arguments"]["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            json!(format!("get secrets {}/db", env.ns)),
            json!("get configmaps default/settings"),
            json!(format!("get configmaps {}/forbidden-1", env.ns)),
        ]
    );
    assert_eq!(body(&denials[2])["decision"]["rule"], "deny:lab/rules[1]");
    assert!(env.records().await.iter().all(|r| r.kind != "intent"));
    // The object is still there.
    let (status, _) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/settings")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_refusal_by_the_clusters_rbac_is_forbidden_by_cluster_naming_the_account() {
    let Some(env) = env(Spec {
        rbac: r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: NS }
rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: NS }
subjects: [{ kind: ServiceAccount, name: agent, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
"#,
        cluster: r#"rules = [{ verbs = ["*"], resources = ["*"], namespaces = ["NS"], effect = "allow" }]"#,
        ..Spec::new("tok-layer-b")
    })
    .await
    else {
        return;
    };
    env.apply(CONFIG).await;
    let before = env.minted(AGENT_SA);
    env.call(
        "k8s_get",
        json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "settings" }),
    )
    .await
    .unwrap();
    let err = failed(
        env.call(
            "k8s_get",
            json!({ "cluster": "lab", "resource": "secrets", "namespace": env.ns, "name": "db" }),
        )
        .await,
        "forbidden_by_cluster",
    );
    assert!(
        err.message.contains(&format!("`{}`", env.sa(AGENT_SA))),
        "{err:?}"
    );
    assert!(
        err.message.contains(&format!(
            "User \"system:serviceaccount:{}:{AGENT_SA}\" cannot get resource \"secrets\"",
            env.ns
        )),
        "the cluster's own words: {err:?}"
    );
    let err = failed(
        env.call(
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "settings" }),
        )
        .await,
        "forbidden_by_cluster",
    );
    assert!(err.message.contains("cannot delete resource"), "{err:?}");
    assert_eq!(
        env.minted(AGENT_SA),
        before + 3,
        "layer B is asked with a minted token"
    );

    // Audited as a call that ran and failed: intent, then outcome with the error.
    for tool in ["k8s_get", "k8s_delete"] {
        let outcomes: Vec<_> = env
            .records_where("outcome", tool)
            .await
            .into_iter()
            .filter(|r| r.outcome.as_deref() == Some("error"))
            .collect();
        assert_eq!(outcomes.len(), 1, "{tool}");
        let error = body(&outcomes[0])["error"].as_str().unwrap().to_owned();
        assert!(error.contains("is forbidden"), "{error}");
        let call = env
            .lab
            .records_of_call(outcomes[0].call_id.as_deref().unwrap())
            .await;
        let kinds: Vec<&str> = call.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["credential", "intent", "outcome"], "{tool}");
    }
    let (status, _) = env
        .admin_get("/api/v1/namespaces/NS/configmaps/settings")
        .await;
    assert_eq!(status, 200);
    env.assert_no_token_recorded().await;
}
