//! The Kubernetes tools as the pipeline's typed stages.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::AsyncReadExt as _;
use kube::core::Request as KubeRequest;
use kube::core::params::{
    DeleteParams, GetParams, ListParams, Patch, PatchParams, PropagationPolicy,
};
use kube::core::subresource::LogParams;
use meho_approvals::{Grants, Learnable};
use meho_audit::{AuditLog, CallOutcome, IntentReceipt, NewRecord, RecordKind};
use meho_core::{Decision, Tier};
use meho_gateway::{
    Annotations, ApprovalClaim, Authorized, BoxFuture, CallContext, Caller, Connector, ErrorCode,
    Failed, Output, Plan, Refusal, Target, ToolError, ToolSpec, parse_arguments,
};
use meho_policy::kube::{KubeAction, KubeVerb};
use meho_policy::{Decided, Overlay};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::cluster::{ClusterRuntime, Minted, Resource};
use crate::render;

/// `k8s_get`.
pub const GET: &str = "k8s_get";
/// `k8s_list`.
pub const LIST: &str = "k8s_list";
/// `k8s_logs`.
pub const LOGS: &str = "k8s_logs";
/// `k8s_apply`.
pub const APPLY: &str = "k8s_apply";
/// `k8s_delete`.
pub const DELETE: &str = "k8s_delete";

/// A list answers this many items when the call names no `limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// The most items one list call may ask for.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// `k8s_logs` answers at most this many bytes (then `truncated`).
pub const LOG_CAP_BYTES: usize = 256 * 1024;
/// `tail_lines` when the call names none.
pub const DEFAULT_TAIL_LINES: i64 = 200;
/// The largest manifest `k8s_apply` reads.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// The most objects one `k8s_apply` may hold.
pub const MAX_OBJECTS: usize = 50;
/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "meho";

/// The Table format kubectl asks for: the API server computes kubectl's columns.
const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json";

// --- arguments ------------------------------------------------------------------------------

/// How much of an object to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A table: the columns kubectl prints (name, status, age, …). The default.
    #[default]
    Compact,
    /// Whole objects, `managedFields` removed, Secret values as sizes.
    Full,
}

/// `k8s_get` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// The cluster (see `list_targets`).
    pub cluster: String,
    /// The resource: plural (`pods`), kind (`Pod`) or `<plural>.<group>` (`deployments.apps`).
    pub resource: String,
    /// The namespace; required for namespaced resources, absent for cluster-scoped ones.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// `compact` (default) or `full`.
    #[serde(default)]
    pub output: Format,
}

/// `k8s_list` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// The cluster.
    pub cluster: String,
    /// The resource (as for `k8s_get`).
    pub resource: String,
    /// The namespace; absent lists a namespaced resource across every namespace.
    pub namespace: Option<String>,
    /// A label selector, e.g. `app=web,tier!=cache`.
    pub label_selector: Option<String>,
    /// A field selector, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// Items per page (default 100, at most 1000).
    pub limit: Option<u32>,
    /// The `continue` token of the previous page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// `compact` (default) or `full`.
    #[serde(default)]
    pub output: Format,
}

/// `k8s_logs` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// The cluster.
    pub cluster: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container; needed when the pod has several.
    pub container: Option<String>,
    /// Lines from the end (default 200).
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// The previous (terminated) instance of the container.
    #[serde(default)]
    pub previous: bool,
}

/// `k8s_apply` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// The cluster.
    pub cluster: String,
    /// YAML (one or more documents) or JSON (an object, an array, or a `List`). Every object
    /// needs `apiVersion`, `kind` and `metadata.name`; a namespaced object without
    /// `metadata.namespace` goes to `default`.
    pub manifest: String,
}

/// How the dependents of a deleted object go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// Delete now, dependents in the background (the API server's default for most kinds).
    Background,
    /// Delete dependents first.
    Foreground,
    /// Leave dependents.
    Orphan,
}

/// `k8s_delete` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// The cluster.
    pub cluster: String,
    /// The resource (as for `k8s_get`).
    pub resource: String,
    /// The namespace; required for namespaced resources.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// `background`, `foreground` or `orphan`; absent: the API server's default.
    pub propagation: Option<Propagation>,
}

// --- the plan -------------------------------------------------------------------------------

/// The typed action of a cluster call. Its JSON is what an approval binds to: every field that
/// changes what runs is in it (the canonical strings, the manifest's sha256, the options).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verb", rename_all = "lowercase")]
pub enum KubeCall {
    /// `k8s_get`.
    Get {
        /// The canonical action.
        action: String,
        /// `compact` or `full`.
        output: Format,
    },
    /// `k8s_list`.
    List {
        /// The canonical action.
        action: String,
        /// The label selector.
        label_selector: Option<String>,
        /// The field selector.
        field_selector: Option<String>,
        /// Items per page.
        limit: u32,
        /// The page token.
        #[serde(rename = "continue")]
        continue_token: Option<String>,
        /// `compact` or `full`.
        output: Format,
    },
    /// `k8s_logs`.
    Logs {
        /// The canonical action (`logs pods <ns>/<pod>`).
        action: String,
        /// The container.
        container: Option<String>,
        /// Lines from the end.
        tail_lines: i64,
        /// Only newer lines.
        since_seconds: Option<i64>,
        /// The previous instance.
        previous: bool,
    },
    /// `k8s_apply`.
    Apply {
        /// The canonical action of each object, in manifest order.
        objects: Vec<String>,
        /// sha256 of the manifest as sent.
        manifest_sha256: String,
    },
    /// `k8s_delete`.
    Delete {
        /// The canonical action.
        action: String,
        /// The propagation policy.
        propagation: Option<Propagation>,
    },
}

/// One object a call touches.
#[derive(Debug, Clone)]
pub struct Object {
    /// What it does, decided on its own.
    pub action: KubeAction,
    /// The resource as discovery found it.
    resource: Resource,
    /// The object to apply (namespace filled in), for `k8s_apply`.
    body: Option<Value>,
}

impl Object {
    /// Whether the object is of the core `secrets` resource (what it reads is Secret values,
    /// whether or not each object says so).
    fn is_secrets(&self) -> bool {
        self.resource.api.group.is_empty() && self.resource.api.plural == "secrets"
    }
}

/// A planned call: the action the approval binds to, and what execution needs.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The bound action.
    #[serde(flatten)]
    pub call: KubeCall,
    /// The objects, in order (one for every tool but `k8s_apply`).
    #[serde(skip)]
    pub objects: Vec<Object>,
}

impl Planned {
    /// A call on one object (every tool but `k8s_apply`).
    fn one(call: KubeCall, object: Object) -> Self {
        Planned {
            call,
            objects: vec![object],
        }
    }
}

// --- the connector --------------------------------------------------------------------------

/// The Kubernetes connector: clusters by name.
#[derive(Debug)]
pub struct KubeConnector {
    clusters: BTreeMap<String, Arc<ClusterRuntime>>,
    grants: Option<Grants>,
    approvals: Option<meho_approvals::Approvals>,
    audit: Arc<AuditLog>,
}

impl KubeConnector {
    /// A connector over `clusters` that audits its credentials into `audit`. Reads each
    /// cluster's CA bundle now.
    pub fn new(
        clusters: impl IntoIterator<Item = meho_config::Cluster>,
        audit: Arc<AuditLog>,
    ) -> Result<Self, String> {
        let clusters = clusters
            .into_iter()
            .map(|c| Ok((c.name.clone(), Arc::new(ClusterRuntime::new(c)?))))
            .collect::<Result<_, String>>()?;
        Ok(KubeConnector {
            clusters,
            grants: None,
            approvals: None,
            audit,
        })
    }

    /// Reads grants and waivers and redeems approvals from the store (the server's governance).
    #[must_use]
    pub fn with_store(mut self, approvals: meho_approvals::Approvals, grants: Grants) -> Self {
        self.approvals = Some(approvals);
        self.grants = Some(grants);
        self
    }

    /// Whether any cluster is configured.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// The cluster `name` as `caller` may use it: another tenant's cluster does not exist for
    /// it; `allowed_callers` and groups apply as for hosts.
    fn cluster(&self, caller: &Caller, name: &str) -> Result<&Arc<ClusterRuntime>, ToolError> {
        let cluster = self
            .clusters
            .get(name)
            .filter(|c| c.config.tenant == caller.tenant)
            .ok_or_else(|| {
                ToolError::new(
                    ErrorCode::UnknownTarget,
                    format!("no cluster `{name}` (see list_targets)"),
                )
            })?;
        access(&cluster.config, caller)?;
        Ok(cluster)
    }

    /// The grants and waivers of `cluster` (only ever widen: when the store cannot be read the
    /// decision goes on without them and says so).
    async fn overlay(
        &self,
        tenant: &str,
        cluster: &str,
    ) -> (
        Vec<meho_policy::Grant>,
        Vec<meho_policy::Waiver>,
        Option<String>,
    ) {
        let Some(grants) = &self.grants else {
            return (Vec::new(), Vec::new(), None);
        };
        grants.overlay_or_baseline(tenant, cluster).await
    }

    /// The decision for every object of a call, combined: the first refusal wins; else the
    /// first that needs approval holds the whole call; the tier is the highest.
    async fn decide(
        &self,
        caller: &Caller,
        cluster: &ClusterRuntime,
        objects: &[Object],
    ) -> Decided {
        let policy = &cluster.config.policy;
        let end_user = caller.end_user.as_deref().unwrap_or("");
        let now = unix_now();
        let decide_all = |overlay: Overlay<'_>| {
            objects
                .iter()
                .map(|o| {
                    policy
                        .decide(&o.action, &caller.principal, end_user, now, overlay)
                        .decision
                })
                .collect::<Vec<_>>()
        };
        let mut decisions = decide_all(Overlay::default());
        let mut warning = None;
        if decisions.iter().any(|d| !d.allows()) {
            let (grants, waivers, overlay_warning) =
                self.overlay(&caller.tenant, &cluster.config.name).await;
            decisions = decide_all(Overlay {
                grants: &grants,
                waivers: &waivers,
            });
            warning = overlay_warning;
        }
        let mut decision = combine(objects, decisions);
        decision.warnings.extend(warning);
        decision.cap_tier(caller.max_tier);
        Decided::from(decision)
    }

    /// Audits a minted credential: the one record that says a token exists, with its serial
    /// (never the token).
    async fn audit_credential(
        &self,
        call: CallContext<'_>,
        plan: &Plan<Planned>,
        decided: &Decided,
        minted: &Minted,
        purpose: &str,
        ttl: u32,
    ) -> Result<(), ToolError> {
        let record = NewRecord {
            target: Some(plan.target.clone()),
            action: Some(plan.tool.clone()),
            outcome: Some(
                if purpose == "dry_run" {
                    "dry_run"
                } else {
                    "issued"
                }
                .to_owned(),
            ),
            approval_id: decided.decision.approval_id.clone(),
            call_id: Some(call.call_id.to_owned()),
            body: json!({
                "decision": decided,
                "credential": {
                    "kind": "serviceaccount_token",
                    "serial": minted.serial,
                    "service_account": minted.service_account,
                    "expires_at": minted.expires_at,
                    "ttl_seconds": ttl,
                    "purpose": purpose,
                },
            }),
            ..NewRecord::new(
                &call.caller.tenant,
                RecordKind::Credential,
                &call.caller.principal,
            )
        };
        self.audit.append(record).await.map(|_| ()).map_err(|err| {
            ToolError::internal(format!(
                "the audit log is unavailable, so no token was used: {err}"
            ))
        })
    }

    async fn plan_call(
        &self,
        call: CallContext<'_>,
        tool: &str,
        arguments: &Value,
    ) -> Result<Plan<Planned>, ToolError> {
        let caller = call.caller;
        let (cluster_name, planned, shown) = match tool {
            GET => {
                let args: GetArgs = parse_arguments(tool, arguments)?;
                let cluster = self.cluster(caller, &args.cluster)?;
                let object = one(
                    cluster,
                    KubeVerb::Get,
                    &args.resource,
                    args.namespace.as_deref(),
                    Some(&args.name),
                )
                .await?;
                let call = KubeCall::Get {
                    action: object.action.canonical(),
                    output: args.output,
                };
                (args.cluster, Planned::one(call, object), None)
            }
            LIST => {
                let args: ListArgs = parse_arguments(tool, arguments)?;
                let cluster = self.cluster(caller, &args.cluster)?;
                let limit = args.limit.unwrap_or(DEFAULT_LIST_LIMIT);
                if limit == 0 || limit > MAX_LIST_LIMIT {
                    return Err(ToolError::invalid(format!(
                        "{tool}: limit must be 1..={MAX_LIST_LIMIT}"
                    )));
                }
                for (field, value) in [
                    ("label_selector", &args.label_selector),
                    ("field_selector", &args.field_selector),
                    ("continue", &args.continue_token),
                ] {
                    if value
                        .as_deref()
                        .is_some_and(|v| v.chars().any(char::is_control))
                    {
                        return Err(ToolError::invalid(format!(
                            "{tool}: {field} holds a control character"
                        )));
                    }
                }
                let object = one(
                    cluster,
                    KubeVerb::List,
                    &args.resource,
                    args.namespace.as_deref(),
                    None,
                )
                .await?;
                let call = KubeCall::List {
                    action: object.action.canonical(),
                    label_selector: args.label_selector,
                    field_selector: args.field_selector,
                    limit,
                    continue_token: args.continue_token,
                    output: args.output,
                };
                (args.cluster, Planned::one(call, object), None)
            }
            LOGS => {
                let args: LogsArgs = parse_arguments(tool, arguments)?;
                let cluster = self.cluster(caller, &args.cluster)?;
                let tail_lines = args.tail_lines.unwrap_or(DEFAULT_TAIL_LINES);
                if tail_lines < 1 || args.since_seconds.is_some_and(|s| s < 1) {
                    return Err(ToolError::invalid(format!(
                        "{tool}: tail_lines and since_seconds must be positive"
                    )));
                }
                if let Some(container) = &args.container
                    && !meho_policy::kube::is_dns_label(container)
                {
                    return Err(ToolError::invalid(format!(
                        "{tool}: container `{}` is not a valid container name",
                        meho_core::display::escape(container)
                    )));
                }
                let object = one(
                    cluster,
                    KubeVerb::Logs,
                    "pods",
                    Some(&args.namespace),
                    Some(&args.pod),
                )
                .await?;
                let call = KubeCall::Logs {
                    action: object.action.canonical(),
                    container: args.container,
                    tail_lines,
                    since_seconds: args.since_seconds,
                    previous: args.previous,
                };
                (args.cluster, Planned::one(call, object), None)
            }
            APPLY => {
                let args: ApplyArgs = parse_arguments(tool, arguments)?;
                let cluster = self.cluster(caller, &args.cluster)?;
                let objects = manifest_objects(cluster, &args.manifest).await?;
                let manifest_sha256 = hex::encode(Sha256::digest(args.manifest.as_bytes()));
                let call = KubeCall::Apply {
                    objects: objects.iter().map(|o| o.action.canonical()).collect(),
                    manifest_sha256: manifest_sha256.clone(),
                };
                // Only the manifest's hash and the objects' names reach the records.
                let shown = json!({
                    "cluster": args.cluster,
                    "objects": objects.iter().map(|o| o.action.canonical()).collect::<Vec<_>>(),
                    "manifest_sha256": manifest_sha256,
                    "manifest_bytes": args.manifest.len(),
                });
                (args.cluster, Planned { call, objects }, Some(shown))
            }
            DELETE => {
                let args: DeleteArgs = parse_arguments(tool, arguments)?;
                let cluster = self.cluster(caller, &args.cluster)?;
                let object = one(
                    cluster,
                    KubeVerb::Delete,
                    &args.resource,
                    args.namespace.as_deref(),
                    Some(&args.name),
                )
                .await?;
                let call = KubeCall::Delete {
                    action: object.action.canonical(),
                    propagation: args.propagation,
                };
                (args.cluster, Planned::one(call, object), None)
            }
            other => {
                return Err(ToolError::new(
                    ErrorCode::UnknownTool,
                    format!("no tool named `{other}`"),
                ));
            }
        };
        let min_tier = planned
            .objects
            .iter()
            .map(|o| o.action.verb().tier())
            .max()
            .unwrap_or(Tier::Read);
        let canonical: Vec<String> = planned
            .objects
            .iter()
            .map(|o| o.action.canonical())
            .collect();
        let summary = format!("{tool} on {cluster_name}: {}", canonical.join("; "));
        let learnable = match &planned.call {
            KubeCall::Delete { action, .. } => Some(Learnable {
                end_user: None,
                command: action.clone(),
                sudo: false,
                sudo_user: None,
            }),
            _ => None,
        };
        let arguments_shown = shown.unwrap_or_else(|| {
            let mut shown = arguments.clone();
            if let Some(object) = shown.as_object_mut() {
                object.insert("action".into(), json!(canonical.first()));
            }
            shown
        });
        Ok(Plan {
            tool: tool.to_owned(),
            target: cluster_name,
            action: planned,
            summary,
            min_tier,
            learnable,
            session_id: None,
            arguments: arguments_shown,
            request: arguments.clone(),
            preview: false,
        })
    }

    async fn authorize_call(
        &self,
        call: CallContext<'_>,
        plan: &Plan<Planned>,
        approval: Option<&ApprovalClaim>,
    ) -> Result<Authorized<Minted>, Refusal> {
        let caller = call.caller;
        let cluster = self.cluster(caller, &plan.target)?;
        let binding = cluster
            .config
            .binding_for(caller.groups.as_deref())
            .ok_or_else(|| {
                ToolError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "cluster `{}` binds no ServiceAccount to your groups (sa_bindings)",
                        plan.target
                    ),
                )
            })?
            .clone();
        let decided = self.decide(caller, cluster, &plan.action.objects).await;
        let decided = meho_gateway::redeem::consume_claim(
            self.approvals.as_ref(),
            approval,
            &plan.binding(caller),
            decided,
        )
        .await?;
        if decided.decision.refuses() {
            return Err(Refusal::Decided {
                decision: decided,
                runs: None,
                preview: None,
            });
        }
        let ttl = cluster.config.token_ttl_seconds;
        if decided.decision.needs_approval() {
            // A held change carries the server's dry run of it: the approver sees what would
            // change, and a change the server would refuse is not held at all.
            let preview = match &plan.action.call {
                KubeCall::Apply { .. } | KubeCall::Delete { .. } => {
                    let minted = cluster.mint(&binding).await?;
                    self.audit_credential(call, plan, &decided, &minted, "dry_run", ttl)
                        .await?;
                    let client = cluster.client_for(&minted)?;
                    Some(preview(&client, cluster, plan, &minted).await?)
                }
                _ => None,
            };
            return Err(Refusal::Decided {
                decision: decided,
                runs: None,
                preview,
            });
        }
        let minted = cluster.mint(&binding).await?;
        self.audit_credential(call, plan, &decided, &minted, "call", ttl)
            .await?;
        Ok(Authorized {
            decision: decided,
            serial: Some(minted.serial.clone()),
            credential: Some(minted),
            runs: None,
        })
    }

    async fn execute_call(
        &self,
        call: CallContext<'_>,
        plan: &Plan<Planned>,
        authorized: Authorized<Minted>,
    ) -> Result<Output, Failed> {
        let serial = authorized.serial.clone();
        let fail = |error: ToolError| Failed::new(error, serial.clone());
        let cluster = self.cluster(call.caller, &plan.target).map_err(fail)?;
        let Some(minted) = authorized.credential else {
            return Err(fail(ToolError::internal("no credential was minted")));
        };
        let client = cluster.client_for(&minted).map_err(fail)?;
        let who = format!("ServiceAccount `{}`", minted.service_account);
        let api_err = |err: kube::Error| crate::api_error(&plan.target, &who, err);
        let values = |object: &Object| {
            if cluster
                .config
                .policy
                .reveals(&object.action, &authorized.decision.decision)
            {
                render::Values::Reveal
            } else {
                render::Values::Sizes
            }
        };
        let mut notes = Map::new();
        let value = match (&plan.action.call, plan.action.objects.as_slice()) {
            (KubeCall::Get { output, .. }, [object]) => {
                let request = request_of(object).map_err(fail)?;
                let name = object.action.name().unwrap_or_default();
                let mut http = request
                    .get(name, &GetParams::default())
                    .map_err(|e| fail(ToolError::internal(e.to_string())))?;
                if *output == Format::Compact {
                    accept_table(&mut http);
                }
                let mut answer: Value =
                    client.request(http).await.map_err(api_err).map_err(fail)?;
                if *output == Format::Compact
                    && answer.get("kind").and_then(Value::as_str) == Some("Table")
                {
                    render::compact(&answer, false)
                } else {
                    render::clean(&mut answer, object.is_secrets(), values(object));
                    json!({ "object": answer })
                }
            }
            (
                KubeCall::List {
                    label_selector,
                    field_selector,
                    limit,
                    continue_token,
                    output,
                    ..
                },
                [object],
            ) => {
                let request = request_of(object).map_err(fail)?;
                let params = ListParams {
                    label_selector: label_selector.clone(),
                    field_selector: field_selector.clone(),
                    limit: Some(*limit),
                    continue_token: continue_token.clone(),
                    ..ListParams::default()
                };
                let mut http = request
                    .list(&params)
                    .map_err(|e| fail(ToolError::invalid(e.to_string())))?;
                if *output == Format::Compact {
                    accept_table(&mut http);
                }
                let mut answer: Value =
                    client.request(http).await.map_err(api_err).map_err(fail)?;
                let across = object.resource.namespaced && object.action.namespace().is_none();
                let value = if *output == Format::Compact
                    && answer.get("kind").and_then(Value::as_str) == Some("Table")
                {
                    render::compact(&answer, across)
                } else {
                    render::clean(&mut answer, object.is_secrets(), values(object));
                    render::full_list(&answer)
                };
                let count = value
                    .get("rows")
                    .or_else(|| value.get("items"))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                notes.insert("items".into(), json!(count));
                value
            }
            (
                KubeCall::Logs {
                    container,
                    tail_lines,
                    since_seconds,
                    previous,
                    ..
                },
                [object],
            ) => {
                let request = request_of(object).map_err(fail)?;
                let params = LogParams {
                    container: container.clone(),
                    tail_lines: Some(*tail_lines),
                    since_seconds: *since_seconds,
                    previous: *previous,
                    limit_bytes: Some(i64::try_from(LOG_CAP_BYTES + 1).unwrap_or(i64::MAX)),
                    ..LogParams::default()
                };
                let http = request
                    .logs(object.action.name().unwrap_or_default(), &params)
                    .map_err(|e| fail(ToolError::invalid(e.to_string())))?;
                // Bytes, not text: the cap may cut a character in two, and a log may hold
                // bytes that are not UTF-8.
                let mut bytes = Vec::new();
                client
                    .request_stream(http)
                    .await
                    .map_err(api_err)
                    .map_err(fail)?
                    .take(u64::try_from(LOG_CAP_BYTES + 1).unwrap_or(u64::MAX))
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| {
                        fail(ToolError::new(
                            ErrorCode::Unreachable,
                            format!("cluster `{}`: reading the log: {e}", plan.target),
                        ))
                    })?;
                let truncated = bytes.len() > LOG_CAP_BYTES;
                bytes.truncate(LOG_CAP_BYTES);
                let log = render::log_text(&bytes, truncated);
                json!({ "log": log, "truncated": truncated, "bytes": log.len() })
            }
            (KubeCall::Apply { .. }, objects) => {
                let mut applied = Vec::new();
                for object in objects {
                    match apply_one(&client, object, false).await {
                        Ok(answer) => applied.push(json!({
                            "action": object.action.canonical(),
                            "uid": answer.pointer("/metadata/uid"),
                            "resource_version": answer.pointer("/metadata/resourceVersion"),
                            "generation": answer.pointer("/metadata/generation"),
                        })),
                        Err(err) => {
                            let mut error = api_err(err);
                            error.message = format!(
                                "{} failed ({} of {} applied before it): {}",
                                object.action.canonical(),
                                applied.len(),
                                objects.len(),
                                error.message
                            );
                            let error = error.with_detail(json!({ "applied": applied }));
                            return Err(fail(error));
                        }
                    }
                }
                json!({ "applied": applied, "field_manager": FIELD_MANAGER })
            }
            (KubeCall::Delete { propagation, .. }, [object]) => {
                let params = DeleteParams {
                    propagation_policy: propagation.map(propagation_policy),
                    ..DeleteParams::default()
                };
                delete_one(&client, object, &params)
                    .await
                    .map_err(api_err)
                    .map_err(fail)?;
                json!({
                    "action": object.action.canonical(),
                    "deleted": true,
                    "propagation": propagation,
                })
            }
            _ => {
                return Err(fail(ToolError::internal(
                    "the plan does not match its tool",
                )));
            }
        };
        notes.insert("service_account".into(), json!(minted.service_account));
        // The token goes out of scope here, with the client: it served this one call.
        drop(client);
        drop(minted);
        // The outcome record describes the result as the caller gets it (its JSON).
        let result = serde_json::to_vec(&value).unwrap_or_default();
        Ok(Output {
            outcome: CallOutcome {
                credential_serial: serial,
                output_bytes: u64::try_from(result.len()).unwrap_or(u64::MAX),
                output_sha256: Some(hex::encode(Sha256::digest(&result))),
                ..CallOutcome::default()
            },
            value,
            notes,
        })
    }
}

/// Whether `caller` may use `cluster` at all: `allowed_callers`, and a human's groups.
fn access(cluster: &meho_config::Cluster, caller: &Caller) -> Result<(), ToolError> {
    meho_gateway::check_access(
        "cluster",
        &cluster.name,
        &cluster.allowed_callers,
        &cluster.groups,
        caller,
    )
}

/// Combines the decisions of a call's objects: the first refusal, else the first that needs
/// approval, else the first; the tier is the highest; each object's decision is a warning when
/// there are several.
fn combine(objects: &[Object], decisions: Vec<Decision>) -> Decision {
    let tier = decisions.iter().map(|d| d.tier).max().unwrap_or(Tier::Read);
    let several = decisions.len() > 1;
    let notes: Vec<String> = if several {
        objects
            .iter()
            .zip(&decisions)
            .map(|(o, d)| {
                let effect = if d.refuses() {
                    "deny"
                } else if d.needs_approval() {
                    "require_approval"
                } else {
                    "allow"
                };
                format!("{}: {effect} ({})", o.action, d.rule)
            })
            .collect()
    } else {
        Vec::new()
    };
    let pick = decisions
        .iter()
        .position(Decision::refuses)
        .or_else(|| decisions.iter().position(Decision::needs_approval))
        .unwrap_or(0);
    let mut decision = decisions.into_iter().nth(pick).unwrap_or_else(|| {
        Decision::refused(meho_core::ReasonCode::InvalidRequest, "no-objects", tier)
    });
    decision.tier = tier;
    decision.warnings.extend(notes);
    decision
}

/// Plans one object of `resource` for the tools that name one.
async fn one(
    cluster: &ClusterRuntime,
    verb: KubeVerb,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Object, ToolError> {
    let resource = if resource
        .chars()
        .any(|c| c.is_control() || c == ' ' || c == '/')
    {
        return Err(ToolError::invalid(format!(
            "resource `{}` is not a resource name",
            meho_core::display::escape(resource)
        )));
    } else {
        cluster.resolve(resource).await?
    };
    let namespace = match (resource.namespaced, namespace) {
        (true, None) if verb != KubeVerb::List => {
            return Err(ToolError::invalid(format!(
                "`{}` is namespaced: name the `namespace`",
                resource.api.plural
            )));
        }
        (false, Some(ns)) => {
            return Err(ToolError::invalid(format!(
                "`{}` is cluster-scoped: leave out `namespace` (got `{}`)",
                resource.api.plural,
                meho_core::display::escape(ns)
            )));
        }
        (_, namespace) => namespace,
    };
    let verb_name = match verb {
        KubeVerb::Get => "get",
        KubeVerb::List => "list",
        KubeVerb::Logs => "get",
        KubeVerb::Apply => "patch",
        KubeVerb::Delete => "delete",
    };
    if !resource.verbs.is_empty() && !resource.verbs.iter().any(|v| v == verb_name) {
        return Err(ToolError::invalid(format!(
            "`{}` does not support `{verb_name}` on this cluster",
            resource.api.plural
        )));
    }
    let action = KubeAction::new(
        verb,
        &resource.api.plural,
        Some(resource.api.group.as_str()),
        namespace,
        name,
    )
    .map_err(|e| ToolError::invalid(meho_core::display::escape(&e.to_string()).into_owned()))?;
    Ok(Object {
        action,
        resource,
        body: None,
    })
}

/// Every object of an apply manifest, resolved and with its namespace filled in, in order.
async fn manifest_objects(
    cluster: &ClusterRuntime,
    manifest: &str,
) -> Result<Vec<Object>, ToolError> {
    let flat = read_manifest(manifest)?;
    let mut objects: Vec<Object> = Vec::new();
    for (index, mut body) in flat.into_iter().enumerate() {
        let at = |what: &str| ToolError::invalid(format!("manifest object {}: {what}", index + 1));
        if !body.is_object() {
            return Err(at("is not an object"));
        }
        // A field that is there but not a string is refused, never read as absent: a
        // `namespace: on` must not become `default`.
        let text = |pointer: &str| match body.pointer(pointer) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(at(&format!(
                "`{}` is `{other}`, not a string (YAML reads `y`, `yes`, `on`, `no`, … and \
                 numbers as such: quote it)",
                pointer.trim_start_matches('/').replace('/', ".")
            ))),
        };
        let api_version = text("/apiVersion")?.ok_or_else(|| at("has no apiVersion"))?;
        let kind = text("/kind")?.ok_or_else(|| at("has no kind"))?;
        let name = text("/metadata/name")?.ok_or_else(|| {
            at("has no metadata.name (generateName is not supported: an approval names the object)")
        })?;
        let namespace = text("/metadata/namespace")?;
        let resource = cluster.resolve_kind(&api_version, &kind).await?;
        let namespace = match (resource.namespaced, namespace) {
            (true, Some(ns)) => Some(ns),
            (true, None) => {
                // As kubectl does; written into the object, so the decided namespace is the one
                // the API server sees.
                if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.insert("namespace".into(), json!("default"));
                }
                Some("default".to_owned())
            }
            (false, None) => None,
            (false, Some(ns)) => {
                return Err(at(&format!(
                    "`{kind}` is cluster-scoped but names namespace `{}`",
                    meho_core::display::escape(&ns)
                )));
            }
        };
        let action = KubeAction::new(
            KubeVerb::Apply,
            &resource.api.plural,
            Some(resource.api.group.as_str()),
            namespace.as_deref(),
            Some(&name),
        )
        .map_err(|e| at(&meho_core::display::escape(&e.to_string())))?;
        if objects.iter().any(|o| o.action == action) {
            return Err(at(&format!("`{action}` appears twice")));
        }
        objects.push(Object {
            action,
            resource,
            body: Some(body),
        });
    }
    Ok(objects)
}

/// The objects of an apply manifest, read as Kubernetes reads it: YAML (one or more
/// documents, YAML 1.1 scalars and numbers as sigs.k8s.io/yaml turns them into JSON) or JSON
/// (an object or an array, taken as written), `kind: List` flattened into its items, empty
/// documents skipped. One difference on purpose: a key given twice in a YAML mapping is refused
/// (Kubernetes keeps the last one, which someone reading the text may not). Nothing is
/// resolved against a cluster.
pub fn read_manifest(manifest: &str) -> Result<Vec<Value>, ToolError> {
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(ToolError::invalid(format!(
            "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES}",
            manifest.len()
        )));
    }
    let yaml = || {
        serde_saphyr::from_multiple_with_options::<Value>(manifest, kubernetes_yaml())
            .map(|documents| documents.into_iter().map(integral_numbers).collect())
            .map_err(|err| ToolError::invalid(format!("the manifest is not YAML: {err}")))
    };
    let documents: Vec<Value> = if manifest.trim_start().starts_with(['{', '[']) {
        match serde_json::from_str::<Value>(manifest) {
            Ok(Value::Array(items)) => items,
            Ok(value) => vec![value],
            // A YAML flow mapping (`{kind: ConfigMap, …}`) starts the same way.
            Err(err) => yaml()
                .map_err(|_| ToolError::invalid(format!("the manifest is not JSON: {err}")))?,
        }
    } else {
        yaml()?
    };
    let mut flat = Vec::new();
    for document in documents {
        match document {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = map.get("items").and_then(Value::as_array) {
                    flat.extend(items.iter().cloned());
                }
            }
            other => flat.push(other),
        }
    }
    if flat.is_empty() {
        return Err(ToolError::invalid("the manifest holds no object"));
    }
    if flat.len() > MAX_OBJECTS {
        return Err(ToolError::invalid(format!(
            "the manifest holds {} objects; at most {MAX_OBJECTS} per call",
            flat.len()
        )));
    }
    Ok(flat)
}

/// How Kubernetes reads YAML (sigs.k8s.io/yaml, YAML 1.1 scalars): `0644` is octal, `yes`,
/// `on` and `y` are booleans. What meho decides and sends must be the object kubectl would
/// have sent for the same text.
fn kubernetes_yaml() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options
}

/// `value` with every integral number written as an integer: Kubernetes turns YAML into JSON
/// through Go, which writes the float `1e3` (or `2.0`) as `1000` (`2`); the object sent is the
/// one kubectl would send.
fn integral_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            // Integral and within i64's range: the conversion is exact.
            Some(f)
                if !n.is_i64()
                    && !n.is_u64()
                    && f.fract() == 0.0
                    && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) =>
            {
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The request builder of `object`'s collection.
fn request_of(object: &Object) -> Result<KubeRequest, ToolError> {
    use kube::Resource as _;
    let namespace = object.action.namespace();
    Ok(KubeRequest::new(kube::core::DynamicObject::url_path(
        &object.resource.api,
        namespace,
    )))
}

fn accept_table(request: &mut http::Request<Vec<u8>>) {
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(ACCEPT_TABLE),
    );
}

fn propagation_policy(p: Propagation) -> PropagationPolicy {
    match p {
        Propagation::Background => PropagationPolicy::Background,
        Propagation::Foreground => PropagationPolicy::Foreground,
        Propagation::Orphan => PropagationPolicy::Orphan,
    }
}

/// Server-side apply of one object: field manager `meho`, never forced, strict field
/// validation; `dry_run` asks the server to run every admission step and persist nothing.
async fn apply_one(
    client: &kube::Client,
    object: &Object,
    dry_run: bool,
) -> Result<Value, kube::Error> {
    let request = request_of(object).map_err(|e| kube::Error::Service(e.message.into()))?;
    let mut params = PatchParams::apply(FIELD_MANAGER).validation_strict();
    params.force = false;
    params.dry_run = dry_run;
    let body = object.body.clone().unwrap_or(Value::Null);
    let http = request
        .patch(
            object.action.name().unwrap_or_default(),
            &params,
            &Patch::Apply(&body),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request(http).await
}

async fn delete_one(
    client: &kube::Client,
    object: &Object,
    params: &DeleteParams,
) -> Result<Value, kube::Error> {
    let request = request_of(object).map_err(|e| kube::Error::Service(e.message.into()))?;
    let http = request
        .delete(object.action.name().unwrap_or_default(), params)
        .map_err(kube::Error::BuildRequest)?;
    client.request(http).await
}

/// The live object, or `None` when it does not exist.
async fn live(client: &kube::Client, object: &Object) -> Result<Option<Value>, kube::Error> {
    let request = request_of(object).map_err(|e| kube::Error::Service(e.message.into()))?;
    let http = request
        .get(
            object.action.name().unwrap_or_default(),
            &GetParams::default(),
        )
        .map_err(kube::Error::BuildRequest)?;
    match client.request::<Value>(http).await {
        Ok(value) => Ok(Some(value)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(err),
    }
}

/// The preview of a held apply or delete: for each object, the live object against the
/// server's dry run of the change (`dryRun=All`, under the caller's own ServiceAccount, so
/// the cluster's RBAC and admission speak too). A dry run the server refuses is the call's
/// error: nothing is held for a change that cannot succeed.
async fn preview(
    client: &kube::Client,
    cluster: &ClusterRuntime,
    plan: &Plan<Planned>,
    minted: &Minted,
) -> Result<String, ToolError> {
    let who = format!("ServiceAccount `{}`", minted.service_account);
    let dry_run_error = |object: &Object, err: kube::Error| {
        let mut error = crate::api_error(&cluster.config.name, &who, err);
        error.message = format!(
            "the server-side dry run of `{}` failed, so the call was not held for approval: {}",
            object.action, error.message
        );
        error
    };
    let mut out = String::new();
    for object in &plan.action.objects {
        let before = live(client, object)
            .await
            .map_err(|e| dry_run_error(object, e))?;
        let after = match &plan.action.call {
            KubeCall::Delete { propagation, .. } => {
                let params = DeleteParams {
                    dry_run: true,
                    propagation_policy: propagation.map(propagation_policy),
                    ..DeleteParams::default()
                };
                delete_one(client, object, &params)
                    .await
                    .map_err(|e| dry_run_error(object, e))?;
                None
            }
            _ => Some(
                apply_one(client, object, true)
                    .await
                    .map_err(|e| dry_run_error(object, e))?,
            ),
        };
        out.push_str(&render::diff(
            &object.action.canonical(),
            before.as_ref(),
            after.as_ref(),
            object.is_secrets(),
        ));
    }
    // Bounded by the manifest's size; the gateway redacts it whole, then clips it at a line
    // break (clipping here first could cut a secret the redactor would then not recognise).
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Connector for KubeConnector {
    type Action = Planned;
    type Credential = Minted;

    fn tools(&self) -> Vec<ToolSpec> {
        let hints = Annotations::hints;
        vec![
            ToolSpec::of::<GetArgs>(
                GET,
                "Get one Kubernetes object (any resource the cluster serves). Compact by default: the columns kubectl shows; `output: full` for the object (managedFields removed, Secret values shown as sizes).",
                Tier::Read,
                hints(true, false, true, true),
            ),
            ToolSpec::of::<ListArgs>(
                LIST,
                "List Kubernetes objects of one resource, in a namespace or across all; label and field selectors; paged (`limit`, then `continue`). Compact table by default.",
                Tier::Read,
                hints(true, false, true, true),
            ),
            ToolSpec::of::<LogsArgs>(
                LOGS,
                "Read a pod container's log (last 200 lines by default, capped at 256 KiB with `truncated`).",
                Tier::Read,
                hints(true, false, true, true),
            ),
            ToolSpec::of::<ApplyArgs>(
                APPLY,
                "Server-side apply a manifest (YAML, multi-document, or JSON) as field manager `meho`, never forced, strict field validation. Each object is decided on its own; a held call shows the approver the server's dry-run diff.",
                Tier::Write,
                hints(false, true, true, true),
            ),
            ToolSpec::of::<DeleteArgs>(
                DELETE,
                "Delete one Kubernetes object, with an optional propagation policy. A held delete shows the approver what would go (server-side dry run).",
                Tier::Destructive,
                hints(false, true, true, true),
            ),
        ]
    }

    fn plan<'a>(
        &'a self,
        call: CallContext<'a>,
        tool: &'a str,
        arguments: &'a Value,
    ) -> BoxFuture<'a, Result<Plan<Planned>, ToolError>> {
        Box::pin(self.plan_call(call, tool, arguments))
    }

    fn authorize<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Planned>,
        approval: Option<&'a ApprovalClaim>,
    ) -> BoxFuture<'a, Result<Authorized<Minted>, Refusal>> {
        Box::pin(self.authorize_call(call, plan, approval))
    }

    fn execute<'a>(
        &'a self,
        call: CallContext<'a>,
        plan: &'a Plan<Planned>,
        authorized: Authorized<Minted>,
        _receipt: &'a IntentReceipt,
    ) -> BoxFuture<'a, Result<Output, Failed>> {
        Box::pin(self.execute_call(call, plan, authorized))
    }

    fn targets<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Result<Vec<Target>, ToolError>> {
        Box::pin(async move {
            Ok(self
                .clusters
                .values()
                .filter(|c| c.config.tenant == caller.tenant)
                .filter(|c| access(&c.config, caller).is_ok())
                .map(|c| {
                    let config = &c.config;
                    let mut detail = Map::new();
                    detail.insert("tenant".into(), json!(config.tenant));
                    detail.insert("groups".into(), json!(config.groups));
                    detail.insert(
                        "service_account".into(),
                        json!(
                            config
                                .binding_for(caller.groups.as_deref())
                                .map(|b| format!("{}/{}", b.namespace, b.service_account))
                        ),
                    );
                    detail.insert(
                        "rules".into(),
                        json!(
                            config
                                .policy
                                .rules()
                                .iter()
                                .map(|r| format!(
                                    "{} {} {} {}/{}",
                                    r.effect.as_str(),
                                    r.verbs.join(","),
                                    r.resources.join(","),
                                    r.namespaces.join(","),
                                    r.names.join(",")
                                ))
                                .collect::<Vec<_>>()
                        ),
                    );
                    Target {
                        name: config.name.clone(),
                        kind: "kubernetes",
                        detail,
                    }
                })
                .collect())
        })
    }
}
