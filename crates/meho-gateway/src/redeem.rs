//! Redeeming an approval as a decider authorizes the call it was given for: the one
//! implementation every decider (the SSH signer, the Kubernetes connector) uses.

use meho_approvals::{ApprovalError, Approvals, Call};
use meho_core::{Decision, Effect, ReasonCode};
use meho_policy::Decided;

/// Whether redeeming consumes the approval or only checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeem {
    /// The call is being authorized now: consume the approval (exactly once).
    Consume,
    /// A dry run ahead of the real authorization: check it, leave it approved.
    Check,
}

/// Redeems approval `id` for `call` on a decision. A refusal stays a refusal (deny wins, and
/// the approval is left untouched); otherwise the approval must be bound to exactly `call`
/// (tenant, requester, target, action) and approved, and the decision becomes an allowed one
/// that names it, the rule that asked staying on it. An approval is consumed whether or not it
/// is still needed (a waiver or grant may allow the call by now): the call that collects it
/// carries its id and a second collection is refused.
///
/// A problem with the approval is a refusal with rule `approval:<why>` (`different-call`,
/// `consumed`, `expired`, `denied`, `pending`, `not-found`); the store failing is an error, and
/// the caller fails closed.
pub async fn redeem(
    approvals: &Approvals,
    id: &str,
    call: &Call,
    mut decided: Decided,
    mode: Redeem,
) -> Result<Decided, ApprovalError> {
    if decided.decision.refuses() {
        return Ok(decided);
    }
    let refuse = |rule: &str, decided: &Decided| refused_claim(id, rule, decided);
    let redeemed = match mode {
        Redeem::Consume => approvals.consume(id, call).await,
        Redeem::Check => match approvals.get(&call.tenant, id).await {
            Ok(a) if a.call_hash != call.hash() => Err(ApprovalError::DifferentCall(id.to_owned())),
            Ok(a) if a.status != meho_approvals::Status::Approved => {
                Err(ApprovalError::WrongState {
                    id: id.to_owned(),
                    status: a.status,
                })
            }
            other => other,
        },
    };
    match redeemed {
        Ok(approval) => {
            let decision = &mut decided.decision;
            decision.effect = Effect::Allow;
            decision.reason_code = ReasonCode::Allowed;
            decision.approval_id = Some(approval.id.clone());
            decision.warnings.push(format!(
                "approved by {} ({})",
                approval.decided_by.as_deref().unwrap_or("?"),
                approval.id
            ));
            Ok(decided)
        }
        Err(ApprovalError::DifferentCall(_)) => Ok(refuse("approval:different-call", &decided)),
        Err(ApprovalError::WrongState { status, .. }) => {
            Ok(refuse(&format!("approval:{status}"), &decided))
        }
        Err(ApprovalError::NotFound(_)) => Ok(refuse("approval:not-found", &decided)),
        Err(err) => Err(err),
    }
}

/// The refusal of a call that presents an approval where none can be checked (no store), or
/// one given for another call.
pub fn refused_claim(id: &str, rule: &str, decided: &Decided) -> Decided {
    Decided::from(Decision {
        approval_id: Some(id.to_owned()),
        ..Decision::refused(ReasonCode::NeedsApproval, rule, decided.decision.tier)
    })
}

/// The decision for a call that collects `claim` (if any), for connectors that decide in
/// process: the approval is consumed once when it is this call's, the call is refused when it is
/// not (or no store can check it), and a store failure refuses the call (fail closed).
pub async fn consume_claim(
    approvals: Option<&Approvals>,
    claim: Option<&crate::ApprovalClaim>,
    call: &Call,
    decided: Decided,
) -> Result<Decided, crate::Refusal> {
    let Some(claim) = claim else {
        return Ok(decided);
    };
    let Some(approvals) = approvals else {
        return Err(crate::Refusal::Decided {
            decision: refused_claim(&claim.id, "approval:unavailable", &decided),
            runs: None,
            preview: None,
        });
    };
    redeem(approvals, &claim.id, call, decided, Redeem::Consume)
        .await
        .map_err(|err| {
            crate::Refusal::Error(crate::ToolError::internal(format!(
                "approvals unavailable, nothing ran (fail closed): {err}"
            )))
        })
}
