//! The Kubernetes lab is real: a kube-apiserver of Kubernetes 1.36 with etcd, RBAC, TokenRequest
//! and its audit log, proxying pod logs to the harness's stub kubelet. Each test starts its own
//! apiserver, so they run in parallel.

use std::process::Command;
use std::time::Duration;

use meho_test_support::kube::{KubeApiserver, kubectl};
use serde_json::{Value, json};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
spec:
  nodeName: node-a
  containers:
    - name: app
      image: registry.invalid/app:1
    - name: sidecar
      image: registry.invalid/sidecar:1
"#;

fn token_request() -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": 600 },
    })
}

fn self_subject_review() -> Value {
    json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview" })
}

#[tokio::test]
async fn pod_logs_are_proxied_by_the_apiserver_to_the_stub_kubelet() {
    let Some(kube) = KubeApiserver::start().await else {
        return;
    };
    kube.node("node-a").await;
    kube.apply(SHOP).await;
    kube.pod_running("shop", "web").await;
    kube.set_logs("shop", "web", "app", &["one", "two", "three"]);
    kube.set_logs("shop", "web", "sidecar", &["side"]);

    let (status, body) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=app&tailLines=2",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}\n{}", kube.log());
    assert_eq!(body["raw"], "two\nthree\n");
    let seen = kube.kubelet_requests();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("/containerLogs/shop/web/app?") && r.contains("tailLines=2")),
        "{seen:?}"
    );

    let (status, body) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=app&limitBytes=6",
            None,
        )
        .await;
    assert_eq!((status, &body["raw"]), (200, &json!("one\ntw")));
    let (status, body) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=sidecar&timestamps=true",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let line = body["raw"].as_str().unwrap();
    assert!(line.ends_with("Z side\n"), "{line:?}");

    // previous=true without a previous instance: the kubelet's refusal comes back through.
    let (status, body) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=app&previous=true",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("previous terminated container")),
        "{body}"
    );
    kube.set_previous_logs("shop", "web", "app", &["before the restart"]);
    let (status, body) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=app&previous=true",
            None,
        )
        .await;
    assert_eq!(
        (status, &body["raw"]),
        (200, &json!("before the restart\n"))
    );

    // A container the pod does not have is refused by the apiserver itself.
    let (status, _) = kube
        .admin(
            "GET",
            "/api/v1/namespaces/shop/pods/web/log?container=nope",
            None,
        )
        .await;
    assert_eq!(status, 400);

    let node = kube.admin_ok("GET", "/api/v1/nodes/node-a", None).await;
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    let pod = kube
        .admin_ok("GET", "/api/v1/namespaces/shop/pods/web", None)
        .await;
    assert_eq!(pod["status"]["phase"], "Running");

    // The same through a real kubectl, when there is one.
    if let Some(kubectl) = kubectl() {
        let config = kube.kubeconfig(kube.admin_token());
        let out = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&config)
            .args(["logs", "-n", "shop", "web", "-c", "app", "--tail=1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "three\n");
    }
}

#[tokio::test]
async fn the_minter_can_only_mint_for_its_listed_service_accounts() {
    let Some(kube) = KubeApiserver::start().await else {
        return;
    };
    let path = kube
        .minter(&[("shop", "deployer"), ("shop", "reader"), ("ops", "runner")])
        .await;
    let minter = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(!minter.is_empty());
    assert_eq!(kube.token_requests(Some("meho-system/meho-minter")), 1);
    kube.apply(
        r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "intruder", "namespace": "shop"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": "other"}}
        ]}"#,
    )
    .await;

    // The minter authenticates as its ServiceAccount.
    let (status, review) = kube
        .request(
            &minter,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(self_subject_review()),
        )
        .await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:meho-system:meho-minter"
    );

    // It mints for a listed account, and that token is the account.
    let total = kube.token_requests(None);
    let (status, body) = kube
        .request(
            &minter,
            "POST",
            "/api/v1/namespaces/shop/serviceaccounts/deployer/token",
            Some(token_request()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(kube.token_requests(Some("shop/deployer")), 1);
    assert_eq!(kube.token_requests(None), total + 1);
    let deployer = body["status"]["token"].as_str().unwrap();
    let (status, review) = kube
        .request(
            deployer,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(self_subject_review()),
        )
        .await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:shop:deployer"
    );
    let (status, _) = kube
        .request(
            &minter,
            "POST",
            "/api/v1/namespaces/ops/serviceaccounts/runner/token",
            Some(token_request()),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(kube.token_requests(Some("ops/runner")), 1);
    assert_eq!(kube.token_requests(None), total + 2);

    // Not for an account it was not given, in a namespace it has or one it has not.
    for (ns, sa) in [("shop", "intruder"), ("other", "deployer")] {
        let (status, body) = kube
            .request(
                &minter,
                "POST",
                &format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"),
                Some(token_request()),
            )
            .await;
        assert_eq!(status, 403, "{ns}/{sa}: {body}");
        assert_eq!(kube.token_requests(Some(&format!("{ns}/{sa}"))), 0);
        assert_eq!(kube.token_requests_refused(Some(&format!("{ns}/{sa}"))), 1);
    }
    assert_eq!(kube.token_requests(None), total + 2);

    // And nothing else: no pods, no secrets, not even the ServiceAccounts themselves.
    for path in [
        "/api/v1/namespaces/shop/pods",
        "/api/v1/pods",
        "/api/v1/namespaces/shop/secrets",
        "/api/v1/namespaces/shop/serviceaccounts/deployer",
    ] {
        let (status, body) = kube.request(&minter, "GET", path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }

    // Each mint is one more, as the admin's are.
    kube.token("shop", "reader", 600).await;
    kube.token("shop", "reader", 600).await;
    assert_eq!(kube.token_requests(Some("shop/reader")), 2);
    assert_eq!(kube.token_requests(None), total + 4);
}

#[tokio::test]
async fn the_lab_reports_its_cold_start_and_memory() {
    let Some(kube) = KubeApiserver::start().await else {
        return;
    };
    let cold = kube.cold_start();
    let rss = kube.rss_kib();
    eprintln!(
        "kube-apiserver (with etcd): cold start {:.2} s, RSS {} MiB ({rss} KiB)",
        cold.as_secs_f64(),
        rss / 1024
    );
    assert!(cold > Duration::from_millis(100) && cold < Duration::from_secs(180));
    assert!((50 * 1024..4 * 1024 * 1024).contains(&rss), "{rss} KiB");

    let version = kube.admin_ok("GET", "/version", None).await;
    eprintln!("kube-apiserver version {}", version["gitVersion"]);
    assert!(
        version["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.36.")),
        "{version}"
    );

    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match kubectl() {
        Some(kubectl) => {
            let config = kube.kubeconfig(kube.admin_token());
            let out = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&config)
                .args(["get", "namespaces", "-o", "name"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
            let version = Command::new(&kubectl)
                .args(["version", "--client", "-o", "json"])
                .output()
                .unwrap();
            let version: Value = serde_json::from_slice(&version.stdout).unwrap();
            eprintln!(
                "kubectl {} ({})",
                version["clientVersion"]["gitVersion"],
                kubectl.display()
            );
        }
        None if ci => panic!("kubectl missing under CI; scripts/test provides it (MEHO_KUBECTL)"),
        None => eprintln!("no kubectl (MEHO_KUBECTL or on PATH); skipping its check"),
    }
}
