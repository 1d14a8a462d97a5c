use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::Failure;

/// meho: a governance backplane between AI agents and the infrastructure they operate.
#[derive(Debug, Parser)]
#[command(name = "meho", version, propagate_version = true, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the version of this build.
    Version(VersionArgs),
    /// Check and describe meho.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Decide and explain commands against a host's policy, offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the server: health, readiness and metrics on `[server] listen`.
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a config file; errors give file, line and column and exit with status 2.
    Validate(ConfigArgs),
    /// Print the JSON schema of meho.toml.
    Schema,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide one command against a host's composed policy (a denial is a result: exit 0).
    Check(CheckArgs),
    /// Print a host's composed policy and, given a command, the step-by-step decision.
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct VersionArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The config file. Default: `./meho.toml`.
    #[arg(long, short = 'c', env = "MEHO_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file to read: `--config`, `MEHO_CONFIG`, or `./meho.toml` when it exists.
    pub(crate) fn resolve(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let local = Path::new("meho.toml");
            local.exists().then(|| local.to_path_buf())
        })
    }

    /// Loads the config, which must exist.
    pub(crate) fn load_required(&self) -> Result<meho_config::Config, Failure> {
        let path = self.resolve().ok_or_else(|| {
            Failure::Usage(
                "no config file: pass --config FILE, set MEHO_CONFIG, or create ./meho.toml".into(),
            )
        })?;
        Ok(meho_config::Config::load(&path)?)
    }
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The host, as named under `[hosts.<name>]`.
    #[arg(long, value_name = "NAME")]
    pub(crate) host: String,
    /// Run the command under `sudo -n` (as root unless --sudo-user is given).
    #[arg(long)]
    pub(crate) sudo: bool,
    /// Run the command under `sudo -n -u USER`; implies --sudo.
    #[arg(long, value_name = "USER")]
    pub(crate) sudo_user: Option<String>,
    /// The caller (agent) identity, for waivers and audit.
    #[arg(long, default_value = "cli", value_name = "ID")]
    pub(crate) caller: String,
    /// The end user behind the caller.
    #[arg(long, default_value = "", value_name = "USER")]
    pub(crate) end_user: String,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// The command line, exactly as an agent would send it.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub(crate) command: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// A command line to decide step by step.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub(crate) command: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Listen on this address instead of `[server] listen`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Keep state here instead of `[server] data_dir`.
    #[arg(long, env = "MEHO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[expect(clippy::print_stdout, reason = "CLI output")]
pub(crate) fn print_version(args: &VersionArgs) {
    let version = env!("CARGO_PKG_VERSION");
    match args.format {
        Format::Text => println!("meho {version}"),
        Format::Json => println!(
            "{}",
            serde_json::json!({ "name": "meho", "version": version })
        ),
    }
}
