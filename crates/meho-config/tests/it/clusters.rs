//! `[clusters.<name>]`: the Kubernetes targets.

use meho_core::{Effect, Tier};
use meho_policy::Overlay;
use meho_policy::kube::KubeAction;

use crate::{host, parse_err, parse_ok};

/// A minimal valid cluster table named `name`, followed by `extra` lines in the same table.
fn cluster(name: &str, extra: &str) -> String {
    format!(
        "[clusters.{name}]\napi_server = \"https://10.0.0.1:6443\"\nca_cert = \"ca.pem\"\n\
         minter_token_file = \"minter.token\"\n\
         sa_bindings = [{{ groups = [\"sre\"], namespace = \"meho\", service_account = \"sre\" }}, {{ namespace = \"meho\", service_account = \"viewer\" }}]\n{extra}"
    )
}

#[test]
fn a_cluster_loads_with_its_defaults_bindings_and_rules() {
    let text = cluster(
        "prod",
        "rules = [\n\
           { verbs = [\"get\", \"list\", \"logs\"], resources = [\"*\"], effect = \"allow\" },\n\
           { verbs = [\"delete\"], resources = [\"pods\"], namespaces = [\"web\"], effect = \"require_approval\" },\n\
           { verbs = [\"*\"], resources = [\"secrets\"], effect = \"deny\" },\n\
         ]\n",
    );
    let config = parse_ok(&text);
    let prod = &config.clusters["prod"];
    assert_eq!(prod.token_ttl_seconds, 600);
    assert_eq!(prod.tenant, "default");
    assert_eq!(prod.api_server, "https://10.0.0.1:6443");
    let sre = prod.binding_for(Some(&["sre".to_owned()])).unwrap();
    assert_eq!(
        (sre.namespace.as_str(), sre.service_account.as_str()),
        ("meho", "sre")
    );
    let other = prod.binding_for(Some(&["dev".to_owned()])).unwrap();
    assert_eq!(other.service_account, "viewer");
    assert_eq!(prod.binding_for(None).unwrap().service_account, "viewer");
    let decide = |action: &str| {
        prod.policy
            .decide(
                &KubeAction::parse(action).unwrap(),
                "agent",
                "",
                0,
                Overlay::default(),
            )
            .decision
    };
    assert_eq!(decide("list pods web/-").effect, Effect::Allow);
    let delete = decide("delete pods web/api-1");
    assert_eq!(delete.effect, Effect::RequireApproval);
    assert_eq!(delete.tier, Tier::Destructive);
    assert_eq!(decide("get secrets web/db").effect, Effect::Deny);
    assert_eq!(decide("apply pods web/api-1").effect, Effect::Deny);
}

#[test]
fn a_cluster_named_like_a_host_is_refused_naming_both() {
    let text = format!("{}\n{}", host("edge", ""), cluster("edge", "rules = []\n"));
    let errors = parse_err(&text);
    let message = &errors[0].message;
    assert!(message.contains("cluster `edge`"), "{message}");
    assert!(message.contains("[hosts.edge]"), "{message}");
    assert!(errors[0].line > 0);
}

#[test]
fn bad_cluster_fields_are_located_errors() {
    for (extra, needle) in [
        ("token_ttl_seconds = 300\n", "token_ttl_seconds = 300"),
        ("token_ttl_seconds = 901\n", "out of range"),
        (
            "rules = [{ verbs = [\"get\"], resources = [\"deployments\"], effect = \"allow\" }]\n",
            "deployments.apps",
        ),
        (
            "rules = [{ verbs = [\"exec\"], resources = [\"pods\"], effect = \"allow\" }]\n",
            "verb `exec`",
        ),
        (
            "rules = [{ verbs = [\"get\"], resources = [\"pods\"], namespaces = [\"Prod\"], effect = \"allow\" }]\n",
            "namespace `Prod`",
        ),
        (
            "rules = [{ verbs = [\"get\"], resources = [\"secrets\"], effect = \"deny\", reveal = true }]\n",
            "reveal",
        ),
        ("tenant = \"_system\"\n", "reserved"),
    ] {
        let errors = parse_err(&cluster("c1", extra));
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains(needle) && e.line > 0),
            "{extra}: {errors:?}"
        );
    }
    let errors = parse_err(&cluster("c1", "").replace("https://10.0.0.1:6443", "http://10.0.0.1"));
    assert!(errors[0].message.contains("https://host"), "{errors:?}");
    let no_bindings = "[clusters.c2]\napi_server = \"https://k:6443\"\nca_cert = \"a\"\nminter_token_file = \"b\"\n";
    let errors = parse_err(no_bindings);
    assert!(
        errors[0].message.contains("sa_bindings is empty"),
        "{errors:?}"
    );
    let bad_sa =
        cluster("c3", "").replace("service_account = \"sre\"", "service_account = \"SRE\"");
    assert!(
        parse_err(&bad_sa)[0]
            .message
            .contains("sa_bindings[0].service_account")
    );
}

#[test]
fn a_cluster_without_rules_loads_with_a_warning() {
    let config = parse_ok(&cluster("quiet", ""));
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.message.contains("every action on it is denied"))
    );
}
