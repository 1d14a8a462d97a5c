//! `meho ssh …`: SSH calls from the command line. Each one goes through the gateway's `ssh_*`
//! tools with the same signer, broker and audit log `meho serve` uses, so the CLI takes exactly
//! the path an agent's call takes: decide, credential, execute, audit.
//!
//! meho's own text (refusals, errors, warnings, tables) escapes control and bidi characters
//! (`meho_core::display::escape`): it quotes commands and paths. The remote command's stdout and
//! stderr, and a fetched file, pass through byte for byte, as with `ssh`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use comfy_table::{Table, presets::UTF8_HORIZONTAL_ONLY};
use meho_config::Config;
use meho_core::display::escape;
use meho_gateway::{Caller, ErrorCode, Gateway, Holds, ToolError};
use meho_policy::Decided;
use meho_ssh::broker::ExecResult;
use meho_ssh::wire::HostView;
use serde_json::{Value, json};

use crate::Failure;
use crate::cli::{Format, SshCommand, SshCommonArgs, SshExecArgs, SshGetArgs, SshPutArgs};
use crate::runtime::{self, Backplane, Paths, Process, Ssh};

pub(crate) fn run(command: &SshCommand) -> Result<(), Failure> {
    let common = command.common();
    let config = common.store.config.load_required()?;
    // Only problems reach stderr by default: it carries the remote command's stderr.
    runtime::init_tracing("warn");
    // Config warnings (policy lints among them) are `config validate`'s and `serve`'s to show;
    // repeating them on every one-shot would bury the remote command's own stderr.
    for warning in &config.warnings {
        tracing::debug!("{warning}");
    }
    let status = runtime::tokio_runtime()?.block_on(session(command, &config))?;
    match status {
        0 => Ok(()),
        code => Err(Failure::Silent(code)),
    }
}

/// Opens the backplane, runs the command, and always closes the audit log with a checkpoint.
/// Returns the exit status.
async fn session(command: &SshCommand, config: &Config) -> Result<u8, Failure> {
    let common = command.common();
    let paths = Paths::new(
        config,
        common.store.data_dir.as_deref(),
        common.store.store.as_deref(),
    );
    let backplane = Backplane::open(config, &paths, Process::Broker).await?;
    let result = call(command, config, &paths, &backplane).await;
    let closed = backplane.close().await;
    let status = result?;
    closed?;
    Ok(status)
}

async fn call(
    command: &SshCommand,
    config: &Config,
    paths: &Paths,
    backplane: &Backplane,
) -> Result<u8, Failure> {
    // The dev CA `meho serve --dev` made in this data directory is used when present, never
    // created here.
    let ssh = Ssh::start(config, &paths.data_dir, backplane, false)?;
    // A call that needs approval is refused here (the CLI cannot wait for one); agents ask
    // through MCP.
    let governance = backplane.governance(config, &config.server.effective_public_url(), None)?;
    let gateway = ssh.gateway(config, backplane, governance, Holds::Refuse, None)?;
    let caller = Caller::agent(caller_name(command.common()));
    let status = match command {
        SshCommand::Exec(args) => exec(&gateway, &caller, args).await,
        SshCommand::Hosts(args) => hosts(&gateway, &caller, &args.common).await,
        SshCommand::Put(args) => put(&gateway, &caller, args).await,
        SshCommand::Get(args) => get(&gateway, &caller, args).await,
    };
    ssh.broker.shutdown().await;
    status
}

/// `--caller`, else `cli:$USER`.
fn caller_name(common: &SshCommonArgs) -> String {
    common.caller.clone().unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        format!("cli:{user}")
    })
}

/// Runs one tool; a [`ToolError`] is reported (as JSON on stdout too, with `--format json`) and
/// becomes exit 2 for `invalid_arguments`, else exit 1.
async fn tool(
    gateway: &Gateway,
    caller: &Caller,
    format: Format,
    name: &str,
    arguments: Value,
) -> Result<Value, Failure> {
    match gateway.call(caller, name, arguments).await {
        Ok(value) => Ok(value),
        Err(err) => {
            if format == Format::Json {
                print_json(&json!({ "error": err }))?;
            }
            Err(tool_failure(&err))
        }
    }
}

fn tool_failure(err: &ToolError) -> Failure {
    // Refusals quote the command; one escaped line, so it cannot draw anything else.
    let message = format!("{}: {}", err.code, escape(&err.message));
    if err.code == ErrorCode::InvalidArguments {
        Failure::Usage(message)
    } else {
        Failure::Runtime(anyhow::anyhow!(message))
    }
}

fn print_json(value: &Value) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(())
}

fn write_out(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(())
}

fn write_err(bytes: &[u8]) {
    let mut stderr = std::io::stderr().lock();
    // Nowhere left to report a failing stderr.
    let _ = stderr.write_all(bytes).and_then(|()| stderr.flush());
}

fn unreadable(tool: &str, err: &serde_json::Error) -> Failure {
    Failure::Runtime(anyhow::anyhow!(
        "{tool} returned an unexpected result: {}",
        escape(&err.to_string())
    ))
}

async fn exec(gateway: &Gateway, caller: &Caller, args: &SshExecArgs) -> Result<u8, Failure> {
    let format = args.common.format;
    let arguments = json!({
        "server": args.host,
        "command": args.command.join(" "),
        "ttl_seconds": args.ttl,
        "sudo": args.sudo,
        "sudo_user": args.sudo_user,
        "pty": args.pty,
        "dry_run": args.dry_run,
    });
    let result = tool(gateway, caller, format, "ssh_execute", arguments).await?;
    if format == Format::Json {
        print_json(&result)?;
    }
    if args.dry_run {
        // A denial is an answer, as with `meho policy check`: exit 0.
        if format == Format::Text {
            let decision: Decided =
                serde_json::from_value(result.get("decision").cloned().unwrap_or(Value::Null))
                    .map_err(|err| unreadable("ssh_execute", &err))?;
            let text = crate::policy_cmd::decision_text(&decision);
            write_out(crate::output::escape_lines(&text).as_bytes())?;
        }
        return Ok(0);
    }
    let out: ExecResult =
        serde_json::from_value(result).map_err(|err| unreadable("ssh_execute", &err))?;
    if format == Format::Text {
        write_out(out.stdout.as_bytes())?;
        write_err(out.stderr.as_bytes());
        for warning in &out.warnings {
            write_err(format!("warning: {}\n", escape(warning)).as_bytes());
        }
        if out.timed_out {
            write_err(
                b"error: the command outran the exec timeout ([ssh] exec_timeout_seconds) and was stopped\n",
            );
        }
    }
    // The remote status is ours; none (timeout, signal) is a failure.
    Ok(out
        .exit_code
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1))
}

async fn hosts(gateway: &Gateway, caller: &Caller, common: &SshCommonArgs) -> Result<u8, Failure> {
    let result = tool(gateway, caller, common.format, "list_targets", json!({})).await?;
    if common.format == Format::Json {
        print_json(&result)?;
        return Ok(0);
    }
    let hosts: Vec<HostView> =
        serde_json::from_value(result.get("targets").cloned().unwrap_or(Value::Null))
            .map_err(|err| unreadable("list_targets", &err))?;
    let mut table = Table::new();
    table.load_preset(UTF8_HORIZONTAL_ONLY).set_header([
        "host", "addr", "user", "jump", "groups", "sudo", "pty", "files",
    ]);
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    for host in &hosts {
        table.add_row([
            escape(&host.name),
            escape(&host.addr),
            escape(&host.user),
            escape(host.jump.as_deref().unwrap_or("-")),
            escape(&host.groups.join(",")),
            yes_no(host.allow_sudo).into(),
            yes_no(host.allow_pty).into(),
            yes_no(host.allow_file_transfer).into(),
        ]);
    }
    write_out(format!("{table}\n").as_bytes())?;
    Ok(0)
}

fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

async fn put(gateway: &Gateway, caller: &Caller, args: &SshPutArgs) -> Result<u8, Failure> {
    let data = if is_dash(&args.local_file) {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("cannot read stdin")?;
        data
    } else {
        std::fs::read(&args.local_file)
            .with_context(|| format!("cannot read `{}`", args.local_file.display()))?
    };
    let arguments = json!({
        "server": args.host,
        "path": args.remote_path,
        "content_base64": BASE64.encode(&data),
    });
    let format = args.common.format;
    let result = tool(gateway, caller, format, "ssh_put_file", arguments).await?;
    match format {
        Format::Json => print_json(&result)?,
        Format::Text => write_out(
            format!(
                "{}:{}: {} bytes written (sha256 {}, certificate serial {})\n",
                escape(&args.host),
                escape(&args.remote_path),
                data.len(),
                escape(result.get("sha256").and_then(Value::as_str).unwrap_or("-")),
                result
                    .get("serial")
                    .map_or_else(|| "-".to_owned(), Value::to_string),
            )
            .as_bytes(),
        )?,
    }
    Ok(0)
}

/// Where `ssh get` writes: `None` is stdout.
fn destination(args: &SshGetArgs) -> Result<Option<PathBuf>, Failure> {
    match &args.local_file {
        Some(path) if is_dash(path) => Ok(None),
        Some(path) => Ok(Some(path.clone())),
        None => {
            let name = Path::new(&args.remote_path)
                .file_name()
                .filter(|name| *name != "." && *name != "..")
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "`{}` names no file; give LOCAL_FILE (or `-` for stdout)",
                        escape(&args.remote_path)
                    ))
                })?;
            Ok(Some(PathBuf::from(name)))
        }
    }
}

async fn get(gateway: &Gateway, caller: &Caller, args: &SshGetArgs) -> Result<u8, Failure> {
    let destination = destination(args)?;
    let format = args.common.format;
    let arguments = json!({ "server": args.host, "path": args.remote_path });
    let mut result = tool(gateway, caller, format, "ssh_get_file", arguments).await?;
    let data = match (
        result.get("content").and_then(Value::as_str),
        result.get("content_base64").and_then(Value::as_str),
    ) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => BASE64
            .decode(encoded)
            .context("ssh_get_file returned invalid base64")?,
        (None, None) => {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "ssh_get_file returned no content"
            )));
        }
    };
    let Some(path) = destination else {
        // Stdout is the file: with --format json, the tool result (content included) is.
        match format {
            Format::Json => print_json(&result)?,
            Format::Text => write_out(&data)?,
        }
        return Ok(0);
    };
    std::fs::write(&path, &data).with_context(|| format!("cannot write `{}`", path.display()))?;
    match format {
        Format::Json => {
            if let Some(object) = result.as_object_mut() {
                object.remove("content");
                object.remove("content_base64");
                object.insert("local_file".into(), json!(path));
            }
            print_json(&result)?;
        }
        Format::Text => write_out(
            format!(
                "{}:{} -> {}: {} bytes (sha256 {}, certificate serial {})\n",
                escape(&args.host),
                escape(&args.remote_path),
                escape(&path.display().to_string()),
                data.len(),
                escape(result.get("sha256").and_then(Value::as_str).unwrap_or("-")),
                result
                    .get("serial")
                    .map_or_else(|| "-".to_owned(), Value::to_string),
            )
            .as_bytes(),
        )?,
    }
    Ok(0)
}
