//! Who sees and may use the cluster: `list_targets` with the caller's ServiceAccount, tenants,
//! and read-only roles.

use meho_core::Tier;
use meho_gateway::Caller;
use serde_json::json;

use crate::support::{AGENT_SA, READS, Spec, agent, env, failed};

#[tokio::test]
async fn the_cluster_is_listed_for_its_tenant_with_the_callers_service_account() {
    let Some(env) = env(Spec {
        more_accounts: &["sre"],
        cluster: &format!(
            "groups = [\"sre\", \"dev\"]\n\
             sa_bindings = [{{ groups = [\"sre\"], namespace = \"NS\", service_account = \"sre\" }}, \
             {{ namespace = \"NS\", service_account = \"{AGENT_SA}\" }}]\n\
             rules = [{READS}, {{ verbs = [\"apply\", \"delete\"], resources = [\"configmaps\"], namespaces = [\"NS\"], effect = \"allow\" }}]\n"
        ),
        ..Spec::new("targets")
    })
    .await
    else {
        return;
    };
    let ns = env.ns.as_str();
    let listed = env.call("list_targets", json!({})).await.unwrap();
    let targets = listed["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{listed}");
    assert_eq!(targets[0]["name"], "lab");
    assert_eq!(targets[0]["kind"], "kubernetes");
    assert_eq!(targets[0]["service_account"], env.sa(AGENT_SA));
    assert_eq!(targets[0]["tenant"], "default");
    let human = |groups: &[&str]| Caller {
        end_user: Some("alice".into()),
        groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
        ..agent()
    };
    let listed = env
        .call_as(&human(&["sre"]), "list_targets", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["targets"][0]["service_account"], env.sa("sre"));
    let listed = env
        .call_as(&human(&["finance"]), "list_targets", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["targets"], json!([]));

    // Another tenant sees nothing, and the cluster does not exist for it.
    let other = Caller {
        tenant: "acme".into(),
        ..agent()
    };
    let listed = env
        .call_as(&other, "list_targets", json!({}))
        .await
        .unwrap();
    assert_eq!(listed["targets"], json!([]));
    let get = json!({ "cluster": "lab", "resource": "configmaps", "namespace": ns, "name": "x" });
    failed(
        env.call_as(&other, "k8s_get", get.clone()).await,
        "unknown_target",
    );

    // A read-only role reads, and may not change anything, whatever the rules allow.
    env.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x, namespace: NS }\n")
        .await;
    let reader = Caller {
        max_tier: Tier::Read,
        ..agent()
    };
    env.call_as(&reader, "k8s_get", get).await.unwrap();
    let before = env.minted(AGENT_SA);
    let err = failed(
        env.call_as(
            &reader,
            "k8s_apply",
            json!({ "cluster": "lab", "manifest": format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: made, namespace: {ns} }}\n") }),
        )
        .await,
        "denied",
    );
    assert!(err.message.contains("read_only"), "{err:?}");
    failed(
        env.call_as(
            &reader,
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": ns, "name": "x" }),
        )
        .await,
        "denied",
    );
    assert_eq!(env.minted(AGENT_SA), before);
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/x").await.0,
        200
    );
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/made")
            .await
            .0,
        404
    );
    // A write role may apply but not delete.
    let writer = Caller {
        max_tier: Tier::Write,
        ..agent()
    };
    failed(
        env.call_as(
            &writer,
            "k8s_delete",
            json!({ "cluster": "lab", "resource": "configmaps", "namespace": ns, "name": "x" }),
        )
        .await,
        "denied",
    );
    assert_eq!(
        env.admin_get("/api/v1/namespaces/NS/configmaps/x").await.0,
        200
    );
    // The listing is audited.
    let listings = env.records_where("outcome", "list_targets").await;
    assert_eq!(listings.len(), 4);
}
