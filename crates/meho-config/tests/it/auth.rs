//! `[auth]`, `[tenancy]`, `[mcp]` and host tenants.

use meho_config::Role;

use crate::{host, parse_err, parse_ok};

#[test]
fn auth_defaults_and_full_settings() {
    let config = parse_ok(&host("web", ""));
    assert_eq!(config.auth.issuer, None);
    assert_eq!(config.auth.user_claim, "sub");
    assert_eq!(config.auth.tenant_claim, "tenant_id");
    assert_eq!(config.auth.role_claim, "tenant_role");
    assert_eq!(config.auth.groups_claim, None);
    assert_eq!(config.auth.clock_skew_seconds, 60);
    assert!(!config.tenancy_enabled);
    assert_eq!(config.hosts["web"].tenant, "default");
    assert_eq!(config.mcp.stdio_tenant, "default");
    assert_eq!(config.mcp.stdio_role, Role::TenantAdmin);

    let config = parse_ok(&format!(
        "{}\n[auth]\nissuer = \"https://idp.example/\"\naudience = \"https://meho.example/mcp\"\n\
         required_scopes = [\"mcp:tools\"]\ngroups_claim = \"groups\"\nclock_skew_seconds = 30\n\
         [tenancy]\nenabled = true\n[mcp.stdio]\nprincipal = \"alice\"\nrole = \"read_only\"\n",
        host("web", "tenant = \"acme\"")
    ));
    assert_eq!(config.auth.issuer.as_deref(), Some("https://idp.example"));
    assert_eq!(config.auth.groups_claim.as_deref(), Some("groups"));
    assert!(config.tenancy_enabled);
    assert_eq!(config.hosts["web"].tenant, "acme");
    assert_eq!(config.mcp.stdio_principal.as_deref(), Some("alice"));
    assert_eq!(config.mcp.stdio_role, Role::ReadOnly);
}

#[test]
fn bad_auth_settings_are_errors() {
    let cases = [
        (
            "[auth]\nissuer = \"https://idp.example\"\n",
            "needs audience",
        ),
        (
            "[auth]\nissuer = \"idp.example\"\naudience = \"https://m/mcp\"\n",
            "http(s) URL",
        ),
        ("[auth]\naudience = \"m/mcp\"\n", "http(s) URL"),
        ("[auth]\nclock_skew_seconds = 3600\n", "at most 300"),
        ("[auth]\nuser_claim = \"\"\n", "must not be empty"),
        ("[mcp.stdio]\nrole = \"root\"\n", "not one of"),
        ("[tenancy]\nenabled = \"yes\"\n", "invalid type"),
    ];
    for (section, words) in cases {
        let diagnostics = parse_err(&format!("{}\n{section}", host("web", "")));
        assert!(
            diagnostics.iter().any(|d| d.message.contains(words)),
            "{section}: {diagnostics:#?}"
        );
    }
}

#[test]
fn reserved_tenant_names_are_refused() {
    for text in [
        host("web", "tenant = \"_system\""),
        format!("{}\n[mcp.stdio]\ntenant = \"_x\"\n", host("web", "")),
        host("web", "tenant = \"\""),
    ] {
        let diagnostics = parse_err(&text);
        assert!(
            diagnostics.iter().any(|d| d.message.contains("reserved")),
            "{text}: {diagnostics:#?}"
        );
    }
    assert!(!meho_config::is_valid_tenant(meho_config::SYSTEM_TENANT));
    assert!(meho_config::is_valid_tenant("acme"));
}

#[test]
fn approvals_settings() {
    let config = parse_ok(&host("web", ""));
    assert_eq!(config.approvals.ttl_seconds, 600);
    assert_eq!(config.approvals.approver_roles, [Role::TenantAdmin]);
    assert!(!config.approvals.allow_self_approval);
    let config = parse_ok(&format!(
        "{}\n[approvals]\nttl_seconds = 120\napprover_roles = [\"tenant_admin\", \"operator\"]\nallow_self_approval = true\n",
        host("web", "")
    ));
    assert_eq!(config.approvals.ttl_seconds, 120);
    assert_eq!(
        config.approvals.approver_roles,
        [Role::TenantAdmin, Role::Operator]
    );
    assert!(config.approvals.allow_self_approval);
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.message.contains("allow_self_approval")),
        "self-approval is warned about"
    );
    for (section, words) in [
        ("[approvals]\nttl_seconds = 1\n", "between 10 and 86400"),
        ("[approvals]\napprover_roles = [\"root\"]\n", "not one of"),
        ("[approvals]\napprover_roles = []\n", "at least one role"),
    ] {
        let diagnostics = parse_err(&format!("{}\n{section}", host("web", "")));
        assert!(
            diagnostics.iter().any(|d| d.message.contains(words)),
            "{section}: {diagnostics:#?}"
        );
    }
}
