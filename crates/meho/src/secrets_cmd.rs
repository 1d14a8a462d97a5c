//! `meho secrets …`: credentials meho stores for its connectors, sealed at rest
//! (`meho_store::secrets`), managed on the store directly (no server needed).
//!
//! A value only ever enters through stdin and never leaves: no command prints one. The key is
//! `MEHO_SECRETS_KEY`, else `[secrets] key_file`; `keygen` writes a new one and `rotate` moves
//! every stored secret onto it. Names and tenants reach the terminal escaped
//! (`meho_core::display::escape`); JSON output stays exact.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use meho_config::Config;
use meho_core::display::escape;
use meho_store::Store;
use meho_store::secrets::{MAX_VALUE_BYTES, SealedSecrets, SecretKey, SecretsError};
use serde_json::json;

use crate::Failure;
use crate::cli::{
    Format, SecretsCommand, SecretsDeleteArgs, SecretsKeygenArgs, SecretsListArgs,
    SecretsRotateArgs, SecretsSetArgs, StoreArgs,
};
use crate::output;
use crate::runtime::Paths;

pub(crate) fn run(command: SecretsCommand) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        SecretsCommand::Keygen(args) => keygen(&args),
        SecretsCommand::Set(args) => runtime.block_on(set(&args)),
        SecretsCommand::List(args) => runtime.block_on(list(&args)),
        SecretsCommand::Delete(args) => runtime.block_on(delete(&args)),
        SecretsCommand::Rotate(args) => runtime.block_on(rotate(&args)),
    }
}

/// A secrets error as the exit status it deserves: what the operator must fix in the config, the
/// key or the arguments is a usage error (2); the rest (a wrong key, a tampered row, the store)
/// is a runtime failure (1).
fn failure(err: SecretsError) -> Failure {
    match err {
        SecretsError::NoKey
        | SecretsError::Key(_)
        | SecretsError::KeyFile { .. }
        | SecretsError::InvalidName { .. }
        | SecretsError::InvalidTenant { .. }
        | SecretsError::ValueSize { .. } => Failure::Usage(with_causes(&err)),
        other => Failure::Runtime(other.into()),
    }
}

/// `err` and its causes, `: `-joined, as `report` prints a runtime error.
fn with_causes(err: &SecretsError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The configured key: `MEHO_SECRETS_KEY`, else `[secrets] key_file`, else none.
fn configured_key(config: &Config) -> Result<Option<SecretKey>, Failure> {
    SecretKey::load(config.secrets.key_file.as_deref()).map_err(failure)
}

impl StoreArgs {
    /// The config and the store the flags select. With `create`, a missing SQLite file is created
    /// (as `serve` would); without, it is an error, never a new empty database.
    async fn open_secrets_store(&self, create: bool) -> Result<(Config, Store), Failure> {
        let config = self.config.load_or_default()?;
        let Paths { url, .. } =
            Paths::new(&config, self.data_dir.as_deref(), self.store.as_deref());
        if !create
            && let Some(file) = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
        {
            let file = file.split('?').next().unwrap_or(file);
            if !Path::new(file).exists() {
                return Err(Failure::Usage(format!(
                    "no store at `{file}` (pass --data-dir DIR, --store URL or --config FILE)"
                )));
            }
        }
        let store = Store::open(&url).await.with_context(|| {
            format!(
                "cannot open the store `{}`",
                meho_store::mask_password(&url)
            )
        })?;
        Ok((config, store))
    }
}

fn keygen(args: &SecretsKeygenArgs) -> Result<(), Failure> {
    let key = SecretKey::generate().map_err(failure)?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure::Usage(format!(
                "`{}` already exists; refusing to replace a secrets key (what it sealed could no longer be opened)",
                args.out.display()
            )));
        }
        Err(err) => {
            return Err(Failure::Runtime(
                anyhow::Error::new(err).context(format!("cannot create `{}`", args.out.display())),
            ));
        }
    };
    file.write_all(format!("{}\n", key.to_base64()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    match args.format {
        Format::Text => output::print_text(&format!(
            "key file: {} (mode 0600; keep it off the database host's backups)\nkey id:   {}\n\
             use it: `[secrets] key_file = \"{}\"`, or MEHO_SECRETS_KEY=<its contents>",
            args.out.display(),
            key.id(),
            args.out.display()
        )),
        Format::Json => {
            output::print_raw(&json!({ "key_file": args.out, "key_id": key.id() }).to_string())
        }
    }
}

/// The value on stdin, one trailing newline (`\n` or `\r\n`) removed. Reads at most one byte
/// past the largest value, so an oversized input is refused without being held whole.
#[expect(
    clippy::print_stderr,
    reason = "the prompt goes to stderr so stdout stays the command's answer"
)]
fn read_value() -> Result<Vec<u8>, Failure> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the value from stdin (it is shown as typed); end it with Ctrl-D");
    }
    let limit = u64::try_from(MAX_VALUE_BYTES + 3).unwrap_or(u64::MAX);
    let mut value = Vec::new();
    stdin
        .lock()
        .take(limit)
        .read_to_end(&mut value)
        .context("cannot read the value from stdin")?;
    if value.ends_with(b"\r\n") {
        value.truncate(value.len() - 2);
    } else if value.ends_with(b"\n") {
        value.truncate(value.len() - 1);
    }
    Ok(value)
}

/// Overwrites a plaintext buffer before it is freed.
fn wipe(mut value: Vec<u8>) {
    value.fill(0);
    std::hint::black_box(&value);
}

async fn set(args: &SecretsSetArgs) -> Result<(), Failure> {
    let config = args.store.config.load_or_default()?;
    // The key first: without one nothing can be stored, and stdin is not read for nothing.
    let key = configured_key(&config)?.ok_or_else(|| failure(SecretsError::NoKey))?;
    let key_id = key.id();
    let value = read_value()?;
    let (_, store) = args.store.open_secrets_store(true).await?;
    let secrets = SealedSecrets::new(&store, Some(key));
    let outcome = secrets.put(&args.tenant, &args.name, &value).await;
    wipe(value);
    store.close().await;
    outcome.map_err(failure)?;
    match args.format {
        Format::Text => outln!(
            "stored `{}` in tenant `{}` (key {key_id})",
            escape(&args.name),
            escape(&args.tenant)
        ),
        Format::Json => output::print_raw(
            &json!({ "tenant": args.tenant, "name": args.name, "key_id": key_id }).to_string(),
        ),
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

async fn list(args: &SecretsListArgs) -> Result<(), Failure> {
    let (config, store) = args.store.open_secrets_store(false).await?;
    // Listing needs no key; with one, rows sealed under another key are pointed out.
    let key_id = configured_key(&config).ok().flatten().map(|key| key.id());
    let listed = SealedSecrets::new(&store, None).list(&args.tenant).await;
    store.close().await;
    let secrets = listed.map_err(failure)?;
    match args.format {
        Format::Json => output::print_raw(
            &json!({
                "tenant": args.tenant,
                "key_id": key_id,
                "secrets": secrets.iter().map(|meta| json!({
                    "name": meta.name,
                    "key_id": meta.key_id,
                    "created_at": rfc3339(meta.created_at),
                    "updated_at": rfc3339(meta.updated_at),
                })).collect::<Vec<_>>(),
            })
            .to_string(),
        ),
        Format::Text if secrets.is_empty() => {
            outln!("no secrets in tenant `{}`", escape(&args.tenant))
        }
        Format::Text => {
            let rows = secrets
                .iter()
                .map(|meta| {
                    let key = match &key_id {
                        Some(current) if current != &meta.key_id => {
                            format!("{} (not the configured key)", meta.key_id)
                        }
                        _ => meta.key_id.clone(),
                    };
                    [
                        meta.name.clone(),
                        key,
                        rfc3339(meta.created_at),
                        rfc3339(meta.updated_at),
                    ]
                })
                .collect();
            output::print_text(&output::table(
                ["NAME", "KEY ID", "CREATED", "UPDATED"],
                rows,
            ))
        }
    }
}

async fn delete(args: &SecretsDeleteArgs) -> Result<(), Failure> {
    let (_, store) = args.store.open_secrets_store(false).await?;
    let deleted = SealedSecrets::new(&store, None)
        .delete(&args.tenant, &args.name)
        .await;
    store.close().await;
    if !deleted.map_err(failure)? {
        return Err(Failure::Runtime(
            SecretsError::NotFound {
                tenant: args.tenant.clone(),
                name: args.name.clone(),
            }
            .into(),
        ));
    }
    match args.format {
        Format::Text => outln!(
            "deleted `{}` from tenant `{}`",
            escape(&args.name),
            escape(&args.tenant)
        ),
        Format::Json => output::print_raw(
            &json!({ "tenant": args.tenant, "name": args.name, "deleted": true }).to_string(),
        ),
    }
}

async fn rotate(args: &SecretsRotateArgs) -> Result<(), Failure> {
    let config = args.store.config.load_or_default()?;
    let old = configured_key(&config)?.ok_or_else(|| failure(SecretsError::NoKey))?;
    let new = SecretKey::from_file(&args.new_key_file).map_err(failure)?;
    let (_, store) = args.store.open_secrets_store(false).await?;
    let rotated = SealedSecrets::new(&store, None).rotate(&old, &new).await;
    store.close().await;
    let count = rotated.map_err(failure)?;
    match args.format {
        Format::Text => output::print_text(&format!(
            "re-encrypted {count} secret{} from key {} to key {}\n\
             now point `[secrets] key_file` (or MEHO_SECRETS_KEY) at `{}` and restart meho; the old key opens nothing any more",
            if count == 1 { "" } else { "s" },
            old.id(),
            new.id(),
            args.new_key_file.display()
        )),
        Format::Json => output::print_raw(
            &json!({
                "reencrypted": count,
                "old_key_id": old.id(),
                "new_key_id": new.id(),
                "new_key_file": args.new_key_file,
            })
            .to_string(),
        ),
    }
}
