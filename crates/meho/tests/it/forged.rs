//! Text that forges its own display (issue #11): an agent's command, name or reason carrying ESC,
//! a C1 CSI, DEL or a bidi override. Printed raw, [`COMMAND`] erases its own line and draws
//! `systemctl status nginx` in its place. Every human-facing output must show such text as
//! visible escapes (`meho_core::display::escape`); `--format json` must carry it exactly.
//!
//! The constants and checks here are shared by the remote CLI, audit and console tests; the SSH
//! CLI's own text (refusals, dry runs) is tested here, and so is the remote command's output,
//! which passes through byte for byte as with `ssh`.

use std::path::{Path, PathBuf};

use meho_core::display::is_deceptive;
use serde_json::Value;

use crate::support::{Sshd, ca_init, meho_ca_pub, require_sshd};
use crate::{Workdir, stderr_of, stdout_of};

/// A held command that, printed raw, erases its line (`ESC [2K`), returns to column 1, erases
/// again through a one-byte C1 CSI (U+009B), hides a DEL and reverses the rest (U+202E).
pub(crate) const COMMAND: &str =
    "touch '/etc/cron.d/x\u{1b}[2K\u{1b}[1G\u{9b}2K\u{7f}\u{202e}systemctl status nginx'";
/// [`COMMAND`] as a person must see it.
pub(crate) const COMMAND_SHOWN: &str =
    r"touch '/etc/cron.d/x\x1b[2K\x1b[1G\x9b2K\x7f\u{202e}systemctl status nginx'";
/// A principal or requester name with ESC and a bidi override.
pub(crate) const NAME: &str = "agent\u{1b}[2K\u{202e}7";
pub(crate) const NAME_SHOWN: &str = r"agent\x1b[2K\u{202e}7";
/// A target name with a newline (a fake next row) and a bidi isolate.
pub(crate) const TARGET: &str = "web-x\n\u{2066}1";
pub(crate) const TARGET_SHOWN: &str = r"web-x\x0a\u{2066}1";
/// A reason with a C1 CSI, DEL and a tab.
pub(crate) const REASON: &str = "ticket\u{9b}31m\u{7f}\t42";
pub(crate) const REASON_SHOWN: &str = r"ticket\x9b31m\x7f\x0942";

/// A held call's preview (a dry-run diff) whose fifth line, printed raw, erases itself, returns
/// to column 1 (ESC, C1 CSI, DEL, CR) and draws the old value in place of the new one, and whose
/// sixth reverses its end (U+202E).
pub(crate) const PREVIEW: &str = "--- deployment/web (live)\n+++ deployment/web (dry run)\n\
     @@ -1,3 +1,3 @@\n-  replicas: 2\n\
     +  replicas: 30\u{1b}[2K\u{1b}[1G\u{9b}2K\u{7f}\r+  replicas: 2\n+  image: web\u{202e}2:v\n";
/// [`PREVIEW`]'s lines as a person must see them.
pub(crate) const PREVIEW_SHOWN: [&str; 6] = [
    "--- deployment/web (live)",
    "+++ deployment/web (dry run)",
    "@@ -1,3 +1,3 @@",
    "-  replicas: 2",
    r"+  replicas: 30\x1b[2K\x1b[1G\x9b2K\x7f\x0d+  replicas: 2",
    r"+  image: web\u{202e}2:v",
];

/// The characters of `text` that could forge its display, other than its own line breaks.
pub(crate) fn raw_deceptive(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && is_deceptive(c))
        .collect()
}

/// Asserts that human output `text` carries no raw deceptive character (beyond its own line
/// breaks) and shows every one of `shown`.
#[track_caller]
pub(crate) fn assert_shown(what: &str, text: &str, shown: &[&str]) {
    assert_eq!(
        raw_deceptive(text),
        Vec::<char>::new(),
        "{what}: raw control or bidi characters in\n{text:?}"
    );
    for needle in shown {
        assert!(text.contains(needle), "{what}: {needle:?} not in\n{text}");
    }
}

/// A `_default` CA and one host `web` whose policy allows `ls …` and `printf …`, on `port`.
fn config(work: &Workdir, ca: &Path, port: u16, host_key: &str) -> PathBuf {
    work.write(
        "meho.toml",
        &format!(
            "[ca_keys._default]\npath = \"{}\"\n\n[hosts.web]\naddr = \"127.0.0.1:{port}\"\n\
             user = \"root\"\nhost_key = \"{host_key}\"\n\
             command_policy = {{ mode = \"allowlist\", allow = ['^ls( |$)', '^printf '] }}\n",
            ca.display()
        ),
    )
}

/// `meho ssh exec --config CONFIG --data-dir <work>/state ARGS`, logging errors only: stderr is
/// then the command's refusal, or the remote command's stderr.
fn exec(work: &Workdir, config: &Path, args: &[&str]) -> std::process::Output {
    work.meho()
        .env("MEHO_LOG", "error")
        .args(["ssh", "exec", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ssh_exec_refusals_and_dry_runs_show_forged_text_as_escapes_and_json_keeps_it() {
    let work = Workdir::new();
    let (ca, line) = ca_init(&work, "ca_key");
    let config = config(&work, &ca, 1, &line);

    // A refusal quoting the host name: one escaped line.
    let output = exec(&work, &config, &["--caller", "tester", NAME, "--", "ls"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.starts_with("error: unknown_target: "), "{stderr}");
    assert_shown("ssh exec refusal", &stderr, &[NAME_SHOWN]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // JSON: the error document carries the name exactly.
    let output = exec(
        &work,
        &config,
        &["--format", "json", "--caller", "tester", NAME, "--", "ls"],
    );
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(error["error"]["code"], "unknown_target");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(NAME)),
        "{error}"
    );

    // The firewall refuses control and bidi characters in a command outright; a dry run says
    // so without echoing them.
    let output = exec(&work, &config, &["--dry-run", "web", "--", COMMAND]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert_shown("ssh exec --dry-run", &text, &["DENIED"]);

    // A denial of the command itself.
    let output = exec(&work, &config, &["web", "--", COMMAND]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert_shown("ssh exec denial", &stderr, &[]);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn ssh_exec_passes_the_remote_commands_output_through_byte_for_byte() {
    if !require_sshd("forged output passthrough") {
        return;
    }
    let work = Workdir::new();
    let (ca, _) = ca_init(&work, "ca_key");
    let sshd = Sshd::start(work.path(), &meho_ca_pub(&ca));
    let config = config(&work, &ca, sshd.port, &sshd.host_key);
    // printf turns the octal escapes into the raw bytes on the host.
    let output = exec(
        &work,
        &config,
        &[
            "web",
            "--",
            r"printf 'out\033[2K\302\233\177\342\200\256x' && printf 'err\033[1G' >&2",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\nsshd log:\n{}",
        stderr_of(&output),
        sshd.log_text()
    );
    assert_eq!(
        output.stdout,
        "out\u{1b}[2K\u{9b}\u{7f}\u{202e}x".as_bytes(),
        "stdout is the remote command's, unescaped"
    );
    assert!(
        output.stderr.starts_with(b"err\x1b[1G"),
        "stderr is the remote command's, unescaped: {:?}",
        stderr_of(&output)
    );
}
