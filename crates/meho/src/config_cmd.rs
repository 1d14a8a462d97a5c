use crate::Failure;
use crate::cli::ConfigArgs;

#[expect(clippy::print_stdout, clippy::print_stderr, reason = "CLI output")]
pub(crate) fn validate(args: &ConfigArgs) -> Result<(), Failure> {
    let config = args.load_required()?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let file = config
        .source
        .as_ref()
        .map_or_else(|| "<config>".to_owned(), |p| p.display().to_string());
    println!(
        "ok: {file}: {} host(s), {} command polic{}",
        config.hosts.len(),
        config.command_policies.len(),
        if config.command_policies.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    Ok(())
}

#[expect(clippy::print_stdout, reason = "CLI output")]
pub(crate) fn schema() {
    print!("{}", meho_config::json_schema());
}
