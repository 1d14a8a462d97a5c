//! `meho`: the one binary. A thin clap front end over the library crates; it owns argument parsing,
//! output formatting and exit codes, and nothing else.
//!
//! Exit codes: 0 success (a policy denial is a successful answer), 1 runtime failure, 2 usage or
//! config error.

/// mimalloc: the server allocates many small JSON values per call from every worker thread, and
/// glibc malloc's arena locks made that a contended path (see `benches/mcp.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// First: its `outln!`/`out!` macros are used by the modules below.
#[macro_use]
mod output;
mod approvals_cmd;
mod audit_cmd;
mod ca_cmd;
mod cli;
mod config_cmd;
mod freeze_cmd;
mod grants_cmd;
mod mcp_cmd;
mod policy_api;
mod policy_cluster;
mod policy_cmd;
mod remote;
mod runtime;
mod secrets_cmd;
mod serve;
mod signer_cmd;
mod ssh_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, PolicyCommand};

/// An error with the exit status it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or an invalid config: exit 2.
    Usage(String),
    /// Something failed at run time: exit 1.
    Runtime(anyhow::Error),
    /// The command already reported what went wrong: exit with this status.
    Silent(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Runtime(err)
    }
}

impl From<meho_config::ConfigError> for Failure {
    fn from(err: meho_config::ConfigError) -> Self {
        Failure::Usage(err.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version(args) => cli::print_version(&args),
        Command::Config(ConfigCommand::Validate(args)) => config_cmd::validate(&args),
        Command::Config(ConfigCommand::Schema) => config_cmd::schema(),
        Command::Policy(PolicyCommand::Check(args)) => policy_cmd::check(&args),
        Command::Policy(PolicyCommand::Explain(args)) => policy_cmd::explain(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Mcp(args) => mcp_cmd::run(&args),
        Command::Audit(command) => audit_cmd::run(command),
        Command::Ca(command) => ca_cmd::run(&command),
        Command::Signer(args) => signer_cmd::run(&args),
        Command::Ssh(command) => ssh_cmd::run(&command),
        Command::Approvals(command) => approvals_cmd::run(command),
        Command::Grants(command) => grants_cmd::run(command),
        Command::Freeze(args) => freeze_cmd::freeze(&args),
        Command::Unfreeze(args) => freeze_cmd::unfreeze(&args),
        Command::Secrets(command) => secrets_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            report(&message);
            ExitCode::from(2)
        }
        // The reader went away (`meho audit tail | head -1`): what it wanted it got; end
        // quietly, as every command that prints does.
        Err(Failure::Runtime(err)) if output::closed_pipe(&err) => ExitCode::SUCCESS,
        Err(Failure::Runtime(err)) => {
            report(&format!("{err:#}"));
            ExitCode::from(1)
        }
        Err(Failure::Silent(code)) => ExitCode::from(code),
    }
}

#[expect(
    clippy::print_stderr,
    reason = "CLI error output goes to stderr by design"
)]
fn report(message: &str) {
    // Errors quote what the user or an agent sent (hosts, commands, ids): escaped for the screen.
    for line in message.lines() {
        eprintln!("error: {}", meho_core::display::escape(line));
    }
}
