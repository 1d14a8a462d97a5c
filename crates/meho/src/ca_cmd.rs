//! `meho ca …`: SSH certificate authority keys.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use meho_config::CaSource;
use meho_ssh::ca::CaKey;
use serde_json::json;

use crate::Failure;
use crate::cli::{CaCommand, CaInitArgs, CaShowArgs, Format};
use crate::runtime::Paths;

pub(crate) fn run(command: &CaCommand) -> Result<(), Failure> {
    match command {
        CaCommand::Init(args) => init(args),
        CaCommand::Show(args) => show(args),
    }
}

#[expect(
    clippy::print_stderr,
    reason = "the hint goes to stderr so stdout is exactly the public line"
)]
fn init(args: &CaInitArgs) -> Result<(), Failure> {
    let key = CaKey::init(&args.out).map_err(|err| Failure::Runtime(err.into()))?;
    let public = meho_ssh::ca::public_path_of(&args.out);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", key.public_line())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    eprintln!(
        "wrote {} (mode 0600, keep it secret) and {}; add this line to sshd's TrustedUserCAKeys",
        args.out.display(),
        public.display()
    );
    Ok(())
}

/// One CA as `ca show` lists it.
struct Shown {
    group: String,
    /// Key files only: a Vault CA's key is in Vault.
    fingerprint: Option<String>,
    public_line: Option<String>,
    /// The key file, or `vault:<address> <mount>/sign/<role>`.
    location: String,
    path: Option<PathBuf>,
    vault: Option<serde_json::Value>,
    dev: bool,
}

#[expect(clippy::print_stderr, reason = "CLI output")]
fn show(args: &CaShowArgs) -> Result<(), Failure> {
    let config = args.config.load_or_default()?;
    let mut shown = Vec::new();
    // `_default` first, as the signer falls back to it. A Vault CA is listed without reaching
    // Vault (its public key is at `<address>/v1/<mount>/public_key`).
    let groups = config
        .ca_keys
        .iter()
        .filter(|(group, _)| group.as_str() == meho_config::DEFAULT_GROUP)
        .chain(
            config
                .ca_keys
                .iter()
                .filter(|(group, _)| group.as_str() != meho_config::DEFAULT_GROUP),
        );
    for (group, source) in groups {
        shown.push(match source {
            CaSource::File(path) => {
                let key = CaKey::load(path).map_err(|err| Failure::Runtime(err.into()))?;
                Shown {
                    group: group.clone(),
                    fingerprint: Some(key.fingerprint().to_owned()),
                    public_line: Some(key.public_line().to_owned()),
                    location: path.display().to_string(),
                    path: Some(path.clone()),
                    vault: None,
                    dev: false,
                }
            }
            CaSource::Vault { mount, role } => {
                let address = config
                    .vault
                    .as_ref()
                    .map(|v| v.address.as_str().trim_end_matches('/').to_owned())
                    .unwrap_or_default();
                Shown {
                    group: group.clone(),
                    fingerprint: None,
                    public_line: None,
                    location: format!("vault:{address} {mount}/sign/{role}"),
                    path: None,
                    vault: Some(json!({
                        "address": address,
                        "mount": mount,
                        "role": role,
                        "public_key_url": format!("{address}/v1/{mount}/public_key"),
                    })),
                    dev: false,
                }
            }
        });
    }
    if config.ca_keys.is_empty() {
        // What `meho serve --dev` would use: shown, never created here.
        let paths = Paths::new(&config, args.data_dir.as_deref(), None);
        let dev = meho_ssh::setup::dev_ca_path(&paths.data_dir);
        if dev.exists() {
            let key = CaKey::load(&dev).map_err(|err| Failure::Runtime(err.into()))?;
            shown.push(Shown {
                group: meho_config::DEFAULT_GROUP.to_owned(),
                fingerprint: Some(key.fingerprint().to_owned()),
                public_line: Some(key.public_line().to_owned()),
                location: dev.display().to_string(),
                path: Some(dev),
                vault: None,
                dev: true,
            });
        }
    }
    match args.format {
        Format::Json => {
            let cas: Vec<serde_json::Value> = shown
                .iter()
                .map(|ca| {
                    let mut shown = json!({
                        "group": ca.group,
                        "fingerprint": ca.fingerprint,
                        "public_key": ca.public_line,
                        "path": ca.path,
                        "dev": ca.dev,
                    });
                    if let (Some(vault), Some(object)) = (&ca.vault, shown.as_object_mut()) {
                        object.insert("vault".to_owned(), vault.clone());
                    }
                    shown
                })
                .collect();
            outln!("{}", json!({ "cas": cas }))?;
        }
        Format::Text => {
            if shown.is_empty() {
                eprintln!(
                    "no SSH CA configured: create one with `meho ca init --out FILE` and set [ca_keys._default] path"
                );
            }
            for ca in &shown {
                let dev = if ca.dev {
                    " (dev CA of `meho serve --dev`)"
                } else {
                    ""
                };
                match (&ca.fingerprint, &ca.public_line) {
                    (Some(fingerprint), Some(line)) => {
                        outln!("{}  {fingerprint}  {}{dev}", ca.group, ca.location)?;
                        outln!("  {line}")?;
                    }
                    _ => {
                        outln!("{}  {}", ca.group, ca.location)?;
                        if let Some(url) =
                            ca.vault.as_ref().and_then(|v| v["public_key_url"].as_str())
                        {
                            outln!("  public key: {url}")?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
