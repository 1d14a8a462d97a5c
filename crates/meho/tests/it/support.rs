//! What the SSH and MCP tests share: long-running `meho` processes ([`Daemon`]), a CA made with
//! `meho ca init`, and a real OpenSSH `sshd` on a loopback port that trusts it ([`Sshd`], behind
//! [`require_sshd`]).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{MEHO_ENV, Workdir, stderr_of, stdout_of};

/// Hang guards: generous bounds that only stop a broken build from blocking the suite.
pub(crate) const STARTUP_LIMIT: Duration = Duration::from_secs(60);
pub(crate) const EXIT_LIMIT: Duration = Duration::from_secs(10);

pub(crate) fn os(s: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `meho ca init --out <dir>/<name>`; returns the key path and the printed public line.
pub(crate) fn ca_init(work: &Workdir, name: &str) -> (PathBuf, String) {
    let path = work.path().join(name);
    let output = work
        .meho()
        .args(["ca", "init", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let line = stdout_of(&output).trim_end().to_owned();
    (path, line)
}

/// The `.pub` `meho ca init` wrote beside `key`.
pub(crate) fn meho_ca_pub(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub(crate) fn ssh_keygen_available() -> bool {
    Command::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

// --- long-running processes ------------------------------------------------------------------

/// Distinguishes the log files of daemons started in the same directory.
static DAEMONS: AtomicUsize = AtomicUsize::new(0);

/// A running `meho` daemon whose first stdout lines were read; killed on drop so a failing test
/// leaves no process behind.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    /// Every stdout line up to and including the one starting with `last`.
    pub(crate) lines: Vec<String>,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `meho ARGS` in `work` and waits until its stdout has a line starting with `last`.
    pub(crate) fn start(work: &Workdir, args: &[&std::ffi::OsStr], last: &str) -> Daemon {
        Self::try_start(work, args, last).unwrap_or_else(|why| panic!("{why}"))
    }

    /// As [`Daemon::start`], but a process that ends (or prints nothing) before that line is an
    /// `Err` with what it printed and logged, and no process is left behind.
    pub(crate) fn try_start(
        work: &Workdir,
        args: &[&std::ffi::OsStr],
        last: &str,
    ) -> Result<Daemon, String> {
        let log = work.path().join(format!(
            "daemon-{}-{}.log",
            args.first().and_then(|a| a.to_str()).unwrap_or("meho"),
            DAEMONS.fetch_add(1, Ordering::Relaxed)
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_meho"));
        command
            .args(args)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        for var in MEHO_ENV {
            command.env_remove(var);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut daemon = Daemon {
            child,
            lines: Vec::new(),
            log,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line.trim_end().to_owned()).is_err() {
                            // Keep draining so the daemon never blocks on a full pipe.
                            let _ = std::io::copy(&mut reader, &mut std::io::sink());
                            return;
                        }
                    }
                }
            }
        });
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(last);
                    daemon.lines.push(line);
                    if done {
                        return Ok(daemon);
                    }
                }
                Err(_) => {
                    let _ = daemon.child.kill();
                    let status = daemon.child.wait();
                    return Err(format!(
                        "no `{last}` line from `meho {args:?}` ({status:?}); got {:?}; log:\n{}",
                        daemon.lines,
                        daemon.log_text()
                    ));
                }
            }
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits, within the hang guard, for the process to exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {EXIT_LIMIT:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// --- a real sshd -----------------------------------------------------------------------------

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            == Some("0")
    })
}

/// Whether a test of `what` against sshd can run; when not, says so in the `SKIPPED:` line
/// `scripts/test` counts (past the output capture), or fails under CI, where `scripts/test`
/// installs OpenSSH.
pub(crate) fn require_sshd(what: &str) -> bool {
    let why = if !Path::new("/usr/sbin/sshd").is_file() || !ssh_keygen_available() {
        "/usr/sbin/sshd or ssh-keygen is not installed; install openssh-server (scripts/test does)"
    } else if !is_root() {
        "the sshd tests log in as root and must run as root"
    } else {
        return true;
    };
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "under CI the sshd test must run: {why}"
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {what} against sshd: {why}");
    let _ = out.flush();
    false
}

/// An sshd on a random loopback port that trusts one user CA (the shared harness, which also
/// ends every session it forked when dropped), with the two things these tests pin in a config.
pub(crate) struct Sshd {
    sshd: meho_test_support::sshd::Sshd,
    pub(crate) port: u16,
    /// The host key line (`ssh-ed25519 AAAA…`) to pin.
    pub(crate) host_key: String,
}

impl Sshd {
    /// Starts sshd trusting the CA whose public key file is `ca_pub`. (`_dir` is where the
    /// caller keeps its files; the harness keeps sshd's in a directory of its own.)
    pub(crate) fn start(_dir: &Path, ca_pub: &Path) -> Sshd {
        let line = std::fs::read_to_string(ca_pub)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", ca_pub.display()));
        let sshd =
            meho_test_support::sshd::Sshd::start(meho_test_support::sshd::SshdOptions::new([line
                .trim()
                .to_owned()]));
        Sshd {
            port: sshd.port(),
            host_key: sshd.host_key_line(),
            sshd,
        }
    }

    /// What sshd logged so far.
    pub(crate) fn log_text(&self) -> String {
        self.sshd.log()
    }
}

/// A free loopback port, for a process that must be told its port before it starts (a server
/// whose audience names it, an sshd). Another process may take it in between: callers that
/// start a server on it retry.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
