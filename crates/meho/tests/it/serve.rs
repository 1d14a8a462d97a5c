//! `meho serve` end to end: a real process on a real socket, stopped with SIGTERM.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{MEHO_ENV, Workdir, host, stderr_of};

/// Hang guards: generous bounds that only stop a broken build from blocking the suite.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
const IO_LIMIT: Duration = Duration::from_secs(30);
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// A running `meho serve`; killed on drop so a failing test leaves no process behind.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `meho serve ARGS` in `work` and waits for its listen line.
    fn start(work: &Workdir, args: &[&std::ffi::OsStr], env: &[(&str, &Path)]) -> Server {
        let log = work.path().join("serve.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_meho"));
        command
            .arg("serve")
            .args(args)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        for var in MEHO_ENV {
            command.env_remove(var);
        }
        for (var, value) in env {
            command.env(var, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // The guard exists before anything can fail.
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let result = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(STARTUP_LIMIT) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => panic!("cannot read serve's stdout: {err}"),
            Err(_) => panic!("no listen line from serve; log:\n{}", server.log_text()),
        };
        let addr = line
            .trim_end()
            .strip_prefix("meho listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log:\n{}",
                    server.log_text()
                )
            });
        server.addr = addr.parse().unwrap();
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits, within the hang guard, for the process to exit.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {EXIT_LIMIT:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A plain HTTP/1.1 GET; returns the status code, the raw head and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, IO_LIMIT).unwrap();
    stream.set_read_timeout(Some(IO_LIMIT)).unwrap();
    stream.set_write_timeout(Some(IO_LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed response: {response:?}"));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

fn os(s: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> &std::ffi::OsStr {
    s.as_ref()
}

fn write_config(work: &Workdir, listen: &str) -> PathBuf {
    work.write(
        "meho.toml",
        &format!("[server]\nlisten = \"{listen}\"\n\n{}", host("web", "")),
    )
}

#[test]
fn serves_health_ready_and_metrics_then_exits_0_on_sigterm() {
    let work = Workdir::new();
    let config = write_config(&work, "127.0.0.1:0");
    let data_dir = work.path().join("state");
    let mut server = Server::start(
        &work,
        &[os("--config"), os(&config), os("--data-dir"), os(&data_dir)],
        &[],
    );
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0, "the bound port is printed, not 0");

    let (status, _, body) = get(server.addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let (status, _, body) = get(server.addr, "/ready");
    assert_eq!(status, 200, "{body}");

    let (status, head, body) = get(server.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("openmetrics-text"),
        "{head}"
    );
    assert!(body.contains("meho_build_info"), "{body}");
    assert!(
        body.lines().any(|l| l.starts_with("meho_http_requests_total{")
            && l.contains("route=\"/healthz\"")),
        "{body}"
    );

    let (status, _, body) = get(server.addr, "/nope");
    assert_eq!(status, 404);
    assert!(body.contains("not_found"), "{body}");

    assert!(
        data_dir.join("meho.db").is_file(),
        "the store is created in the data dir"
    );

    let status = server.terminate();
    assert!(
        status.success(),
        "serve exited {status:?} after SIGTERM; log:\n{}",
        server.log_text()
    );
}

/// Starts `meho serve ARGS` and sends it SIGTERM the moment its listen line is read, as a script
/// would; returns how it exited.
fn serve_and_stop_at_once(work: &Workdir, args: &[&std::ffi::OsStr]) -> ExitStatus {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meho"));
    command
        .arg("serve")
        .args(args)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in MEHO_ENV {
        command.env_remove(var);
    }
    let mut server = Server {
        child: command.spawn().unwrap(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log: work.path().join("serve.log"),
    };
    // A killer waiting on a pipe, so the signal follows the line with no process start in between
    // (bash's `kill` is a builtin).
    let mut killer = Killer(
        Command::new("bash")
            .arg("-c")
            .arg(format!("read -r _ && kill -TERM {}", server.child.id()))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut trigger = killer.0.stdin.take().unwrap();
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        let _ = trigger.write_all(b"go\n");
        let _ = tx.send(read.map(|_| line));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    match rx.recv_timeout(STARTUP_LIMIT) {
        Ok(Ok(line)) => assert!(line.starts_with("meho listening on "), "{line:?}"),
        other => panic!("no listen line: {other:?}"),
    }
    let _ = killer.0.wait();
    let deadline = Instant::now() + EXIT_LIMIT;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the helper process on drop.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_sent_as_soon_as_the_listen_line_is_read_exits_0() {
    // Scripts wait for the listen line and may stop the server right away: the signal handlers
    // must already be installed by then. A missing handler shows up as death by signal in only a
    // share of runs, so repeat.
    let work = Workdir::new();
    let config = write_config(&work, "127.0.0.1:0");
    let data_dir = work.path().join("state");
    let args = [os("--config"), os(&config), os("--data-dir"), os(&data_dir)];
    for round in 0..20 {
        let status = serve_and_stop_at_once(&work, &args);
        assert!(status.success(), "round {round}: serve exited {status:?}");
    }
}

#[test]
fn listen_flag_overrides_config_and_meho_data_dir_sets_the_state_dir() {
    let work = Workdir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(&work, &taken.local_addr().unwrap().to_string());
    let data_dir = work.path().join("from-env");
    let mut server = Server::start(
        &work,
        &[
            os("--config"),
            os(&config),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        &[("MEHO_DATA_DIR", &data_dir)],
    );
    assert_ne!(server.addr, taken.local_addr().unwrap());
    assert_eq!(get(server.addr, "/ready").0, 200);
    assert!(data_dir.join("meho.db").is_file());
    assert!(server.terminate().success(), "{}", server.log_text());
}

#[test]
fn restart_on_the_same_data_dir_reuses_the_store() {
    let work = Workdir::new();
    let config = write_config(&work, "127.0.0.1:0");
    let data_dir = work.path().join("state");
    let args = [os("--config"), os(&config), os("--data-dir"), os(&data_dir)];
    for _ in 0..2 {
        let mut server = Server::start(&work, &args, &[]);
        assert_eq!(get(server.addr, "/ready").0, 200);
        assert!(server.terminate().success(), "{}", server.log_text());
    }
}

#[test]
fn bad_config_exits_2() {
    let work = Workdir::new();
    let config = work.write(
        "meho.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nport = 1\n\n{}",
            host("web", "")
        ),
    );
    let output = work
        .meho()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("meho.toml:3:1:"), "{stderr}");
    assert!(!work.path().join("state").exists(), "nothing is created");
}

#[test]
fn port_already_taken_exits_1_naming_the_address() {
    let work = Workdir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = write_config(&work, &addr.to_string());
    let output = work
        .meho()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    drop(taken);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    // The listen address is tried before anything is created.
    assert!(
        !work.path().join("state").exists(),
        "a data directory was created"
    );
    // So is dev mode's loopback rule.
    let output = work
        .meho()
        .args(["serve", "--dev", "--listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(work.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        !work.path().join("state").exists(),
        "a data directory was created"
    );
}

#[test]
fn unusable_data_dir_exits_1() {
    let work = Workdir::new();
    let config = write_config(&work, "127.0.0.1:0");
    let file = work.write("a-file", "x");
    let output = work
        .meho()
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(file.join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("a-file"),
        "{}",
        stderr_of(&output)
    );
}
