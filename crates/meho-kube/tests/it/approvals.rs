//! A held change, end to end: held with the server's dry run as its preview, decided by another
//! human, run once under the requester's ServiceAccount; any change needs a new approval, and a
//! change the server would refuse is not held at all.

use std::time::Duration;

use meho_gateway::Caller;
use meho_gateway::govern::Origin;
use serde_json::{Value, json};

use crate::support::{AGENT_SA, READS, Spec, agent, body, boss, env, failed, preview_of};

const RULES: &str = r#"rules = [
    READS_RULE,
    { verbs = ["delete"], resources = ["configmaps", "secrets"], namespaces = ["NS"], effect = "require_approval" },
]"#;

fn rules() -> String {
    RULES.replace("READS_RULE", READS)
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: doomed, namespace: NS }
data: { colour: blue }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: keep-a, namespace: NS }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: keep-b, namespace: NS }
"#;

fn delete(ns: &str, name: &str) -> Value {
    json!({ "cluster": "lab", "resource": "configmaps", "namespace": ns, "name": name })
}

#[tokio::test]
async fn a_held_delete_runs_once_as_the_requester_after_another_human_approves() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("approve-delete")
    })
    .await
    else {
        return;
    };
    env.apply(OBJECTS).await;
    let ns = env.ns.as_str();
    let minted = env.minted(AGENT_SA);

    let held = env.call("k8s_delete", delete(ns, "doomed")).await.unwrap();
    assert_eq!(held["status"], "pending_approval", "{held}");
    // The agent is shown the same dry-run diff as the approver.
    assert!(
        held["preview"].as_str().unwrap().contains("+++ (deleted)"),
        "{held}"
    );
    let id = held["approval_id"].as_str().unwrap().to_owned();
    // The approver reads the server's dry run: the object that would go.
    let approval = env
        .lab
        .governance
        .approvals
        .get("default", &id)
        .await
        .unwrap();
    let preview = preview_of(&approval);
    assert!(
        preview.starts_with(&format!("# delete configmaps {ns}/doomed\n")),
        "{preview}"
    );
    assert!(preview.contains("+++ (deleted)"), "{preview}");
    assert!(preview.contains("\n-data:\n"), "{preview}");
    assert_eq!(approval.tool, "k8s_delete");
    // The dry run ran under the requester's account and deleted nothing.
    assert_eq!(env.minted(AGENT_SA), minted + 1);
    // (The audit log's Metadata level does not show the body, where `dryRun` travels.)
    let dry = env.cluster_events("delete", "configmaps", "doomed");
    assert_eq!(dry.len(), 1);
    assert_eq!(
        dry[0]["user"]["username"],
        format!("system:serviceaccount:{ns}:{AGENT_SA}")
    );
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/doomed")
            .await
            .0,
        200
    );
    let credential = env.records_where("credential", "k8s_delete").await;
    assert_eq!(body(&credential[0])["credential"]["purpose"], "dry_run");
    assert_eq!(credential[0].outcome.as_deref(), Some("dry_run"));

    // Four eyes: the requester cannot approve it.
    let own = meho_gateway::govern::Actor {
        principal: agent().principal,
        tenant: "default".into(),
        role: meho_config::Role::TenantAdmin,
        origin: Origin::default(),
    };
    let err = env
        .lab
        .governance
        .decide(&own, &id, true, "mine", None)
        .await
        .unwrap_err();
    assert_eq!(err.code, "four_eyes", "{err:?}");
    // Waiting before a decision answers pending; nothing ran.
    let waiting = env
        .lab
        .gateway
        .approval_status(&agent(), &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(waiting["status"], "pending_approval");
    env.lab
        .governance
        .decide(&boss(), &id, true, "cleanup", None)
        .await
        .unwrap();
    // Another principal cannot collect it.
    let other = env
        .lab
        .gateway
        .approval_status(&Caller::agent("agent-2"), &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(other["status"], "approved");
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/doomed")
            .await
            .0,
        200
    );

    let done = env
        .lab
        .gateway
        .approval_status(&agent(), &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed", "{done}");
    assert_eq!(done["result"]["deleted"], true);
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/doomed")
            .await
            .0,
        404
    );
    assert_eq!(env.minted(AGENT_SA), minted + 2);
    // The dry run, then the one delete, both as the requester's account.
    let deletes = env.cluster_events("delete", "configmaps", "doomed");
    assert_eq!(deletes.len(), 2, "{deletes:#?}");
    let run = &deletes[1];
    assert_eq!(
        run["user"]["username"],
        format!("system:serviceaccount:{ns}:{AGENT_SA}")
    );
    assert_eq!(run["responseStatus"]["code"], 200);
    // The run's records carry the approval.
    let intent = env.records_where("intent", "k8s_delete").await;
    assert_eq!(intent.len(), 1);
    assert_eq!(intent[0].approval_id.as_deref(), Some(id.as_str()));
    assert_eq!(intent[0].principal, agent().principal);
    let consumed = env.records_where("approval", "consume").await;
    assert_eq!(consumed[0].approval_id.as_deref(), Some(id.as_str()));

    // Once.
    let err = env
        .lab
        .gateway
        .approval_status(&agent(), &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap_err();
    assert_eq!(err.code, "approval_consumed");
    let with = Caller {
        approval_id: Some(id.clone()),
        ..agent()
    };
    failed(
        env.call_as(&with, "k8s_delete", delete(ns, "doomed")).await,
        "approval_refused",
    );
    assert_eq!(env.minted(AGENT_SA), minted + 2);
    env.assert_no_token_recorded().await;
}

#[tokio::test]
async fn an_approval_authorizes_only_the_object_it_names() {
    let Some(env) = env(Spec {
        cluster: &rules(),
        ..Spec::new("approve-name")
    })
    .await
    else {
        return;
    };
    env.apply(OBJECTS).await;
    let ns = env.ns.as_str();
    let held = env.call("k8s_delete", delete(ns, "keep-a")).await.unwrap();
    let id = held["approval_id"].as_str().unwrap().to_owned();
    env.lab
        .governance
        .decide(&boss(), &id, true, "ok", None)
        .await
        .unwrap();
    let minted = env.minted(AGENT_SA);
    let with = Caller {
        approval_id: Some(id.clone()),
        ..agent()
    };
    // Another name, another propagation: another call.
    for changed in [
        delete(ns, "keep-b"),
        json!({ "cluster": "lab", "resource": "configmaps", "namespace": ns, "name": "keep-a", "propagation": "orphan" }),
    ] {
        let err = failed(
            env.call_as(&with, "k8s_delete", changed.clone()).await,
            "approval_refused",
        );
        assert_eq!(
            err.detail.unwrap()["decision"]["rule"],
            "approval:different-call",
            "{changed}"
        );
    }
    assert_eq!(env.minted(AGENT_SA), minted, "minted for a refused claim");
    for name in ["keep-a", "keep-b"] {
        let (status, _) = env
            .admin_get(&format!("/api/v1/namespaces/NS/configmaps/{name}"))
            .await;
        assert_eq!(status, 200, "{name}");
    }
    // The approval is intact: it still runs its own call.
    let done = env
        .lab
        .gateway
        .approval_status(&agent(), &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed");
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/keep-a")
            .await
            .0,
        404
    );
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/keep-b")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_change_the_server_would_refuse_is_not_held() {
    let Some(env) = env(Spec {
        // The account may delete configmaps but not secrets.
        rbac: r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: NS }
rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "delete"] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: NS }
subjects: [{ kind: ServiceAccount, name: agent, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
"#,
        cluster: &rules(),
        ..Spec::new("approve-refused")
    })
    .await
    else {
        return;
    };
    env.apply(OBJECTS).await;
    env.apply("apiVersion: v1\nkind: Secret\nmetadata: { name: db, namespace: NS }\n")
        .await;
    let ns = env.ns.as_str();
    let err = failed(
        env.call("k8s_delete", delete(ns, "never-was")).await,
        "not_found",
    );
    assert!(err.message.contains("dry run"), "{err:?}");
    assert!(err.message.contains("not held"), "{err:?}");
    let err = failed(
        env.call(
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "secrets", "namespace": ns, "name": "db" }),
        )
        .await,
        "forbidden_by_cluster",
    );
    assert!(err.message.contains(&env.sa(AGENT_SA)), "{err:?}");
    assert!(env.records_where("approval", "request").await.is_empty());
    let pending = env
        .lab
        .governance
        .approvals
        .list("default", Some(meho_approvals::Status::Pending), 100)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:#?}");
    // Each is one denial with the server's refusal.
    let denials = env.records_where("denial", "k8s_delete").await;
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[0].outcome.as_deref(), Some("not_found"));
    assert_eq!(denials[1].outcome.as_deref(), Some("forbidden_by_cluster"));
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/secrets/db").await.0,
        200
    );
}
