//! What every test of this binary shares: the one kube-apiserver of the process, and per test a
//! namespace of its own with its ServiceAccounts, their RBAC, a minter for them and a lab (store,
//! audit log, governance, the gateway over the connector) with cluster `lab` configured.

use meho_approvals::Approval;
use meho_audit::StoredRecord;
use meho_config::Role;
use meho_gateway::govern::{Actor, Origin};
use meho_gateway::{Caller, ToolError};
use meho_test_support::kube::KubeApiserver;
pub use meho_test_support::kube_lab::{KubeLab, SharedKube, body, cluster_toml};
use serde_json::{Value, json};

/// The ServiceAccount every test's default binding runs as.
pub const AGENT_SA: &str = "agent";

/// The cluster's name in every lab.
pub const CLUSTER: &str = "lab";

/// A test's world: the shared apiserver, the test's namespace, and its lab.
pub struct Env {
    pub shared: &'static SharedKube,
    pub ns: String,
    pub lab: KubeLab,
}

/// What a test asks of its environment.
pub struct Spec<'a> {
    /// The test's namespace (unique across the binary).
    pub ns: &'a str,
    /// ServiceAccounts in it beside [`AGENT_SA`].
    pub more_accounts: &'a [&'a str],
    /// RBAC (YAML) granted to the accounts: `NS` is replaced by the namespace. Default:
    /// [`AGENT_RBAC`].
    pub rbac: &'a str,
    /// Lines of the cluster table after the connection (`rules`, `sa_bindings`, `tenant`, …);
    /// `NS` is replaced by the namespace. Without `sa_bindings`, the default binding is
    /// `NS/agent`.
    pub cluster: &'a str,
}

/// What [`AGENT_SA`] may do in its namespace by default: everything on the resources the tests
/// use, pod logs included.
pub const AGENT_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: NS }
rules:
  - apiGroups: [""]
    resources: ["pods", "pods/log", "configmaps", "secrets", "services"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: NS }
subjects: [{ kind: ServiceAccount, name: agent, namespace: NS }]
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
"#;

/// Rules that allow every read in the namespace (and nothing else).
pub const READS: &str = r#"{ verbs = ["get", "list", "logs"], resources = ["*"], namespaces = ["NS"], effect = "allow" }"#;

impl Spec<'_> {
    pub fn new(ns: &str) -> Spec<'_> {
        Spec {
            ns,
            more_accounts: &[],
            rbac: AGENT_RBAC,
            cluster: "",
        }
    }
}

/// The environment of `spec`, or `None` (the test returns) when the apiserver is missing.
pub async fn env(spec: Spec<'_>) -> Option<Env> {
    let shared = SharedKube::get().await?;
    let ns = spec.ns.to_owned();
    shared
        .apply(
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns } })
                .to_string(),
        )
        .await;
    let dir = tempfile::Builder::new()
        .prefix("meho-kube-it-")
        .tempdir()
        .unwrap();
    let mut accounts = vec![(ns.as_str(), AGENT_SA)];
    accounts.extend(spec.more_accounts.iter().map(|sa| (ns.as_str(), *sa)));
    let minter = shared
        .minter(&accounts, dir.path().join("minter.token"))
        .await;
    if !spec.rbac.is_empty() {
        shared.apply(spec.rbac.replace("NS", &ns)).await;
    }
    let mut extra = spec.cluster.replace("NS", &ns);
    if !extra.contains("sa_bindings") {
        extra.push_str(&format!(
            "\nsa_bindings = [{{ namespace = \"{ns}\", service_account = \"{AGENT_SA}\" }}]\n"
        ));
    }
    let toml = cluster_toml(CLUSTER, shared.kube(), &minter, &extra);
    let lab = KubeLab::new(dir, &toml).await;
    Some(Env { shared, ns, lab })
}

impl Env {
    pub fn kube(&self) -> &'static KubeApiserver {
        self.shared.kube()
    }

    /// `namespace/name` of a ServiceAccount of the test's namespace.
    pub fn sa(&self, name: &str) -> String {
        format!("{}/{name}", self.ns)
    }

    /// TokenRequests the apiserver served for `namespace/sa` of this test.
    pub fn minted(&self, sa: &str) -> usize {
        self.kube().token_requests(Some(&self.sa(sa)))
    }

    /// A call as the default agent.
    pub async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.lab.call_as(&agent(), tool, args).await
    }

    pub async fn call_as(&self, who: &Caller, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.lab.call_as(who, tool, args).await
    }

    /// Applies `manifest` as the admin (`NS` is the test's namespace).
    pub async fn apply(&self, manifest: &str) {
        self.shared.apply(manifest.replace("NS", &self.ns)).await;
    }

    /// The object at `path` (`NS` replaced) as the admin: its status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        self.shared
            .admin("GET", &path.replace("NS", &self.ns), None)
            .await
    }

    /// Every record of the lab.
    pub async fn records(&self) -> Vec<StoredRecord> {
        self.lab.records().await
    }

    /// Records of `kind` and `action`.
    pub async fn records_where(&self, kind: &str, action: &str) -> Vec<StoredRecord> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.kind == kind && r.action.as_deref() == Some(action))
            .collect()
    }

    /// The apiserver's audit events (ResponseComplete) of `verb` on `resource` in this test's
    /// namespace, named `name`.
    pub fn cluster_events(&self, verb: &str, resource: &str, name: &str) -> Vec<Value> {
        self.kube()
            .audit_events()
            .into_iter()
            .filter(|e| {
                e["stage"] == "ResponseComplete"
                    && e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["objectRef"]["namespace"] == self.ns.as_str()
                    && e["objectRef"]["name"] == name
            })
            .collect()
    }

    /// Asserts no record of the lab carries a token: no JWT, and none the redactor caught.
    pub async fn assert_no_token_recorded(&self) {
        for record in self.records().await {
            let text = serde_json::to_string(&record).unwrap();
            for needle in [
                "eyJ",
                "REDACTED:jwt",
                "bearer [REDACTED]",
                "Bearer [REDACTED]",
            ] {
                assert!(
                    !text.contains(needle),
                    "a record carries `{needle}`: {text}"
                );
            }
        }
    }
}

/// The agent every test calls as: no human, default tenant, every tier.
pub fn agent() -> Caller {
    Caller::agent("agent-1")
}

/// Someone who may approve: a tenant admin other than the requester.
pub fn boss() -> Actor {
    Actor {
        principal: "boss".into(),
        tenant: "default".into(),
        role: Role::TenantAdmin,
        origin: Origin::default(),
    }
}

/// The server's dry-run preview a held call carries, as the approver reads it.
/// The preview an approver sees: the server's dry-run diff, on the approval.
pub fn preview_of(approval: &Approval) -> String {
    approval.preview.clone().unwrap_or_default()
}

/// The `rows` of a compact answer as `(column → cell)` maps.
pub fn rows(answer: &Value) -> Vec<serde_json::Map<String, Value>> {
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("not a compact answer: {answer}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            columns
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// The names in a compact answer.
pub fn names(answer: &Value) -> Vec<String> {
    rows(answer)
        .iter()
        .map(|r| r["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts `result` failed with `code`, and returns the error.
#[track_caller]
pub fn failed(result: Result<Value, ToolError>, code: &str) -> ToolError {
    match result {
        Ok(value) => panic!("expected `{code}`, the call answered {value}"),
        Err(err) => {
            assert_eq!(err.code, code, "{err:?}");
            err
        }
    }
}
