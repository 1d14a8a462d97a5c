//! `meho ca …`: SSH certificate authority keys.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use meho_ssh::ca::{CaKey, CaSet};
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
    fingerprint: String,
    public_line: String,
    path: PathBuf,
    dev: bool,
}

#[expect(clippy::print_stderr, reason = "CLI output")]
fn show(args: &CaShowArgs) -> Result<(), Failure> {
    let config = args.config.load_or_default()?;
    let set = CaSet::load(&config.ca_keys).map_err(|err| Failure::Runtime(err.into()))?;
    let mut shown: Vec<Shown> = set
        .iter()
        .map(|(group, key)| Shown {
            group: group.to_owned(),
            fingerprint: key.fingerprint().to_owned(),
            public_line: key.public_line().to_owned(),
            path: key.source().to_path_buf(),
            dev: false,
        })
        .collect();
    if config.ca_keys.is_empty() {
        // What `meho serve --dev` would use: shown, never created here.
        let paths = Paths::new(&config, args.data_dir.as_deref(), None);
        let dev = meho_ssh::setup::dev_ca_path(&paths.data_dir);
        if dev.exists() {
            let key = CaKey::load(&dev).map_err(|err| Failure::Runtime(err.into()))?;
            shown.push(Shown {
                group: meho_config::DEFAULT_GROUP.to_owned(),
                fingerprint: key.fingerprint().to_owned(),
                public_line: key.public_line().to_owned(),
                path: dev,
                dev: true,
            });
        }
    }
    match args.format {
        Format::Json => {
            let cas: Vec<serde_json::Value> = shown
                .iter()
                .map(|ca| {
                    json!({
                        "group": ca.group,
                        "fingerprint": ca.fingerprint,
                        "public_key": ca.public_line,
                        "path": ca.path,
                        "dev": ca.dev,
                    })
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
                outln!(
                    "{}  {}  {}{dev}",
                    ca.group,
                    ca.fingerprint,
                    ca.path.display()
                )?;
                outln!("  {}", ca.public_line)?;
            }
        }
    }
    Ok(())
}
