//! Result reduction (issue #15) end to end: `meho serve` with a cluster on a real kube-apiserver
//! and a host on a real sshd, driven by the official Python MCP SDK over Streamable HTTP with
//! IdP tokens. A large `k8s_list` and a large `ssh_execute` come back as summaries (which the SDK
//! validates against the tools' declared outputSchema), `result_query` answers SQL over the kept
//! rows for their owner only, `raw: true` returns a result whole, the sandbox refuses what is not
//! a read, and the audit log names the handle, the shown size and the SQL.

use serde_json::{Value, json};

use meho_test_support::kube::KubeApiserver;

use crate::kube_mcp::{AGENT_RBAC, config as kube_config};
use crate::mcp::{Lab, call_ok, call_refused, py_http, require_python, serve_on_a_port};
use crate::peers::Idp;
use crate::support::require_sshd;

/// The nodes the pods are spread over (round robin); the pods on the first are marked Running,
/// the others stay Pending (no scheduler, no kubelet).
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
/// Pods created in namespace `team`: more than the 50-row threshold, and more than one default
/// page of `k8s_list` (100).
const PODS: usize = 120;
/// Lines of the journal-like output `ssh_execute` prints.
const LINES: usize = 3000;
/// Every line whose number is a multiple of this says `error`.
const ERROR_EVERY: usize = 37;
/// The summary's budget (`[reduction] answer_max_bytes`, default).
const ANSWER_MAX_BYTES: usize = 4096;

/// Line `n` (1-based) of [`journal_command`]'s output.
fn journal_line(n: usize) -> String {
    let message = if n.is_multiple_of(ERROR_EVERY) {
        "error: authentication failed for user deploy"
    } else {
        "Accepted publickey for root from 10.0.0.1"
    };
    format!(
        "Dec 07 19:{:02}:{:02} host sshd[{}]: {message}",
        (n / 60) % 60,
        n % 60,
        1000 + n
    )
}

/// A shell pipeline printing [`LINES`] journalctl-style lines, as [`journal_line`] renders them.
fn journal_command() -> String {
    format!(
        "seq 1 {LINES} | awk '{{ printf \"Dec 07 19:%02d:%02d host sshd[%d]: %s\\n\", int($1/60)%60, $1%60, 1000+$1, ($1%{ERROR_EVERY}==0 ? \"error: authentication failed for user deploy\" : \"Accepted publickey for root from 10.0.0.1\") }}'"
    )
}

/// The compact JSON size of `value`.
fn size_of(value: &Value) -> usize {
    serde_json::to_vec(value).unwrap().len()
}

/// The common checks of a summary; its handle.
fn assert_summary(summary: &Value, rows: usize, shape: &str) -> String {
    assert_eq!(summary["reduced"], true, "{summary}");
    assert_eq!(summary["rows"], rows, "{summary}");
    assert_eq!(summary["shape"], shape, "{summary}");
    assert!(
        summary.get("kept_rows").is_none(),
        "all rows kept: {summary}"
    );
    assert!(
        size_of(summary) <= ANSWER_MAX_BYTES,
        "{} bytes: {summary}",
        size_of(summary)
    );
    let handle = summary["handle"].as_str().unwrap().to_owned();
    let hex = handle.strip_prefix("res-").unwrap_or_default();
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{handle}"
    );
    assert!(summary["source_bytes"].as_u64().unwrap() > ANSWER_MAX_BYTES as u64);
    assert!(
        !summary["sample"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    assert!(
        summary["sample"].as_array().unwrap().len() <= 5,
        "{summary}"
    );
    assert!(summary["expires_at"].is_string(), "{summary}");
    let how = &summary["how_to_query"];
    assert_eq!(how["tool"], "result_query", "{summary}");
    assert_eq!(how["arguments"]["handle"], handle.as_str(), "{summary}");
    handle
}

/// `result_query` over `handle`: its answer's rows.
fn query(url: &str, token: &str, handle: &str, sql: &str) -> Vec<Value> {
    let answer = call_ok(
        url,
        token,
        "result_query",
        &json!({ "handle": handle, "sql": sql }),
    );
    assert_eq!(answer["truncated"], false, "{sql}: {answer}");
    let rows = answer["rows"].as_array().unwrap().clone();
    assert_eq!(answer["row_count"], rows.len(), "{answer}");
    rows
}

/// The column names of a summary.
fn column_names(summary: &Value) -> Vec<&str> {
    summary["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn python_sdk_gets_summaries_of_large_results_and_queries_them_with_result_query() {
    if !require_python() || !require_sshd("result reduction over /mcp") {
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
        for node in NODES {
            api.node(node).await;
        }
        for i in 0..PODS {
            let name = format!("web-{i:03}");
            let node = NODES[i % NODES.len()];
            api.admin_ok(
                "POST",
                "/api/v1/namespaces/team/pods",
                Some(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": { "name": name, "namespace": "team", "labels": { "app": "web" } },
                    "spec": { "nodeName": node, "containers": [{ "name": "web", "image": "nginx" }] },
                })),
            )
            .await;
            if node == NODES[0] {
                api.pod_running("team", &name).await;
            }
        }
        minter
    });
    let running = PODS.div_ceil(NODES.len());
    let lab = Lab::with_sshd();
    let served = serve_on_a_port(
        &lab,
        |resource| {
            format!(
                "{}{}",
                kube_config(&lab, &api, &minter, &idp.issuer, resource),
                lab.host("web-a", "tenant = \"a\"\ngroups = [\"ops\"]")
            )
        },
        &[],
    );
    let url = served.url.as_str();
    let admin = idp.token("tenant-a-admin", url, "mcp:tools");

    // The tools: the reducible ones declare the summary as their outputSchema and take `raw`.
    let (code, out) = py_http(url, Some(&admin), &["--list-tools"]);
    assert_eq!(code, 0, "{out}\nserve:\n{}", served.daemon.log_text());
    let tool = |name: &str| {
        out["tools_full"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .clone()
    };
    for name in ["k8s_list", "ssh_execute"] {
        let spec = tool(name);
        assert_eq!(
            spec["outputSchema"]["$defs"]["reduced"]["properties"]["reduced"]["const"], true,
            "{spec}"
        );
        assert_eq!(
            spec["inputSchema"]["properties"]["raw"]["type"], "boolean",
            "{spec}"
        );
    }
    let query_tool = tool("result_query");
    assert_eq!(
        query_tool["annotations"]["readOnlyHint"], true,
        "{query_tool}"
    );
    assert!(
        query_tool["inputSchema"]["properties"].get("raw").is_none(),
        "{query_tool}"
    );

    // 1. k8s_list on the real apiserver: a summary (the SDK validated it against the
    // outputSchema, else call_ok's exit code would be 3), one row per pod.
    let pods = call_ok(
        url,
        &admin,
        "k8s_list",
        &json!({ "cluster": "lab", "resource": "pods", "namespace": "team", "limit": 500 }),
    );
    let pods_handle = assert_summary(&pods, PODS, "kubernetes_list");
    let columns = column_names(&pods);
    assert!(
        columns.contains(&"Name") && columns.contains(&"Status"),
        "{pods}"
    );
    let rows = query(
        url,
        &admin,
        &pods_handle,
        "SELECT Status, count(*) AS n FROM result GROUP BY Status ORDER BY Status",
    );
    assert_eq!(
        rows,
        [
            json!(["Pending", PODS - running]),
            json!(["Running", running])
        ]
    );
    let rows = query(
        url,
        &admin,
        &pods_handle,
        "SELECT count(DISTINCT Name), min(Name), max(Name) FROM result",
    );
    assert_eq!(
        rows,
        [json!([PODS, "web-000", format!("web-{:03}", PODS - 1)])]
    );
    // The query the summary suggests runs as given.
    let suggested = pods["how_to_query"]["arguments"]["sql"].as_str().unwrap();
    let answer = call_ok(
        url,
        &admin,
        "result_query",
        &pods["how_to_query"]["arguments"],
    );
    assert!(
        answer["row_count"].as_u64().unwrap() > 0,
        "{suggested}: {answer}"
    );

    // The full objects: the node each pod is bound to is in `spec`, queried with JSON1.
    let full = call_ok(
        url,
        &admin,
        "k8s_list",
        &json!({ "cluster": "lab", "resource": "pods", "namespace": "team", "limit": 500, "output": "full" }),
    );
    // (`full` answers the list with its `kind`: a Kubernetes list too.)
    let full_handle = assert_summary(&full, PODS, "kubernetes_list");
    let rows = query(
        url,
        &admin,
        &full_handle,
        "SELECT spec->>'$.nodeName' AS node, count(*) AS n FROM result GROUP BY node ORDER BY node",
    );
    let per_node = PODS / NODES.len();
    assert_eq!(
        rows,
        NODES
            .iter()
            .map(|node| json!([node, per_node]))
            .collect::<Vec<_>>()
    );

    // Only the principal the rows were kept for may query them: another principal of the same
    // tenant, and another tenant's, get not_found (the handle is not theirs to know of).
    for (client, tenant) in [("tenant-a-agent", "a"), ("tenant-b-admin", "b")] {
        let other = idp.token(client, url, "mcp:tools");
        let (code, text) = call_refused(
            url,
            &other,
            "result_query",
            &json!({ "handle": pods_handle, "sql": "SELECT count(*) FROM result" }),
        );
        assert_eq!(code, "not_found", "{client} (tenant {tenant}): {text}");
        assert!(!text.contains("web-0"), "{text}");
    }

    // 2. ssh_execute on the real sshd: the journal's lines, the newest in the sample.
    let command = journal_command();
    let journal = call_ok(
        url,
        &admin,
        "ssh_execute",
        &json!({ "server": "web-a", "command": command }),
    );
    let journal_handle = assert_summary(&journal, LINES, "lines");
    let mut columns = column_names(&journal);
    columns.sort_unstable();
    assert_eq!(columns, ["line", "n"], "{journal}");
    let sample = journal["sample"].as_array().unwrap();
    let last = sample.last().unwrap();
    assert_eq!(last["n"], LINES, "{journal}");
    assert_eq!(last["line"], journal_line(LINES), "{journal}");
    assert_eq!(
        sample[0]["n"],
        LINES + 1 - sample.len(),
        "the last lines, in order: {journal}"
    );
    assert_eq!(journal["context"]["exit_code"], 0, "{journal}");
    let count_errors = "SELECT count(*) FROM result WHERE line LIKE '%error%'";
    let rows = query(url, &admin, &journal_handle, count_errors);
    assert_eq!(rows, [json!([LINES / ERROR_EVERY])]);
    let rows = query(
        url,
        &admin,
        &journal_handle,
        "SELECT n, line FROM result WHERE line LIKE '%error%' ORDER BY n DESC LIMIT 1",
    );
    let newest_error = LINES / ERROR_EVERY * ERROR_EVERY;
    assert_eq!(rows, [json!([newest_error, journal_line(newest_error)])]);

    // 3. raw: a result over the threshold but under the raw cap comes back whole.
    let numbers = "seq 1 2000";
    let whole: String = (1..=2000).map(|n| format!("{n}\n")).collect();
    assert!(whole.len() > ANSWER_MAX_BYTES);
    let reduced = call_ok(
        url,
        &admin,
        "ssh_execute",
        &json!({ "server": "web-a", "command": numbers }),
    );
    assert_summary(&reduced, 2000, "lines");
    let raw = call_ok(
        url,
        &admin,
        "ssh_execute",
        &json!({ "server": "web-a", "command": numbers, "raw": true }),
    );
    assert!(raw.get("reduced").is_none(), "{raw}");
    assert_eq!(raw["stdout"], whole.as_str());
    assert_eq!(raw["exit_code"], 0);

    // 5. The sandbox: anything but a read is a tool error that says it was refused.
    let attach = "ATTACH DATABASE '/tmp/meho-reduce-proof.db' AS other";
    let (code, text) = call_refused(
        url,
        &admin,
        "result_query",
        &json!({ "handle": journal_handle, "sql": attach }),
    );
    assert_eq!(code, "denied", "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains("ATTACH"), "{text}");
    assert!(!std::path::Path::new("/tmp/meho-reduce-proof.db").exists());

    // 4. The records: the reduced call's outcome names the handle and what was shown; the
    // query's intent carries its SQL; the raw call's outcome says it was raw.
    let outcomes = lab.audit(&[
        "--tenant",
        "a",
        "--action",
        "ssh_execute",
        "--kind",
        "outcome",
    ]);
    let outcome = outcomes
        .iter()
        .find(|r| r["body"]["reduction"]["handle"] == journal_handle.as_str())
        .unwrap_or_else(|| panic!("no outcome names {journal_handle}: {outcomes:?}"));
    let reduction = &outcome["body"]["reduction"];
    assert_eq!(outcome["principal"], "tenant-a-admin", "{outcome}");
    assert_eq!(outcome["target"], "web-a", "{outcome}");
    assert_eq!(reduction["rows"], LINES, "{outcome}");
    assert_eq!(reduction["kept_rows"], LINES, "{outcome}");
    assert_eq!(reduction["shape"], "lines", "{outcome}");
    assert_eq!(reduction["shown_bytes"], size_of(&journal), "{outcome}");
    assert_eq!(
        reduction["source_bytes"], journal["source_bytes"],
        "{outcome}"
    );
    assert_eq!(reduction["expires_at"], journal["expires_at"], "{outcome}");
    let raw_outcomes: Vec<&Value> = outcomes
        .iter()
        .filter(|r| r["body"]["reduction"]["raw"] == true)
        .collect();
    assert_eq!(raw_outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(
        raw_outcomes[0]["body"]["reduction"],
        json!({ "raw": true, "shown_bytes": size_of(&raw) })
    );
    let listed = lab.audit(&["--tenant", "a", "--action", "k8s_list", "--kind", "outcome"]);
    assert!(
        listed
            .iter()
            .any(|r| r["body"]["reduction"]["handle"] == pods_handle.as_str()
                && r["body"]["reduction"]["rows"] == PODS
                && r["body"]["reduction"]["shown_bytes"] == size_of(&pods)),
        "{listed:?}"
    );
    let intents = lab.audit(&[
        "--tenant",
        "a",
        "--action",
        "result_query",
        "--kind",
        "intent",
    ]);
    let intent = intents
        .iter()
        .find(|r| r["body"]["arguments"]["sql"] == count_errors)
        .unwrap_or_else(|| panic!("no intent carries the SQL: {intents:?}"));
    assert_eq!(intent["principal"], "tenant-a-admin", "{intent}");
    assert_eq!(intent["target"], journal_handle.as_str(), "{intent}");
    assert_eq!(
        intent["body"]["arguments"]["handle"],
        journal_handle.as_str(),
        "{intent}"
    );
    // The refused principals' attempts are on record, in their own tenants, and ran nothing.
    for (principal, tenant) in [("tenant-a-agent", "a"), ("tenant-b-admin", "b")] {
        let records = lab.audit(&["--tenant", tenant, "--principal", principal]);
        assert!(
            !records.is_empty() && records.iter().all(|r| r["kind"] != "intent"),
            "{principal}: {records:?}"
        );
    }

    served.stop();
    lab.assert_audit_verifies();
}
