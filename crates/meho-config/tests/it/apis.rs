//! `[apis.*]` and `[vault]`: defaults, secret references, the rules, and located errors.

use meho_config::{ApiAuth, Presentation, SecretRef, SpecSource};

use crate::{parse_err, parse_ok, position_of};

const VAULT: &str =
    "[vault]\naddress = \"https://vault.example:8200\"\nauth_mount = \"jwt\"\nrole = \"meho\"\n";

#[test]
fn an_api_takes_its_defaults() {
    let config = parse_ok(
        "[apis.prom]\nbase_url = \"http://127.0.0.1:9090/\"\nspec = \"api:/openapi.json\"\n",
    );
    let api = &config.apis["prom"];
    assert_eq!(api.base_url.as_str(), "http://127.0.0.1:9090/");
    assert_eq!(api.spec, SpecSource::Api("/openapi.json".into()));
    assert_eq!(api.auth, ApiAuth::None);
    assert_eq!(api.tenant, "default");
    assert_eq!(api.timeout.as_secs(), 30);
    assert_eq!(api.max_response_bytes, 8 * 1024 * 1024);
    assert!(api.rules.is_none(), "no rules: the defaults apply");
    assert!(config.vault.is_none());
}

#[test]
fn secret_references_and_auth_kinds_are_typed() {
    let text = format!(
        "{VAULT}\n[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nauth = {{ kind = \"basic\", username = \"ops\", secret = \"vault:kv/app/db#password\" }}\n\n[apis.b]\nbase_url = \"https://b.example/v1\"\nspec = \"api:/s\"\nauth = {{ kind = \"vault_dynamic\", path = \"database/creds/ro\" }}\n\n[apis.c]\nbase_url = \"https://c.example\"\nspec = \"api:/s\"\nauth = {{ kind = \"header\", header = \"X-Api-Key\", secret = \"stored:c.key\" }}\n"
    );
    let config = parse_ok(&text);
    assert_eq!(
        config.apis["a"].auth,
        ApiAuth::Basic {
            username: Some("ops".into()),
            secret: SecretRef::Vault {
                mount: "kv".into(),
                path: "app/db".into(),
                field: Some("password".into()),
            },
        }
    );
    assert_eq!(
        config.apis["b"].auth,
        ApiAuth::VaultDynamic {
            path: "database/creds/ro".into(),
            present: Presentation::Basic,
        }
    );
    assert_eq!(
        config.apis["c"].auth,
        ApiAuth::Header {
            name: "X-Api-Key".into(),
            secret: SecretRef::Stored("c.key".into()),
        }
    );
    let vault = config.vault.unwrap();
    assert_eq!(vault.own_jwt_mount, "jwt", "defaults to auth_mount");
    assert_eq!(vault.audience, "vault");
}

#[test]
fn a_secret_written_in_the_clear_is_refused_at_its_value() {
    let text = "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nauth = { kind = \"bearer\", secret = \"ghp_plaintext\" }\n";
    let errors = parse_err(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("is not a secret reference"),
        "{errors:#?}"
    );
    assert!(!errors[0].message.is_empty());
    assert_eq!(errors[0].line, position_of(text, "auth =").0);
}

#[test]
fn plain_http_to_a_remote_address_is_refused() {
    let text = "[apis.a]\nbase_url = \"http://api.example\"\nspec = \"api:/s\"\n";
    let errors = parse_err(text);
    assert!(errors[0].message.contains("must be `https`"), "{errors:#?}");
    assert_eq!(
        (errors[0].line, errors[0].column),
        position_of(text, "\"http://api.example\"")
    );
    let text = "[apis.a]\nbase_url = \"https://u:p@api.example\"\nspec = \"api:/s\"\n";
    assert!(
        parse_err(text)[0]
            .message
            .contains("must not hold credentials")
    );
}

#[test]
fn a_vault_credential_needs_a_vault_section() {
    let text = "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nauth = { kind = \"vault_dynamic\", path = \"database/creds/ro\" }\n";
    let errors = parse_err(text);
    assert!(
        errors[0].message.contains("there is no [vault] section"),
        "{errors:#?}"
    );
}

#[test]
fn an_invalid_rule_is_located_at_its_pattern() {
    let text = "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nrules = [\n  { pattern = \"^GET \", effect = \"allow\" },\n  { pattern = \"(\", effect = \"deny\" },\n]\n";
    let errors = parse_err(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("a/rules[1]"), "{errors:#?}");
    assert_eq!(errors[0].line, position_of(text, "\"(\"").0);
}

#[test]
fn names_are_shared_with_hosts_and_clusters_and_keys_checked() {
    let text = "[hosts.web]\naddr = \"10.0.0.1:22\"\nuser = \"ops\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"\n\n[apis.web]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\n";
    let errors = parse_err(text);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("has the name of host `web`")),
        "{errors:#?}"
    );
    for (key, value) in [("timeout_seconds", "0"), ("max_response_bytes", "10")] {
        let text = format!(
            "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\n{key} = {value}\n"
        );
        let errors = parse_err(&text);
        assert!(errors[0].message.contains(key), "{errors:#?}");
    }
    let errors = parse_err(
        "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nauth = { kind = \"header\", header = \"Host\", secret = \"stored:x\" }\n",
    );
    assert!(
        errors[0].message.contains("cannot carry a credential"),
        "{errors:#?}"
    );
    let errors = parse_err(
        "[apis.a]\nbase_url = \"https://a.example\"\nspec = \"api:/s\"\nauth = { kind = \"none\", secret = \"stored:x\" }\n",
    );
    assert!(errors[0].message.contains("does not apply"), "{errors:#?}");
}
