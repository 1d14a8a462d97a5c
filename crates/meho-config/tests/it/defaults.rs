//! A config with only hosts is complete: everything else has a default.

use std::net::SocketAddr;
use std::path::Path;

use crate::{host, parse_ok};

#[test]
fn hosts_only_config_is_valid_and_gets_defaults() {
    let config = parse_ok(&host("web", ""));
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.data_dir, Path::new(".meho"));
    assert_eq!(config.store.url, None);
    assert_eq!(config.log.level, "info");
    assert!(config.warnings.is_empty(), "{:#?}", config.warnings);
    assert_eq!(config.source.as_deref(), Some(Path::new("meho.toml")));

    let web = &config.hosts["web"];
    assert_eq!(web.max_ttl_seconds, 300);
    assert_eq!(web.user, "deploy");
    assert_eq!(web.principal, "deploy", "principal defaults to user");
    assert_eq!(web.addr, "web.example:22");
    assert_eq!(web.jump, None);
    assert!(web.groups.is_empty());
    assert!(!web.allow_as_bastion);
    assert!(!web.allow_pty);
    assert!(!web.allow_file_transfer);
    assert!(!web.policy.allow_sudo);
    assert!(web.policy.policies.members().is_empty());
    assert!(!web.policy.policies.is_restricting());
}

#[test]
fn default_store_url_is_sqlite_in_the_data_dir() {
    let config = parse_ok(&host("web", ""));
    assert_eq!(
        config.store.effective_url(&config.server.data_dir),
        format!("sqlite://{}", Path::new(".meho").join("meho.db").display())
    );
}

#[test]
fn explicit_principal_overrides_user() {
    let config = parse_ok(&host("web", "principal = \"web-deploy\"\n"));
    assert_eq!(config.hosts["web"].principal, "web-deploy");
}

#[test]
fn empty_file_is_the_default_config() {
    let config = meho_config::Config::default_config().unwrap();
    assert!(config.hosts.is_empty());
    assert_eq!(
        config.server.listen.to_string(),
        meho_config::DEFAULT_LISTEN
    );
    assert_eq!(config.source, None);
}

#[test]
fn explicit_server_store_and_log_are_kept() {
    let text = format!(
        "[server]\nlisten = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/meho\"\n\n[store]\nurl = \"sqlite:///tmp/x.db\"\n\n[log]\nlevel = \"debug\"\n\n{}",
        host("web", "")
    );
    let config = parse_ok(&text);
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.server.data_dir, Path::new("/var/lib/meho"));
    assert_eq!(
        config.store.effective_url(&config.server.data_dir),
        "sqlite:///tmp/x.db"
    );
    assert_eq!(config.log.level, "debug");
}
