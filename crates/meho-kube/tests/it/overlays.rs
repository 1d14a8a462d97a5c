//! The runtime layers on a cluster's rules: a grant widens them (and reveals nothing), and an
//! approval given with "learn" lets exactly that action run again without a human.

use std::time::Duration;

use meho_core::Tier;
use meho_gateway::Caller;
use serde_json::json;

use crate::support::{AGENT_SA, Spec, agent, boss, env, failed};

#[tokio::test]
async fn a_grant_widens_the_clusters_rules_for_what_it_names() {
    let Some(env) = env(Spec {
        cluster: r#"rules = [{ verbs = ["get"], resources = ["configmaps"], namespaces = ["NS"], names = ["open"], effect = "allow" }]"#,
        ..Spec::new("overlay-grant")
    })
    .await
    else {
        return;
    };
    env.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: granted, namespace: NS }\ndata: { k: v }\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: { name: granted, namespace: NS }\nstringData: { k: hidden-value }\n",
    )
    .await;
    let get = |resource: &str| json!({ "cluster": "lab", "resource": resource, "namespace": env.ns, "name": "granted", "output": "full" });
    let before = env.minted(AGENT_SA);
    failed(env.call("k8s_get", get("configmaps")).await, "denied");
    assert_eq!(env.minted(AGENT_SA), before);

    let grant = env
        .lab
        .governance
        .create_grant(
            &boss(),
            "lab",
            &format!("^get (configmaps|secrets) {}/granted$", env.ns),
            Tier::Read,
            Duration::from_secs(600),
            "incident 42",
        )
        .await
        .unwrap();
    let shown = env.call("k8s_get", get("configmaps")).await.unwrap();
    assert_eq!(shown["object"]["data"]["k"], "v");
    // The credential record carries the whole decision: the grant that allowed it.
    let credential = env.records_where("credential", "k8s_get").await;
    assert_eq!(
        crate::support::body(&credential[0])["decision"]["grant_id"],
        grant.id.as_str()
    );
    // A granted Secret is read with its values hidden: only a rule reveals.
    let secret = env.call("k8s_get", get("secrets")).await.unwrap();
    assert_eq!(secret["object"]["data"]["k"], "<redacted: 12 bytes>");
    // Nothing else: another name, another verb.
    failed(
        env.call(
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": "granted" }),
        )
        .await,
        "denied",
    );
    assert_eq!(env.minted(AGENT_SA), before + 2);
}

#[tokio::test]
async fn an_approval_with_learn_lets_exactly_that_action_run_again() {
    let Some(env) = env(Spec {
        cluster: r#"rules = [
            { verbs = ["get"], resources = ["configmaps"], namespaces = ["NS"], effect = "allow" },
            { verbs = ["delete"], resources = ["configmaps"], namespaces = ["NS"], effect = "require_approval" },
        ]"#,
        ..Spec::new("overlay-learn")
    })
    .await
    else {
        return;
    };
    // As over MCP: the human behind the agent is the token's subject.
    let caller = Caller {
        end_user: Some(agent().principal),
        ..agent()
    };
    let object = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cycle, namespace: NS }\n";
    let delete = |name: &str| json!({ "cluster": "lab", "resource": "configmaps", "namespace": env.ns, "name": name });
    env.apply(object).await;
    let held = env
        .call_as(&caller, "k8s_delete", delete("cycle"))
        .await
        .unwrap();
    let id = held["approval_id"].as_str().unwrap().to_owned();
    let (_, waiver) = env
        .lab
        .governance
        .decide(
            &boss(),
            &id,
            true,
            "routine",
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    let waiver = waiver.unwrap();
    assert_eq!(
        waiver.command,
        format!("delete configmaps {}/cycle", env.ns)
    );
    let done = env
        .lab
        .gateway
        .approval_status(&caller, &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed", "{done}");

    // The object comes back; deleting it again needs no human.
    env.apply(object).await;
    let again = env
        .call_as(&caller, "k8s_delete", delete("cycle"))
        .await
        .unwrap();
    assert_eq!(again["deleted"], true, "{again}");
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/cycle")
            .await
            .0,
        404
    );
    let credentials = env.records_where("credential", "k8s_delete").await;
    assert_eq!(
        crate::support::body(credentials.last().unwrap())["decision"]["waiver_id"],
        waiver.id.as_str()
    );
    // Another object still does.
    env.apply(&object.replace("cycle", "other")).await;
    let held = env
        .call_as(&caller, "k8s_delete", delete("other"))
        .await
        .unwrap();
    assert_eq!(held["status"], "pending_approval");

    // A caller with no human behind it (the CLI, stdio): the learned waiver names the end user
    // its decider compares (none), so it applies to the same call again.
    let bare = agent();
    assert_eq!(bare.end_user, None);
    let solo = object.replace("cycle", "solo");
    env.apply(&solo).await;
    let held = env
        .call_as(&bare, "k8s_delete", delete("solo"))
        .await
        .unwrap();
    let id = held["approval_id"].as_str().unwrap().to_owned();
    let (_, waiver) = env
        .lab
        .governance
        .decide(
            &boss(),
            &id,
            true,
            "routine",
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert_eq!(waiver.unwrap().end_user, "");
    let done = env
        .lab
        .gateway
        .approval_status(&bare, &id, Duration::ZERO, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(done["status"], "executed", "{done}");
    env.apply(&solo).await;
    let again = env
        .call_as(&bare, "k8s_delete", delete("solo"))
        .await
        .unwrap();
    assert_eq!(
        again["deleted"], true,
        "the learned waiver applies: {again}"
    );
}
