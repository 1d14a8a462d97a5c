//! Pod logs, proxied by the apiserver to the kubelet (the harness's stub): the tail, the
//! container, the previous instance, and the byte cap.

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::support::{READS, Spec, env, failed};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: NS }
spec:
  nodeName: node-a
  containers:
    - { name: app, image: registry.invalid/app:1 }
    - { name: sidecar, image: registry.invalid/sidecar:1 }
"#;

#[tokio::test]
async fn logs_come_from_the_kubelet_tailed_and_capped() {
    let Some(env) = env(Spec {
        cluster: &format!("rules = [{READS}]"),
        ..Spec::new("logs")
    })
    .await
    else {
        return;
    };
    env.shared.node("node-a").await;
    env.apply(POD).await;
    env.shared.pod_running(&env.ns, "web").await;
    let ns = env.ns.clone();
    let kube = env.kube();
    let lines: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    kube.set_logs(
        &ns,
        "web",
        "app",
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    kube.set_logs(&ns, "web", "sidecar", &["side"]);
    let logs = |extra: Value| {
        let mut args =
            json!({ "cluster": "lab", "namespace": ns, "pod": "web", "container": "app" });
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        env.call("k8s_logs", args)
    };

    // The last 200 lines by default.
    let tail = logs(json!({})).await.unwrap();
    let text = tail["log"].as_str().unwrap();
    assert_eq!(text.lines().count(), 200);
    assert!(
        text.starts_with("line 101\n") && text.ends_with("line 300\n"),
        "{text}"
    );
    assert_eq!(tail["truncated"], false);
    let five = logs(json!({ "tail_lines": 5 })).await.unwrap();
    assert_eq!(
        five["log"],
        "line 296\nline 297\nline 298\nline 299\nline 300\n"
    );
    assert_eq!(five["bytes"], 45);
    let side = logs(json!({ "container": "sidecar" })).await.unwrap();
    assert_eq!(side["log"], "side\n");
    let seen = kube.kubelet_requests();
    assert!(
        seen.iter()
            .any(|r| r.starts_with(&format!("/containerLogs/{ns}/web/app?"))
                && r.contains("tailLines=5")),
        "{seen:?}"
    );

    // Two containers: one must be named (the server says so).
    let err = failed(
        env.call(
            "k8s_logs",
            json!({ "cluster": "lab", "namespace": ns, "pod": "web" }),
        )
        .await,
        "invalid_arguments",
    );
    assert!(err.message.contains("container"), "{err:?}");

    // The previous instance, when there is one.
    let err = failed(logs(json!({ "previous": true })).await, "invalid_arguments");
    assert!(
        err.message.contains("previous terminated container"),
        "{err:?}"
    );
    kube.set_previous_logs(&ns, "web", "app", &["before the crash"]);
    let previous = logs(json!({ "previous": true })).await.unwrap();
    assert_eq!(previous["log"], "before the crash\n");

    // More than the cap: cut at the cap, and said so.
    let cap = meho_kube::LOG_CAP_BYTES;
    let long = "x".repeat(1023);
    let many: Vec<&str> = (0..400).map(|_| long.as_str()).collect();
    kube.set_logs(&ns, "web", "app", &many);
    let capped = logs(json!({ "tail_lines": 400 })).await.unwrap();
    assert_eq!(capped["truncated"], true);
    assert_eq!(capped["bytes"], cap);
    assert_eq!(capped["log"].as_str().unwrap().len(), cap);
    // The outcome record describes the result the caller got.
    let outcome = env.records_where("outcome", "k8s_logs").await;
    let recorded = crate::support::body(outcome.last().unwrap());
    let result = serde_json::to_vec(&capped).unwrap();
    assert_eq!(recorded["output_bytes"], result.len());
    assert_eq!(
        recorded["output_sha256"],
        hex::encode(sha2::Sha256::digest(&result))
    );

    // A character that straddles the cap is left out whole; the log is still text.
    let mut wide = "x".repeat(cap - 1);
    wide.push('€');
    wide.push_str("tail");
    kube.set_logs(&ns, "web", "app", &[wide.as_str()]);
    let cut = logs(json!({})).await.unwrap();
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["log"].as_str().unwrap(), &wide[..cap - 1]);
    // Lines newer than since_seconds.
    let now = time::OffsetDateTime::now_utc();
    kube.set_logs_at(
        &ns,
        "web",
        "app",
        &[
            (now - time::Duration::hours(2), "old"),
            (now - time::Duration::seconds(5), "new"),
        ],
    );
    let recent = logs(json!({ "since_seconds": 600 })).await.unwrap();
    assert_eq!(recent["log"], "new\n");
    failed(logs(json!({ "tail_lines": 0 })).await, "invalid_arguments");
    failed(
        logs(json!({ "container": "Bad_Name" })).await,
        "invalid_arguments",
    );
}
