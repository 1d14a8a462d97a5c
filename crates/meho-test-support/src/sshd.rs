//! A real OpenSSH `sshd` for the integration tests.
//!
//! Each [`Sshd`] runs `/usr/sbin/sshd -D -e` from its own temporary directory (host key, config,
//! `TrustedUserCAKeys`, log) on a random loopback port, trusting only the user CAs the test hands
//! it. Dropping it kills the listener *and* every process it forked: sshd's per-connection
//! children call `setsid()`, so they neither share the listener's process group nor die with it;
//! the harness finds them by walking `/proc` parent links while the tree is frozen with SIGSTOP.
//!
//! The tests run as root: they create the `mehotest` user and `/etc/sudoers.d` drop-ins.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The sshd binary the harness runs (Debian's `openssh-server`).
pub const SSHD: &str = "/usr/sbin/sshd";
/// The file name of the per-instance config inside [`Sshd::dir`].
const CONFIG_NAME: &str = "sshd_config";
/// Temporary directories of harness sshds start with this; the stale-instance sweep keys on it.
const DIR_PREFIX: &str = "meho-sshd-";
/// How long [`Sshd::start`] waits for a started sshd to answer with its banner.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How many random ports [`Sshd::start`] tries before giving up.
const START_ATTEMPTS: usize = 5;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a harness lock must not fail every later test.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// --- availability --------------------------------------------------------------------------------

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            == Some("0")
    })
}

/// Whether OpenSSH's server and `ssh-keygen` are installed.
pub fn sshd_available() -> bool {
    Path::new(SSHD).is_file() && on_path("ssh-keygen")
}

/// Prints `SKIPPED: <why>` on a line of its own straight to the process's stdout, past the test
/// harness's output capture, so `scripts/test` sees (and counts) it even when the test passes.
fn skipped(why: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nSKIPPED: {why}");
    let _ = out.flush();
}

/// Call at the top of every test that needs a real sshd; return early when it is `false`.
///
/// Without sshd (or without root, which the harness needs for users, sudoers and sshd itself) it
/// prints a `SKIPPED: ` line, which `scripts/test` counts, and returns `false`; under `CI=true` it
/// panics instead, since `scripts/test` installs openssh-server.
pub fn require_sshd() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !sshd_available() {
        if ci {
            panic!(
                "sshd missing under CI; scripts/test installs openssh-server ({SSHD} or ssh-keygen \
                 not found)"
            );
        }
        skipped(&format!(
            "{SSHD} or ssh-keygen is not installed; install openssh-server (scripts/test does) to \
             run the sshd tests"
        ));
        return false;
    }
    if !is_root() {
        if ci {
            panic!("the sshd tests must run as root under CI (they add users and sudoers rules)");
        }
        skipped("the sshd tests must run as root (they add users and sudoers rules)");
        return false;
    }
    true
}

// --- commands ------------------------------------------------------------------------------------

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// --- users and sudoers ---------------------------------------------------------------------------

static USERS: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

fn passwd_home(name: &str) -> Option<PathBuf> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim_end().split(':').nth(5).map(PathBuf::from)
}

/// Makes sure the local user `name` exists with a home directory, a `/bin/sh` shell and the
/// password field `*` (no password, but not locked: with `UsePAM no` sshd refuses a `!` account).
/// Returns the home directory. Idempotent and safe to call from concurrent tests.
pub fn ensure_user(name: &str) -> PathBuf {
    let mut users = lock(&USERS);
    let users = users.get_or_insert_with(HashMap::new);
    if let Some(home) = users.get(name) {
        return home.clone();
    }
    if passwd_home(name).is_none() {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run useradd: {e}"));
        // Exit 9: created meanwhile by another process; anything else is checked below.
        assert!(
            out.status.success() || passwd_home(name).is_some(),
            "useradd -m -s /bin/sh {name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Always: an existing account may have been created locked (`!`) by someone else.
    run_ok(Command::new("usermod").args(["-p", "*", name]));
    let home = passwd_home(name).unwrap_or_else(|| panic!("user {name} has no passwd entry"));
    fs::create_dir_all(&home).unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
    users.insert(name.to_owned(), home.clone());
    home
}

static SUDOERS: Mutex<()> = Mutex::new(());

/// The drop-in [`ensure_sudoers`] writes for `user`.
pub fn sudoers_path(user: &str) -> PathBuf {
    PathBuf::from(format!("/etc/sudoers.d/meho-test-{user}"))
}

/// Writes `/etc/sudoers.d/meho-test-<user>` containing `<user> <rule>` (mode 0440), checked with
/// `visudo -cf`; an invalid rule deletes the file and panics. Idempotent; the last rule wins.
pub fn ensure_sudoers(user: &str, rule: &str) {
    if let Err(e) = try_ensure_sudoers(user, rule) {
        panic!("{e}");
    }
}

/// [`ensure_sudoers`], returning what went wrong instead of panicking.
pub fn try_ensure_sudoers(user: &str, rule: &str) -> Result<(), String> {
    let _guard = lock(&SUDOERS);
    let path = sudoers_path(user);
    let content = format!("{user} {rule}\n");
    if fs::read_to_string(&path).is_ok_and(|c| c == content) {
        return Ok(());
    }
    // sudo skips files whose names contain a dot, so the staging file is never live; its name is
    // unique per process and call, so concurrent test processes do not trip over each other.
    static STAGED: AtomicU64 = AtomicU64::new(0);
    let staging = PathBuf::from(format!(
        "/etc/sudoers.d/.meho-test-{user}.{}.{}.tmp",
        std::process::id(),
        STAGED.fetch_add(1, Ordering::Relaxed)
    ));
    let cleanup = |why: String| {
        let _ = fs::remove_file(&staging);
        let _ = fs::remove_file(&path);
        Err(why)
    };
    if let Err(e) = fs::write(&staging, &content) {
        return cleanup(format!("cannot write {}: {e}", staging.display()));
    }
    if let Err(e) = fs::set_permissions(&staging, fs::Permissions::from_mode(0o440)) {
        return cleanup(format!("cannot chmod {}: {e}", staging.display()));
    }
    let check = match Command::new("visudo")
        .arg("-cf")
        .arg(&staging)
        .stdin(Stdio::null())
        .output()
    {
        Ok(check) => check,
        Err(e) => return cleanup(format!("cannot run visudo (is sudo installed?): {e}")),
    };
    if !check.status.success() {
        return cleanup(format!(
            "invalid sudoers rule {content:?}: {}{}",
            String::from_utf8_lossy(&check.stdout).trim(),
            String::from_utf8_lossy(&check.stderr).trim()
        ));
    }
    if let Err(e) = fs::rename(&staging, &path) {
        return cleanup(format!("cannot install {}: {e}", path.display()));
    }
    Ok(())
}

// --- processes -----------------------------------------------------------------------------------

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S ...`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Every live process's parent, read from `/proc/<pid>/stat`.
fn parent_map() -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let _state = fields.next()?;
            Some((pid, fields.next()?.parse().ok()?))
        })
        .collect()
}

fn descendants(root: u32) -> BTreeSet<u32> {
    let parents = parent_map();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == p && found.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    found
}

/// Sends `signal` to each target (a pid, or `-pgid` for a group) with the shell's builtin `kill`,
/// which needs neither libc nor procps. Errors (already gone) are ignored.
fn signal(signal: &str, targets: &[String]) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"sig=$1; shift; for t in "$@"; do kill -s "$sig" -- "$t"; done 2>/dev/null; exit 0"#)
        .arg("sh")
        .arg(signal)
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills a listener and everything it forked. The tree is frozen first (SIGSTOP the listener,
/// then its descendants until no new ones appear) so nothing escapes by forking mid-kill; then
/// the whole set and the listener's process group get SIGKILL.
fn kill_tree(root: u32) {
    let mut all = BTreeSet::from([root]);
    signal("STOP", &[root.to_string()]);
    for _ in 0..20 {
        let fresh: Vec<u32> = descendants(root).difference(&all).copied().collect();
        if fresh.is_empty() {
            break;
        }
        signal(
            "STOP",
            &fresh.iter().map(u32::to_string).collect::<Vec<_>>(),
        );
        all.extend(fresh);
    }
    let mut targets: Vec<String> = vec![format!("-{root}")];
    targets.extend(all.iter().map(u32::to_string));
    // SIGKILL ends stopped processes too.
    signal("KILL", &targets);
}

/// Listener pids of running harness sshds (each is also its process group id).
static REGISTRY: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Kills every sshd this process started and has not stopped yet, with all their children.
/// [`Sshd`]'s `Drop` does this for its own instance; this is for tests that leak one on purpose
/// (`mem::forget`) or a last-resort cleanup. It kills *every* live instance of the process,
/// including those of tests still running in parallel, so call it only where nothing else runs.
pub fn kill_leftovers() {
    let pids: Vec<u32> = std::mem::take(&mut *lock(&REGISTRY)).into_iter().collect();
    for pid in pids {
        kill_tree(pid);
    }
}

/// Kills harness sshds left behind by test processes that died without dropping them (a killed
/// or timed-out run): a listener whose directory's `owner.pid` names a process that is gone.
/// Runs once per process, before the first start.
fn sweep_orphaned_sshds() {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        // sshd rewrites its title: `sshd: /usr/sbin/sshd -D -e -f DIR/sshd_config [listener] ...`.
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("[listener]") {
            continue;
        }
        let Some(dir) = cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_suffix(&format!("/{CONFIG_NAME}")))
            .map(Path::new)
            .find(|d| {
                d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(DIR_PREFIX))
            })
        else {
            continue;
        };
        let owner = fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if owner.is_some_and(pid_alive) {
            continue;
        }
        kill_tree(pid);
        let _ = fs::remove_dir_all(dir);
    }
}

// --- sshd ----------------------------------------------------------------------------------------

/// How to run one [`Sshd`].
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// The address sshd listens on (a random free port is picked).
    pub listen: IpAddr,
    /// OpenSSH public key lines of the user CAs sshd trusts (`TrustedUserCAKeys`).
    pub trusted_ca_keys: Vec<String>,
    /// More `sshd_config` lines, appended after the harness's own (sshd takes the first value of
    /// most keywords, so these cannot override the base config; `Match` blocks work).
    pub extra_config: Vec<String>,
}

impl SshdOptions {
    /// Loopback, trusting `ca_lines`, nothing extra.
    pub fn new<I, S>(ca_lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            trusted_ca_keys: ca_lines.into_iter().map(Into::into).collect(),
            extra_config: Vec::new(),
        }
    }
}

/// A running `sshd -D -e`; dropping it kills it and every session it forked.
#[derive(Debug)]
pub struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: SocketAddr,
    pid: u32,
}

fn free_port(ip: IpAddr) -> u16 {
    let listener = TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0 to pick a port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// Reads sshd's identification line; `Some` when it starts with `SSH-2.0`.
fn read_banner(addr: SocketAddr) -> Option<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("SSH-2.0").then_some(line)
}

enum Attempt {
    Ready(Child),
    PortTaken,
}

impl Sshd {
    /// Starts sshd on a random free port of `opts.listen` and waits (up to 10 s) until it answers
    /// with an `SSH-2.0` banner. Panics with sshd's output when it cannot start.
    pub fn start(opts: SshdOptions) -> Sshd {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_orphaned_sshds);

        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the sshd tempdir: {e}"));
        let d = dir.path();
        fs::write(d.join("owner.pid"), std::process::id().to_string())
            .unwrap_or_else(|e| panic!("cannot write owner.pid: {e}"));
        let host_key = d.join("host_ed25519");
        run_ok(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "meho-test-host",
                    "-f",
                ])
                .arg(&host_key),
        );
        let ca_file = d.join("trusted_user_ca_keys");
        let mut cas = opts.trusted_ca_keys.join("\n");
        cas.push('\n');
        fs::write(&ca_file, cas).unwrap_or_else(|e| panic!("cannot write the CA file: {e}"));
        // The privilege-separation chroot; the package's init script would create it.
        fs::create_dir_all("/run/sshd").unwrap_or_else(|e| panic!("cannot create /run/sshd: {e}"));

        let config = d.join(CONFIG_NAME);
        let log = d.join("sshd.log");
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port(opts.listen);
            let addr = SocketAddr::new(opts.listen, port);
            let mut lines = vec![
                format!("Port {port}"),
                format!("ListenAddress {}", opts.listen),
                format!("HostKey {}", host_key.display()),
                format!("TrustedUserCAKeys {}", ca_file.display()),
                "AuthorizedKeysFile none".to_owned(),
                "PasswordAuthentication no".to_owned(),
                "KbdInteractiveAuthentication no".to_owned(),
                "UsePAM no".to_owned(),
                "StrictModes no".to_owned(),
                format!("PidFile {}", d.join("sshd.pid").display()),
                "LogLevel VERBOSE".to_owned(),
                "Subsystem sftp internal-sftp".to_owned(),
                "AllowTcpForwarding yes".to_owned(),
                "MaxSessions 100".to_owned(),
                "MaxStartups 100:30:200".to_owned(),
            ];
            lines.extend(opts.extra_config.iter().cloned());
            let mut text = lines.join("\n");
            text.push('\n');
            fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write sshd_config: {e}"));
            let check = Command::new(SSHD)
                .arg("-t")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {SSHD} -t: {e}"));
            assert!(
                check.status.success(),
                "sshd -t rejects the config:\n{}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );

            let log_file =
                fs::File::create(&log).unwrap_or_else(|e| panic!("cannot create sshd.log: {e}"));
            let child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {SSHD}: {e}"));
            lock(&REGISTRY).insert(child.id());
            match Self::await_ready(child, addr, &log) {
                Attempt::Ready(child) => {
                    let pid = child.id();
                    return Sshd {
                        dir,
                        child: Some(child),
                        addr,
                        pid,
                    };
                }
                Attempt::PortTaken if attempt < START_ATTEMPTS => continue,
                Attempt::PortTaken => break,
            }
        }
        panic!(
            "sshd could not bind a free port in {START_ATTEMPTS} attempts; last log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn await_ready(mut child: Child, addr: SocketAddr, log: &Path) -> Attempt {
        let deadline = Instant::now() + START_TIMEOUT;
        // Our own log line first: a banner alone could come from another process that took the
        // port, with our sshd about to exit on the failed bind.
        let listening = format!("Server listening on {} port {}", addr.ip(), addr.port());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                lock(&REGISTRY).remove(&child.id());
                let text = fs::read_to_string(log).unwrap_or_default();
                if text.contains("Bind to port") || text.contains("Cannot bind any address") {
                    return Attempt::PortTaken;
                }
                panic!("sshd exited during start ({status}):\n{text}");
            }
            if fs::read_to_string(log).is_ok_and(|t| t.contains(&listening))
                && read_banner(addr).is_some()
            {
                return Attempt::Ready(child);
            }
            if Instant::now() > deadline {
                kill_tree(child.id());
                lock(&REGISTRY).remove(&child.id());
                let _ = child.wait();
                panic!(
                    "sshd did not answer on {addr} within {START_TIMEOUT:?}:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening address as `ip:port` (`[ip]:port` for IPv6).
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The host public key as `ssh-ed25519 AAAA…` (no comment).
    pub fn host_key_line(&self) -> String {
        let path = self.dir.path().join("host_ed25519.pub");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A `known_hosts` line for this server (`[ip]:port ssh-ed25519 AAAA…`).
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[{}]:{} {}",
            self.addr.ip(),
            self.addr.port(),
            self.host_key_line()
        )
    }

    /// Path of the log (sshd's stderr, including the per-connection children's lines).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// Path of the generated `sshd_config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_NAME)
    }

    /// Everything sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls the log until it contains `needle`; `false` after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The listener's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The instance's directory: host key, config, CA file, log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pids of every process the listener has forked and that still runs (sessions included).
    pub fn children(&self) -> Vec<u32> {
        if self.child.is_none() {
            return Vec::new();
        }
        descendants(self.pid).into_iter().collect()
    }

    /// Whether the listener is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the listener and every process it forked, and reaps the listener. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        kill_tree(self.pid);
        let _ = child.kill();
        let _ = child.wait();
        lock(&REGISTRY).remove(&self.pid);
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

// --- tests ---------------------------------------------------------------------------------------

/// The harness itself, against a real sshd: it starts, logs in, and leaves nothing behind.
#[cfg(test)]
mod tests {
    use super::*;

    /// A user CA and a key pair with a certificate from it, made with `ssh-keygen`.
    struct TestCert {
        _dir: tempfile::TempDir,
        ca_pub: String,
        key: PathBuf,
        cert: PathBuf,
    }

    fn make_cert(principal: &str, id: &str, options: &[&str]) -> TestCert {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let key = dir.path().join("key");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&ca),
        );
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
        let mut sign = Command::new("ssh-keygen");
        sign.arg("-q")
            .arg("-s")
            .arg(&ca)
            .args(["-I", id, "-n", principal, "-V", "-5m:+5m"]);
        for o in options {
            sign.args(["-O", o]);
        }
        run_ok(sign.arg(key.with_extension("pub")));
        let ca_pub = fs::read_to_string(ca.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned();
        let cert = dir.path().join("key-cert.pub");
        TestCert {
            _dir: dir,
            ca_pub,
            key,
            cert,
        }
    }

    fn ssh_command(sshd: &Sshd, cert: &TestCert, user: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "none", "-i"])
            .arg(&cert.key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.cert.display()))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "-p",
            ])
            .arg(sshd.port().to_string())
            .arg(format!("{user}@{}", sshd.addr().ip()));
        cmd
    }

    fn wait_gone(pid: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while pid_alive(pid) {
            if Instant::now() > deadline {
                return false;
            }
            sleep(Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn harness_starts_sshd_and_accepts_a_certificate() {
        if !require_sshd() {
            return;
        }
        ensure_user("mehotest");
        let cert = make_cert("mehotest", "test", &["force-command=uptime"]);
        let started = Instant::now();
        let sshd = Sshd::start(SshdOptions::new([cert.ca_pub.clone()]));
        eprintln!(
            "sshd started in {:?} on {}",
            started.elapsed(),
            sshd.addr_string()
        );
        assert!(sshd.host_key_line().starts_with("ssh-ed25519 AAAA"));

        let out = ssh_command(&sshd, &cert, "mehotest")
            .arg("id")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ssh failed: {}\n{}\nsshd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            sshd.log()
        );
        // The certificate's force-command replaced the requested `id`.
        assert!(
            stdout.contains("load average"),
            "not uptime output: {stdout}"
        );
        assert!(
            !stdout.contains("uid="),
            "the requested command ran: {stdout}"
        );
        assert!(
            sshd.wait_for_log("Accepted certificate ID \"test\"", Duration::from_secs(5)),
            "{}",
            sshd.log()
        );

        let pid = sshd.pid();
        assert!(pid_alive(pid));
        drop(sshd);
        assert!(
            wait_gone(pid, Duration::from_secs(2)),
            "sshd {pid} survived its Drop"
        );
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn harness_refuses_a_certificate_from_an_untrusted_ca() {
        if !require_sshd() {
            return;
        }
        ensure_user("mehotest");
        let trusted = make_cert("mehotest", "trusted", &[]);
        let rogue = make_cert("mehotest", "rogue", &[]);
        let sshd = Sshd::start(SshdOptions::new([trusted.ca_pub.clone()]));
        let out = ssh_command(&sshd, &rogue, "mehotest")
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "a rogue certificate was accepted");
        assert!(
            !sshd.log().contains("Accepted certificate"),
            "{}",
            sshd.log()
        );
    }

    #[test]
    fn harness_drop_kills_running_sessions() {
        if !require_sshd() {
            return;
        }
        ensure_user("mehotest");
        let cert = make_cert("mehotest", "sleeper", &[]);
        let mut sshd = Sshd::start(SshdOptions::new([cert.ca_pub.clone()]));
        let mut client = ssh_command(&sshd, &cert, "mehotest")
            .arg("sleep 600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            sshd.wait_for_log("Starting session", Duration::from_secs(10)),
            "{}",
            sshd.log()
        );
        // The session's processes: the [priv] monitor, the user child, the shell and `sleep`.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut children = sshd.children();
        while children.len() < 3 && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
            children = sshd.children();
        }
        assert!(children.len() >= 3, "session processes: {children:?}");
        let listener = sshd.pid();
        sshd.stop();
        for pid in children.iter().copied().chain([listener]) {
            assert!(
                wait_gone(pid, Duration::from_secs(2)),
                "{pid} survived stop()"
            );
        }
        // The client sees its connection drop.
        let status = client.wait().unwrap();
        assert!(!status.success());
        sshd.stop(); // idempotent
    }

    #[test]
    fn harness_sudoers_rule_is_validated_and_idempotent() {
        if !require_sshd() {
            return;
        }
        ensure_user("mehotest");
        let rule = "ALL=(root) NOPASSWD: ALL";
        ensure_sudoers("mehotest", rule);
        ensure_sudoers("mehotest", rule);
        let path = sudoers_path("mehotest");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("mehotest {rule}\n")
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o440
        );
        let listed = run_ok(Command::new("sudo").args(["-n", "-l", "-U", "mehotest"]));
        assert!(String::from_utf8_lossy(&listed.stdout).contains("NOPASSWD: ALL"));

        let bad = try_ensure_sudoers("mehotest-invalid", "ALL=(root NOPASSWD");
        assert!(
            bad.as_ref().is_err_and(|e| e.contains("syntax error")),
            "{bad:?}"
        );
        assert!(!sudoers_path("mehotest-invalid").exists());
    }

    #[test]
    fn harness_serves_internal_sftp() {
        if !require_sshd() {
            return;
        }
        let home = ensure_user("mehotest");
        let cert = make_cert("mehotest", "sftp", &[]);
        let sshd = Sshd::start(SshdOptions::new([cert.ca_pub.clone()]));
        let mut sftp = Command::new("sftp");
        sftp.args(["-F", "none", "-b", "-", "-i"])
            .arg(&cert.key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.cert.display()))
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "LogLevel=ERROR", "-P"])
            .arg(sshd.port().to_string())
            .arg(format!("mehotest@{}", sshd.addr().ip()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = sftp.spawn().unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "pwd").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sftp failed: {}\nsshd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            sshd.log()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&home.display().to_string()), "{stdout}");
        assert!(
            sshd.wait_for_log("Starting session: subsystem 'sftp'", Duration::from_secs(5)),
            "{}",
            sshd.log()
        );
    }
}
