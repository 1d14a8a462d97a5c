//! Query filters and keyset pagination over 300 records, checked against a model built from
//! what was appended.

use std::collections::{HashMap, HashSet};

use meho_audit::{AuditLog, Filter, NewRecord, Page, RecordKind, StoredRecord};
use serde_json::json;

use crate::support::{Fixture, assert_verified};

const N: usize = 300;
const TENANTS: [&str; 3] = ["t-a", "t-b", "t-c"];
const PRINCIPALS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const TARGETS: [&str; 5] = ["web-1", "web-2", "db-1", "db-2", "cache"];
const ACTIONS: [&str; 7] = [
    "ssh_execute",
    "kubectl_apply",
    "approve",
    "reload",
    "freeze",
    "grant",
    "psql",
];

fn nth(i: usize) -> NewRecord {
    NewRecord {
        target: (!i.is_multiple_of(11)).then(|| TARGETS[i % 5].to_owned()),
        action: Some(ACTIONS[i % 7].to_owned()),
        outcome: (!i.is_multiple_of(13)).then(|| ["allowed", "denied"][i % 2].to_owned()),
        session_id: (i % 4 != 3).then(|| format!("s-{}", i % 6)),
        approval_id: i.is_multiple_of(25).then(|| "appr-42".to_owned()),
        call_id: Some(format!("call-{i}")),
        body: json!({ "i": i, "args": ["x", i * 2], "nested": { "ok": i.is_multiple_of(2) } }),
        ..NewRecord::new(TENANTS[i % 3], RecordKind::ALL[i % 9], PRINCIPALS[i % 4])
    }
}

/// A filter and the model's idea of what it matches.
type Case = (Filter, Box<dyn Fn(&StoredRecord) -> bool>);

/// Every record matching `filter`, in one page, newest first.
async fn query_all(log: &AuditLog, filter: &Filter) -> Vec<StoredRecord> {
    let page = log
        .query(
            filter,
            Page::Newest {
                before: None,
                limit: 10_000,
            },
        )
        .await
        .unwrap();
    assert!(
        page.windows(2).all(|w| w[0].row > w[1].row),
        "newest first: descending row order"
    );
    page
}

fn ids(records: &[StoredRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

/// The model's records matching `keep`, newest first.
fn expected(model: &[StoredRecord], keep: impl Fn(&StoredRecord) -> bool) -> Vec<&str> {
    let mut matching: Vec<&StoredRecord> = model.iter().filter(|r| keep(r)).collect();
    matching.sort_by_key(|r| std::cmp::Reverse(r.row));
    matching.iter().map(|r| r.id.as_str()).collect()
}

both_backends!(
    filters_return_exactly_the_matching_records,
    keyset_pagination_visits_every_record_once,
    linked_reads_the_records_of_named_calls_and_approvals_in_one_tenant
);

/// Each filter returns exactly the matching records; `get` finds records by id.
async fn filters_return_exactly_the_matching_records(fx: Fixture) {
    let log = fx.start_log(1000).await;
    let mut submitted: HashMap<String, NewRecord> = HashMap::new();
    for i in 0..N {
        let new = nth(i);
        let done = log.append(new.clone()).await.unwrap();
        submitted.insert(done.id, new);
    }
    // The model: everything stored, read through `scan`, not through `query`.
    let mut model: Vec<StoredRecord> = Vec::new();
    for tenant in TENANTS {
        model.extend(fx.records(tenant).await);
    }
    assert_eq!(model.len(), N);
    for stored in &model {
        let new = &submitted[&stored.id];
        let record = stored.submitted().unwrap();
        assert_eq!(
            (
                &record.tenant,
                record.kind,
                &record.principal,
                &record.target,
                &record.action,
                &record.outcome
            ),
            (
                &new.tenant,
                new.kind,
                &new.principal,
                &new.target,
                &new.action,
                &new.outcome
            )
        );
        assert_eq!(
            (
                &record.session_id,
                &record.approval_id,
                &record.call_id,
                &record.body
            ),
            (&new.session_id, &new.approval_id, &new.call_id, &new.body)
        );
    }

    let everything = query_all(&log, &Filter::default()).await;
    assert_eq!(ids(&everything), expected(&model, |_| true));

    let some = |s: &str| Some(s.to_owned());
    let cases: Vec<Case> = vec![
        (
            Filter {
                tenant: some("t-b"),
                ..Filter::default()
            },
            Box::new(|r| r.tenant == "t-b"),
        ),
        (
            Filter {
                principal: some("bob"),
                ..Filter::default()
            },
            Box::new(|r| r.principal == "bob"),
        ),
        (
            Filter {
                target: some("db-1"),
                ..Filter::default()
            },
            Box::new(|r| r.target.as_deref() == Some("db-1")),
        ),
        (
            Filter {
                action: some("approve"),
                ..Filter::default()
            },
            Box::new(|r| r.action.as_deref() == Some("approve")),
        ),
        (
            Filter {
                outcome: some("denied"),
                ..Filter::default()
            },
            Box::new(|r| r.outcome.as_deref() == Some("denied")),
        ),
        (
            Filter {
                kind: some("approval"),
                ..Filter::default()
            },
            Box::new(|r| r.kind == "approval"),
        ),
        (
            Filter {
                session_id: some("s-3"),
                ..Filter::default()
            },
            Box::new(|r| r.session_id.as_deref() == Some("s-3")),
        ),
        (
            Filter {
                approval_id: some("appr-42"),
                ..Filter::default()
            },
            Box::new(|r| r.approval_id.as_deref() == Some("appr-42")),
        ),
        (
            Filter {
                call_id: some("call-77"),
                ..Filter::default()
            },
            Box::new(|r| r.call_id.as_deref() == Some("call-77")),
        ),
        (
            Filter {
                tenant: some("t-a"),
                principal: some("alice"),
                outcome: some("allowed"),
                ..Filter::default()
            },
            Box::new(|r| {
                r.tenant == "t-a"
                    && r.principal == "alice"
                    && r.outcome.as_deref() == Some("allowed")
            }),
        ),
        (
            Filter {
                principal: some("nobody"),
                ..Filter::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (filter, keep) in &cases {
        let want = expected(&model, keep);
        assert!(
            filter.principal.as_deref() == Some("nobody") || (!want.is_empty() && want.len() < N),
            "the model gives {filter:?} a meaningful answer"
        );
        assert_eq!(ids(&query_all(&log, filter).await), want, "{filter:?}");
    }

    // Time range: since is inclusive, until exclusive, against the stored timestamps.
    let mut stamps: Vec<i64> = model.iter().map(|r| r.ts).collect();
    stamps.sort_unstable();
    let (since, until) = (stamps[100], stamps[200]);
    assert!(since < until, "the records span more than one timestamp");
    for (filter, keep) in [
        (
            Filter {
                since: Some(since),
                ..Filter::default()
            },
            Box::new(move |r: &StoredRecord| r.ts >= since) as Box<dyn Fn(&StoredRecord) -> bool>,
        ),
        (
            Filter {
                until: Some(until),
                ..Filter::default()
            },
            Box::new(move |r: &StoredRecord| r.ts < until),
        ),
        (
            Filter {
                since: Some(since),
                until: Some(until),
                tenant: some("t-c"),
                ..Filter::default()
            },
            Box::new(move |r: &StoredRecord| r.ts >= since && r.ts < until && r.tenant == "t-c"),
        ),
    ] {
        let want = expected(&model, keep);
        assert!(!want.is_empty());
        assert_eq!(ids(&query_all(&log, &filter).await), want, "{filter:?}");
    }

    // get
    for stored in model.iter().step_by(17) {
        assert_eq!(log.get(&stored.id).await.unwrap().as_ref(), Some(stored));
    }
    assert_eq!(
        log.get("0190c0de-0000-7000-8000-000000000000")
            .await
            .unwrap(),
        None
    );
    assert_eq!(log.get("").await.unwrap(), None);

    log.shutdown().await.unwrap();
    assert_verified(&fx.verify().await);
}

/// Keyset pages of 37, newest first and oldest first, return every record exactly once and
/// in row order, with and without a filter.
async fn keyset_pagination_visits_every_record_once(fx: Fixture) {
    let log = fx.start_log(1000).await;
    for i in 0..N {
        log.append(nth(i)).await.unwrap();
    }
    let all = query_all(&log, &Filter::default()).await;
    assert_eq!(all.len(), N);

    for filter in [
        Filter::default(),
        Filter {
            tenant: Some("t-c".to_owned()),
            ..Filter::default()
        },
    ] {
        let want: Vec<&str> = all
            .iter()
            .filter(|r| filter.tenant.as_deref().is_none_or(|t| r.tenant == t))
            .map(|r| r.id.as_str())
            .collect();

        let mut newest: Vec<StoredRecord> = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = log
                .query(&filter, Page::Newest { before, limit: 37 })
                .await
                .unwrap();
            assert!(page.len() <= 37);
            pages += 1;
            assert!(pages <= N, "pagination does not end");
            let Some(last) = page.last() else { break };
            before = Some(last.row);
            let short = page.len() < 37;
            newest.extend(page);
            if short {
                break;
            }
        }
        assert_eq!(ids(&newest), want, "Newest pages, {filter:?}");
        let unique: HashSet<&str> = ids(&newest).into_iter().collect();
        assert_eq!(unique.len(), want.len(), "no record twice");
        assert_eq!(
            pages,
            want.len().div_ceil(37) + usize::from(want.len().is_multiple_of(37))
        );

        let mut oldest: Vec<StoredRecord> = Vec::new();
        let mut after = 0;
        loop {
            let page = log
                .query(&filter, Page::After { after, limit: 37 })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.row;
            oldest.extend(page);
        }
        assert!(
            oldest.windows(2).all(|w| w[0].row < w[1].row),
            "After pages ascend"
        );
        let mut reversed = ids(&oldest);
        reversed.reverse();
        assert_eq!(reversed, want, "After pages, {filter:?}");
    }

    // A cursor in the middle: strictly before / after it.
    let middle = all[150].row;
    let older = log
        .query(
            &Filter::default(),
            Page::Newest {
                before: Some(middle),
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&older), ids(&all[151..156]));
    let newer = log
        .query(
            &Filter::default(),
            Page::After {
                after: middle,
                limit: 5,
            },
        )
        .await
        .unwrap();
    let mut want: Vec<&str> = ids(&all[145..150]);
    want.reverse();
    assert_eq!(ids(&newer), want);
    log.shutdown().await.unwrap();
}

/// `linked` returns exactly the records of one tenant carrying one of the call ids or approval
/// ids, oldest first and each once (a record with both ids too), across id lists longer than one
/// `IN (…)` chunk; another tenant's records never, whatever ids are asked for.
async fn linked_reads_the_records_of_named_calls_and_approvals_in_one_tenant(fx: Fixture) {
    let log = fx.start_log(1000).await;
    for i in 0..N {
        log.append(nth(i)).await.unwrap();
    }
    let mut model: Vec<StoredRecord> = Vec::new();
    for tenant in TENANTS {
        model.extend(fx.records(tenant).await);
    }
    let store = fx.audit();
    let strings = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let ascending = |keep: &dyn Fn(&StoredRecord) -> bool| {
        let mut matching: Vec<&StoredRecord> = model.iter().filter(|r| keep(r)).collect();
        matching.sort_by_key(|r| r.row);
        matching
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<String>>()
    };
    let got_ids = |records: Vec<StoredRecord>| {
        assert!(
            records.windows(2).all(|w| w[0].row < w[1].row),
            "oldest first, once"
        );
        records.into_iter().map(|r| r.id).collect::<Vec<String>>()
    };

    // Call ids and an approval id; `call-75` also carries `appr-42` (75 is a multiple of 25).
    let calls = strings(&[
        "call-0",
        "call-3",
        "call-75",
        "call-150",
        "call-1",
        "call-none",
    ]);
    let approvals = strings(&["appr-42"]);
    let got = store.linked("t-a", &calls, &approvals, 1000).await.unwrap();
    let want = ascending(&|r| {
        r.tenant == "t-a"
            && (r
                .call_id
                .as_deref()
                .is_some_and(|c| calls.iter().any(|x| x == c))
                || r.approval_id.as_deref() == Some("appr-42"))
    });
    assert!(
        want.len() >= 5,
        "the model gives a meaningful answer: {want:?}"
    );
    assert_eq!(got_ids(got), want);

    // Only approvals, only calls, nothing.
    let got = store.linked("t-b", &[], &approvals, 1000).await.unwrap();
    let want = ascending(&|r| r.tenant == "t-b" && r.approval_id.as_deref() == Some("appr-42"));
    assert!(!want.is_empty());
    assert_eq!(got_ids(got), want);
    assert!(
        store
            .linked("t-a", &[], &[], 1000)
            .await
            .unwrap()
            .is_empty()
    );

    // More ids than one chunk: every call of t-c, and nothing of another tenant.
    let many: Vec<String> = (0..1200).map(|i| format!("call-{i}")).collect();
    let got = store.linked("t-c", &many, &[], 10_000).await.unwrap();
    assert_eq!(got_ids(got), ascending(&|r| r.tenant == "t-c"));
    // `call-1` is t-b's (1 % 3): asked in t-a, it does not exist.
    assert!(
        store
            .linked("t-a", &strings(&["call-1", "call-2"]), &[], 1000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .linked("t-zzz", &many, &approvals, 1000)
            .await
            .unwrap()
            .is_empty()
    );

    // `limit` bounds what comes back.
    let capped = store.linked("t-c", &many, &approvals, 7).await.unwrap();
    assert!(capped.len() <= 7 && !capped.is_empty(), "{}", capped.len());
    log.shutdown().await.unwrap();
}
