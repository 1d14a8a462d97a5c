//! The Kubernetes tools end to end: `meho serve` with a `[clusters]` table on a real
//! kube-apiserver (the test peer under `tests/peers/kube-apiserver`), driven by the official
//! Python MCP SDK over Streamable HTTP with an IdP token.

use serde_json::{Value, json};

use meho_test_support::kube::KubeApiserver;

use crate::mcp::{Lab, call_ok, call_refused, py_http, require_python, serve_on_a_port};
use crate::peers::Idp;

/// What the agent's ServiceAccount may do in namespace `team` (layer B): read pods and
/// configmaps, apply configmaps. Nothing else.
pub(crate) const AGENT_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: team }
rules:
  - apiGroups: [""]
    resources: [pods, configmaps]
    verbs: [get, list]
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: team }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
subjects:
  - { kind: ServiceAccount, name: agent, namespace: team }
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: team, labels: { app: web } }
spec:
  nodeName: node-1
  containers: [{ name: web, image: nginx }]
"#;

/// `[auth]` on the IdP, tenancy on, and cluster `lab` (tenant `a`, group `ops`) on `api`, whose
/// rules allow reading pods and configmaps and applying configmaps in namespace `team`.
pub(crate) fn config(
    lab: &Lab,
    api: &KubeApiserver,
    minter: &std::path::Path,
    issuer: &str,
    resource: &str,
) -> String {
    format!(
        "{}\n[auth]\nissuer = \"{issuer}\"\naudience = \"{resource}\"\ngroups_claim = \"groups\"\n\n\
         [tenancy]\nenabled = true\n\n\
         [clusters.lab]\napi_server = \"{}\"\nca_cert = \"{}\"\nminter_token_file = \"{}\"\n\
         tenant = \"a\"\ngroups = [\"ops\"]\n\
         sa_bindings = [{{ namespace = \"team\", service_account = \"agent\" }}]\n\
         rules = [\n\
           {{ verbs = [\"get\", \"list\"], resources = [\"pods\", \"configmaps\"], namespaces = [\"team\"], effect = \"allow\" }},\n\
           {{ verbs = [\"apply\"], resources = [\"configmaps\"], namespaces = [\"team\"], effect = \"allow\" }},\n\
         ]\n",
        lab.ca_section(),
        api.url(),
        api.ca_pem_path().display(),
        minter.display(),
    )
}

#[test]
fn python_sdk_lists_pods_and_applies_a_configmap_on_a_real_apiserver() {
    if !require_python() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(api) = runtime.block_on(KubeApiserver::start()) else {
        return;
    };
    let Some(idp) = Idp::start("http://127.0.0.1:8080/mcp") else {
        return;
    };
    let minter = runtime.block_on(async {
        let minter = api.minter(&[("team", "agent")]).await;
        api.apply(AGENT_RBAC).await;
        api.node("node-1").await;
        api.apply(POD).await;
        minter
    });
    let lab = Lab::without_sshd();
    let served = serve_on_a_port(
        &lab,
        |resource| config(&lab, &api, &minter, &idp.issuer, resource),
        &[],
    );
    let token = idp.token("tenant-a-admin", &served.url, "mcp:tools");

    // The tool list: the cluster's tools (no host is reachable, so no SSH tools).
    let (code, out) = py_http(&served.url, Some(&token), &["--list-tools"]);
    assert_eq!(code, 0, "{out}\nserve:\n{}", served.daemon.log_text());
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for tool in [
        "k8s_get",
        "k8s_list",
        "k8s_logs",
        "k8s_apply",
        "k8s_delete",
        "list_targets",
    ] {
        assert!(tools.contains(&tool), "{tool} missing: {tools:?}");
    }
    assert!(!tools.contains(&"ssh_execute"), "{tools:?}");
    let targets = call_ok(&served.url, &token, "list_targets", &json!({}));
    let lab_target = &targets["targets"][0];
    assert_eq!(lab_target["name"], "lab", "{targets}");
    assert_eq!(lab_target["kind"], "kubernetes");
    assert_eq!(lab_target["service_account"], "team/agent");

    let before = api.token_requests(Some("team/agent"));
    // k8s_list: kubectl's columns, from the server's Table.
    let listed = call_ok(
        &served.url,
        &token,
        "k8s_list",
        &json!({ "cluster": "lab", "resource": "pods", "namespace": "team" }),
    );
    assert_eq!(listed["columns"][0], "Name", "{listed}");
    assert!(
        listed["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "Status"),
        "{listed}"
    );
    assert_eq!(listed["rows"][0][0], "web-1", "{listed}");

    // k8s_apply: server-side apply as field manager `meho`.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: team\ndata:\n  mode: blue\n";
    let applied = call_ok(
        &served.url,
        &token,
        "k8s_apply",
        &json!({ "cluster": "lab", "manifest": manifest }),
    );
    assert_eq!(
        applied["applied"][0]["action"], "apply configmaps team/settings",
        "{applied}"
    );
    let live =
        runtime.block_on(api.admin_ok("GET", "/api/v1/namespaces/team/configmaps/settings", None));
    assert_eq!(live["data"]["mode"], "blue");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["meho"], "{live}");
    // One token per call, each minted for the bound ServiceAccount.
    assert_eq!(api.token_requests(Some("team/agent")), before + 2);

    // Layer A: deleting is not in the rules; refused before anything is minted.
    let (code, text) = call_refused(
        &served.url,
        &token,
        "k8s_delete",
        &json!({ "cluster": "lab", "resource": "configmaps", "namespace": "team", "name": "settings" }),
    );
    assert_eq!(code, "denied", "{text}");
    assert_eq!(api.token_requests(Some("team/agent")), before + 2);

    // The records: the manifest's hash, never its text; the token's serial on the outcome.
    let intents = lab.audit(&["--tenant", "a", "--action", "k8s_apply", "--kind", "intent"]);
    assert_eq!(intents.len(), 1, "{intents:?}");
    let arguments = &intents[0]["body"]["arguments"];
    assert_eq!(
        arguments["objects"],
        json!(["apply configmaps team/settings"])
    );
    assert_eq!(arguments["manifest_sha256"].as_str().unwrap().len(), 64);
    assert!(!intents[0].to_string().contains("blue"), "{}", intents[0]);
    let outcomes = lab.audit(&[
        "--tenant",
        "a",
        "--action",
        "k8s_apply",
        "--kind",
        "outcome",
    ]);
    let serial = outcomes[0]["body"]["credential_serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!serial.is_empty());
    let issued = lab.audit(&[
        "--tenant",
        "a",
        "--kind",
        "credential",
        "--action",
        "k8s_apply",
    ]);
    assert_eq!(issued[0]["body"]["credential"]["serial"], serial.as_str());
    assert_eq!(
        issued[0]["body"]["credential"]["service_account"],
        "team/agent"
    );
    for record in lab.audit(&["--tenant", "a"]) {
        assert!(
            !record.to_string().contains("eyJ"),
            "a token in the log: {record}"
        );
    }
    served.stop();
    lab.assert_audit_verifies();
}
