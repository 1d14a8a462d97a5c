use meho_config::FileUse;

use crate::Failure;
use crate::cli::ConfigArgs;

#[expect(clippy::print_stderr, reason = "CLI output")]
pub(crate) fn validate(args: &ConfigArgs) -> Result<(), Failure> {
    let config = args.load_required()?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    // Every file the config names, whichever process reads it: a missing CA key must show
    // here, not when `serve` starts.
    config.check_files(&[
        FileUse::SshCa,
        FileUse::SignerTls,
        FileUse::BrokerTls,
        FileUse::Kube,
        FileUse::Api,
    ])?;
    let file = config
        .source
        .as_ref()
        .map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
    let clusters = if config.clusters.is_empty() {
        String::new()
    } else {
        format!(", {} cluster(s)", config.clusters.len())
    };
    let clusters = if config.apis.is_empty() {
        clusters
    } else {
        format!("{clusters}, {} api(s)", config.apis.len())
    };
    outln!(
        "ok: {file}: {} host(s), {} command polic{}{clusters}",
        config.hosts.len(),
        config.command_policies.len(),
        if config.command_policies.len() == 1 {
            "y"
        } else {
            "ies"
        }
    )?;
    Ok(())
}

pub(crate) fn schema() -> Result<(), Failure> {
    out!("{}", meho_config::json_schema())
}
