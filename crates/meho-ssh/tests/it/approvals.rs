//! Approvals at the signer, against a real sshd: an approval authorizes exactly the call it was
//! given for, once, at the moment the credential is minted (or a session command is decided).

use meho_approvals::{Approver, Call};
use meho_config::Role;
use meho_core::Tier;
use meho_gateway::{Caller, ToolError};
use serde_json::{Value, json};

use crate::harness::require_sshd;
use crate::support::{Lab, caller, host};

const POLICY: &str = "allow_sudo = true\ncommand_policy = { mode = \"denylist\", require_approval = ['^echo held'] }";

/// The call a `needs_approval` refusal names, approved by another human.
async fn approve(lab: &Lab, refused: &ToolError, approve: bool) -> String {
    assert_eq!(refused.code, "needs_approval", "{refused:?}");
    let bound = &refused.detail.as_ref().unwrap()["call"];
    let call = Call {
        tenant: "default".into(),
        requester: caller().principal,
        target: bound["target"].as_str().unwrap().into(),
        tool: bound["tool"].as_str().unwrap().into(),
        action: bound["action"].clone(),
    };
    let pending = lab
        .approvals
        .create(
            &call,
            None,
            "test",
            "require_approval:^echo held",
            Tier::Write,
        )
        .await
        .unwrap();
    if approve {
        let boss = Approver {
            principal: "boss".into(),
            tenant: "default".into(),
            role: Role::TenantAdmin,
        };
        lab.approvals
            .decide(&boss, &pending.id, true, "ok", None)
            .await
            .unwrap();
    }
    pending.id
}

fn with(id: &str) -> Caller {
    Caller {
        approval_id: Some(id.to_owned()),
        ..caller()
    }
}

fn refused_rule(err: &ToolError) -> String {
    assert_eq!(err.code, "approval_refused", "{err:?}");
    err.detail.as_ref().unwrap()["decision"]["rule"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_runs_exactly_its_call_once_and_any_change_is_refused() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, POLICY), |_| {}).await;
    let asked = json!({ "server": "web", "command": "echo held-a" });
    let refused = lab.call("ssh_execute", asked.clone()).await.unwrap_err();
    let id = approve(&lab, &refused, true).await;

    // A changed command, elevation or host is another call.
    for changed in [
        json!({ "server": "web", "command": "echo held-b" }),
        json!({ "server": "web", "command": "echo held-a", "sudo": true }),
        json!({ "server": "web", "command": "echo held-a", "ttl_seconds": 5 }),
    ] {
        let err = lab
            .call_as(&with(&id), "ssh_execute", changed.clone())
            .await
            .unwrap_err();
        assert_eq!(refused_rule(&err), "approval:different-call", "{changed}");
    }
    // Another requester cannot use it either.
    let stranger = Caller {
        approval_id: Some(id.clone()),
        ..Caller::agent("agent-2")
    };
    let err = lab
        .call_as(&stranger, "ssh_execute", asked.clone())
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:different-call");

    // The exact call runs, once.
    let ran: Value = lab
        .call_as(&with(&id), "ssh_execute", asked.clone())
        .await
        .unwrap();
    assert_eq!(ran["stdout"], "held-a\n");
    let err = lab
        .call_as(&with(&id), "ssh_execute", asked.clone())
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:consumed");
    // The credential record names the approval.
    let issued: Vec<_> = lab
        .records_of("sign")
        .await
        .into_iter()
        .filter(|r| r.outcome.as_deref() == Some("issued"))
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].approval_id.as_deref(), Some(id.as_str()));

    // An approval nobody decided authorizes nothing.
    let refused = lab
        .call(
            "ssh_execute",
            json!({ "server": "web", "command": "echo held-c" }),
        )
        .await
        .unwrap_err();
    let undecided = approve(&lab, &refused, false).await;
    let err = lab
        .call_as(
            &with(&undecided),
            "ssh_execute",
            json!({ "server": "web", "command": "echo held-c" }),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:pending");
    let err = lab
        .call_as(
            &with("apr-nope"),
            "ssh_execute",
            json!({ "server": "web", "command": "echo held-c" }),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:not-found");
}

/// Approve-and-learn: the waiver minted with the approval allows the command from then on, but
/// the approval itself is still consumed exactly once by the run that collects it (and that run
/// carries its id); presenting it again runs nothing, though the same call without it runs
/// under the waiver.
#[tokio::test(flavor = "multi_thread")]
async fn a_learned_approval_is_still_consumed_once_by_the_run_that_collects_it() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, POLICY), |_| {}).await;
    let asked = json!({ "server": "web", "command": "echo held-learned" });
    let refused = lab.call("ssh_execute", asked.clone()).await.unwrap_err();
    let id = approve(&lab, &refused, true).await;
    // What `approve --learn` mints next to the approval: a waiver for exactly this command.
    let requester = caller().principal;
    let waiver = lab
        .grants
        .learn(
            "default",
            "web",
            "echo held-learned",
            &meho_policy::Elevation::None,
            &requester,
            // `Caller::agent` names no human behind the agent.
            "",
            &id,
            "boss",
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();

    let ran: Value = lab
        .call_as(&with(&id), "ssh_execute", asked.clone())
        .await
        .unwrap();
    assert_eq!(ran["stdout"], "held-learned\n");
    let shown = lab.approvals.get("default", &id).await.unwrap();
    assert_eq!(
        shown.status,
        meho_approvals::Status::Consumed,
        "the waiver let the approval be reused"
    );
    let err = lab
        .call_as(&with(&id), "ssh_execute", asked.clone())
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:consumed");
    // Without the approval, the waiver governs.
    let direct: Value = lab.call("ssh_execute", asked.clone()).await.unwrap();
    assert_eq!(direct["stdout"], "held-learned\n");

    let issued: Vec<_> = lab
        .records_of("sign")
        .await
        .into_iter()
        .filter(|r| r.outcome.as_deref() == Some("issued"))
        .collect();
    assert_eq!(issued.len(), 2, "{issued:#?}");
    assert_eq!(
        issued[0].approval_id.as_deref(),
        Some(id.as_str()),
        "the collecting run names the approval"
    );
    assert_eq!(
        issued[1].approval_id, None,
        "the waiver's run is not the approval's"
    );
    let body: Value = serde_json::from_str(&issued[1].body).unwrap();
    assert_eq!(body["decision"]["waiver_id"], waiver.id.as_str(), "{body}");
    // Each certificate record names the call it was issued for: the intent's call id.
    let intents: Vec<_> = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .filter(|r| r.kind == "intent")
        .collect();
    assert_eq!(intents.len(), 2, "{intents:#?}");
    for (credential, intent) in issued.iter().zip(&intents) {
        assert!(credential.call_id.is_some(), "{credential:#?}");
        assert_eq!(credential.call_id, intent.call_id);
    }
    // The refused first attempt: the broker's denial and the signer's decision share one id.
    let signer_refusal = lab
        .records_of("sign")
        .await
        .into_iter()
        .find(|r| r.kind == "denial")
        .unwrap();
    let broker_refusal = lab
        .records_of("ssh_execute")
        .await
        .into_iter()
        .find(|r| r.kind == "denial")
        .unwrap();
    assert!(signer_refusal.call_id.is_some());
    assert_eq!(signer_refusal.call_id, broker_refusal.call_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_command_is_approved_with_the_sessions_sudo_state() {
    if !require_sshd() {
        return;
    }
    let (dir, ca_path, ca_line) = Lab::ca();
    let sshd = Lab::sshd(&ca_line);
    let lab = Lab::new(dir, ca_path, &host("web", &sshd, POLICY), |_| {}).await;
    let opened = lab
        .call("ssh_session_open", json!({ "server": "web" }))
        .await
        .unwrap();
    let session = opened["session_id"].as_str().unwrap();
    let exec = json!({ "session_id": session, "command": "echo held-s" });
    let refused = lab
        .call("ssh_session_exec", exec.clone())
        .await
        .unwrap_err();
    let bound = &refused.detail.as_ref().unwrap()["call"]["arguments"];
    assert_eq!(bound["sudo"], false, "{bound}");
    assert_eq!(bound["server"], "web", "{bound}");
    let id = approve(&lab, &refused, true).await;
    let ran = lab
        .call_as(&with(&id), "ssh_session_exec", exec.clone())
        .await
        .unwrap();
    assert_eq!(ran["stdout"], "held-s\n");
    let err = lab
        .call_as(&with(&id), "ssh_session_exec", exec)
        .await
        .unwrap_err();
    assert_eq!(refused_rule(&err), "approval:consumed");
}
