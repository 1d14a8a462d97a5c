//! Long-lived SSH sessions: one authenticated connection, many commands.
//!
//! - `exec` mode opens a fresh exec channel per command; nothing carries over.
//! - `shell` and `pty` modes keep one `/bin/sh` (or `sudo -n -- /bin/sh`) open, so `cd` and
//!   variables persist. Each command is sent as `command eval '<cmd>' </dev/null` followed by a
//!   marker line carrying `$?`; the marker has a random per-session nonce and a counter, so output
//!   cannot fake the end of a command. `command eval` keeps a syntax error from ending the shell.
//!
//! The [`SessionTable`] enforces the global and per-caller caps and the idle and lifetime
//! timeouts. Policy rechecks happen in the broker, before anything reaches a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::{Channel, ChannelMsg, client};

use crate::Error;
use crate::client::{Connection, ExecOutput, push_capped};
use crate::recording::{Recorder, Stream};
use crate::wire::SessionMode;

/// A stateful shell on one channel.
pub(crate) struct Shell {
    channel: Channel<client::Msg>,
    nonce: String,
    counter: u64,
    pty: bool,
}

impl Shell {
    /// Starts `shell_command` on `conn` and synchronizes with it.
    pub(crate) async fn start(
        conn: &Connection,
        shell_command: &str,
        pty: bool,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let channel = conn.open_command(shell_command, pty).await?;
        let nonce = hex::encode(crate::ca::random_bytes::<12>()?);
        let mut shell = Shell {
            channel,
            nonce,
            counter: 0,
            pty,
        };
        // Silence echo and prompts on a PTY (sent bare: `stty` must see the terminal, not the
        // `</dev/null` of a command); then a no-op round trip discards the shell's banner, first
        // prompt and the echo of this line.
        if pty {
            shell
                .channel
                .data_bytes(&b"stty -echo 2>/dev/null; PS1=''; PS2=''; export PS1 PS2\n"[..])
                .await
                .map_err(|err| Error::Channel {
                    target: String::new(),
                    message: format!("send to shell: {err}"),
                })?;
        }
        let out = shell.run(":", usize::MAX >> 1, timeout).await?;
        if out.timed_out {
            return Err(Error::Channel {
                target: String::new(),
                message: "the shell did not start in time".into(),
            });
        }
        Ok(shell)
    }

    /// Runs `command` in the shell and waits for its marker.
    pub(crate) async fn run(
        &mut self,
        command: &str,
        cap: usize,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        self.counter += 1;
        let marker = format!("__MEHO_{}_{}__", self.nonce, self.counter);
        let mut script = String::from("command eval ");
        meho_policy::shell::quote(command, &mut script);
        script.push_str(" </dev/null\n");
        script.push_str(&format!(
            "__meho_rc=$?; printf '\\n%s %s\\n' '{marker}' \"$__meho_rc\""
        ));
        if !self.pty {
            // stderr gets its own marker so its last bytes are known to have arrived. A PTY
            // merges the streams, so there it would only pollute the next command's output.
            script.push_str(&format!("; printf '\\n%s\\n' '{marker}' >&2"));
        }
        script.push('\n');
        self.channel
            .data_bytes(script.into_bytes())
            .await
            .map_err(|err| Error::Channel {
                target: String::new(),
                message: format!("send to shell: {err}"),
            })?;

        let mut out = ExecOutput::default();
        let mut stdout = MarkerScan::new(format!("\n{marker} "), cap);
        // On a PTY stderr is merged into stdout; only the stdout marker comes back.
        let mut stderr = MarkerScan::new(format!("\n{marker}\n"), cap);
        stderr.done = self.pty;
        let wait = async {
            while !(stdout.done && stderr.done) {
                let Some(message) = self.channel.wait().await else {
                    return Err(Error::Channel {
                        target: String::new(),
                        message: "the session's shell exited".into(),
                    });
                };
                match message {
                    ChannelMsg::Data { data } => {
                        let data = if self.pty {
                            strip_cr(&data)
                        } else {
                            data.to_vec()
                        };
                        stdout.feed(&data);
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.feed(&data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        out.exit_code = Some(exit_status);
                    }
                    ChannelMsg::Eof | ChannelMsg::Close => {
                        return Err(Error::Channel {
                            target: String::new(),
                            message: format!(
                                "the session's shell exited{}",
                                out.exit_code
                                    .map(|c| format!(" with status {c}"))
                                    .unwrap_or_default()
                            ),
                        });
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(result) => result?,
            Err(_) => out.timed_out = true,
        }
        out.exit_code = stdout.status;
        out.stdout = std::mem::take(&mut stdout.kept);
        out.stdout_dropped = stdout.dropped;
        out.stderr = std::mem::take(&mut stderr.kept);
        out.stderr_dropped = stderr.dropped;
        Ok(out)
    }

    pub(crate) async fn close(&self) {
        let _ = self.channel.eof().await;
        let _ = self.channel.close().await;
    }
}

/// Finds the end marker in a stream while keeping at most `cap` bytes of what came before it.
struct MarkerScan {
    pattern: Vec<u8>,
    cap: usize,
    kept: Vec<u8>,
    dropped: u64,
    window: Vec<u8>,
    done: bool,
    status: Option<u32>,
}

impl MarkerScan {
    fn new(pattern: String, cap: usize) -> Self {
        MarkerScan {
            pattern: pattern.into_bytes(),
            cap,
            kept: Vec::new(),
            dropped: 0,
            window: Vec::new(),
            done: false,
            status: None,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        self.window.extend_from_slice(data);
        if let Some(at) = find(&self.window, &self.pattern) {
            let after = self
                .window
                .get(at + self.pattern.len()..)
                .unwrap_or_default();
            // The stdout marker is followed by the status and a newline; wait for the newline.
            let is_status_marker = self.pattern.last() == Some(&b' ');
            if is_status_marker {
                let Some(end) = after.iter().position(|&b| b == b'\n') else {
                    return;
                };
                self.status = std::str::from_utf8(after.get(..end).unwrap_or_default())
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
            }
            let before = self.window.get(..at).unwrap_or_default().to_vec();
            push_capped(&mut self.kept, &mut self.dropped, &before, self.cap);
            self.window.clear();
            self.done = true;
            return;
        }
        // Keep a tail long enough to hold a marker split across chunks; commit the rest.
        let keep = self.pattern.len() + 24;
        if self.window.len() > keep {
            let commit: Vec<u8> = self.window.drain(..self.window.len() - keep).collect();
            push_capped(&mut self.kept, &mut self.dropped, &commit, self.cap);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn strip_cr(data: &[u8]) -> Vec<u8> {
    data.iter().copied().filter(|&b| b != b'\r').collect()
}

/// One open session.
pub struct Session {
    /// Opaque id handed to the agent.
    pub id: String,
    /// The principal that opened it; only it may use it.
    pub principal: String,
    /// The human behind the principal, if known.
    pub end_user: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The target host.
    pub target: String,
    /// Exec, shell or pty.
    pub mode: SessionMode,
    /// Whether it runs elevated.
    pub sudo: bool,
    /// The sudo target, if elevated.
    pub sudo_user: Option<String>,
    /// The serial of the certificate that opened it.
    pub serial: u64,
    /// `sudo -n [-u USER]` for exec-mode sessions.
    pub elevation_prefix: Option<String>,
    pub(crate) conn: Connection,
    pub(crate) shell: tokio::sync::Mutex<Option<Shell>>,
    pub(crate) recorder: Mutex<Option<Recorder>>,
    pub(crate) recording_failed: std::sync::atomic::AtomicBool,
    opened: Instant,
    last_used: Mutex<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("target", &self.target)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What opening a session needs besides the connection.
#[derive(Debug)]
pub struct SessionInit {
    /// See [`Session::principal`].
    pub principal: String,
    /// See [`Session::end_user`].
    pub end_user: Option<String>,
    /// See [`Session::tenant`].
    pub tenant: String,
    /// See [`Session::target`].
    pub target: String,
    /// See [`Session::mode`].
    pub mode: SessionMode,
    /// See [`Session::sudo`].
    pub sudo: bool,
    /// See [`Session::sudo_user`].
    pub sudo_user: Option<String>,
    /// See [`Session::serial`].
    pub serial: u64,
    /// See [`Session::elevation_prefix`].
    pub elevation_prefix: Option<String>,
}

impl Session {
    pub(crate) fn new(
        id: String,
        init: SessionInit,
        conn: Connection,
        shell: Option<Shell>,
        recorder: Option<Recorder>,
    ) -> Self {
        let now = Instant::now();
        Session {
            id,
            principal: init.principal,
            end_user: init.end_user,
            tenant: init.tenant,
            target: init.target,
            mode: init.mode,
            sudo: init.sudo,
            sudo_user: init.sudo_user,
            serial: init.serial,
            elevation_prefix: init.elevation_prefix,
            conn,
            shell: tokio::sync::Mutex::new(shell),
            recorder: Mutex::new(recorder),
            recording_failed: std::sync::atomic::AtomicBool::new(false),
            opened: now,
            last_used: Mutex::new(now),
        }
    }

    /// The connection's chain as dialed.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Records one event; a failure marks the recording failed (strict mode ends the session).
    pub(crate) fn record(&self, stream: Stream, data: &[u8]) -> Result<(), String> {
        let Ok(guard) = self.recorder.lock() else {
            return Err("recording writer poisoned".into());
        };
        let Some(recorder) = guard.as_ref() else {
            return Ok(());
        };
        recorder.record(stream, data).map_err(|err| {
            self.recording_failed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            format!("recording {}: {err}", recorder.path().display())
        })
    }

    pub(crate) fn touch(&self) {
        if let Ok(mut last) = self.last_used.lock() {
            *last = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map_or(Duration::ZERO, |last| last.elapsed())
    }

    /// Closes the shell and the connection, and finishes the recording. Returns the recording's
    /// sha256 (or the error that kept it from being finished).
    pub(crate) async fn shutdown(&self) -> Option<Result<String, String>> {
        if let Some(shell) = self.shell.lock().await.take() {
            shell.close().await;
        }
        self.conn.close().await;
        let recorder = self.recorder.lock().ok().and_then(|mut r| r.take());
        recorder.map(|r| r.finish().map_err(|err| err.to_string()))
    }
}

/// Limits of the session table.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions across all callers.
    pub max_sessions: usize,
    /// Sessions per caller.
    pub max_per_caller: usize,
    /// Close after this long unused.
    pub idle_timeout: Duration,
    /// Close this long after opening.
    pub max_lifetime: Duration,
}

/// Open sessions by id.
#[derive(Debug)]
pub struct SessionTable {
    limits: SessionLimits,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionTable {
    /// An empty table.
    pub fn new(limits: SessionLimits) -> Self {
        SessionTable {
            limits,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses a new session for `principal` when a cap is reached.
    pub fn check_capacity(&self, principal: &str) -> Result<(), String> {
        let sessions = self.lock();
        if sessions.len() >= self.limits.max_sessions {
            return Err(format!(
                "session limit reached ({} open); close one first",
                self.limits.max_sessions
            ));
        }
        let mine = sessions
            .values()
            .filter(|s| s.principal == principal)
            .count();
        if mine >= self.limits.max_per_caller {
            return Err(format!(
                "principal `{principal}` already has {mine} open sessions (limit {})",
                self.limits.max_per_caller
            ));
        }
        Ok(())
    }

    /// Adds a session, re-checking the caps under the lock.
    pub fn insert(&self, session: Arc<Session>) -> Result<(), Arc<Session>> {
        let mut sessions = self.lock();
        let mine = sessions
            .values()
            .filter(|s| s.principal == session.principal)
            .count();
        if sessions.len() >= self.limits.max_sessions || mine >= self.limits.max_per_caller {
            return Err(session);
        }
        sessions.insert(session.id.clone(), session);
        Ok(())
    }

    /// The session `id`, if `principal` owns it. Another principal's session looks like no session.
    pub fn get(&self, id: &str, principal: &str) -> Option<Arc<Session>> {
        self.lock()
            .get(id)
            .filter(|s| s.principal == principal)
            .cloned()
    }

    /// Removes and returns the session `id` if `principal` owns it.
    pub fn remove(&self, id: &str, principal: &str) -> Option<Arc<Session>> {
        let mut sessions = self.lock();
        if sessions.get(id).is_some_and(|s| s.principal == principal) {
            sessions.remove(id)
        } else {
            None
        }
    }

    /// Removes and returns sessions past their idle or lifetime limit, or whose transport died.
    pub fn take_expired(&self) -> Vec<(Arc<Session>, &'static str)> {
        let mut sessions = self.lock();
        let expired: Vec<(String, &'static str)> = sessions
            .values()
            .filter_map(|s| {
                if s.opened.elapsed() >= self.limits.max_lifetime {
                    Some((s.id.clone(), "max_lifetime"))
                } else if s.idle_for() >= self.limits.idle_timeout {
                    Some((s.id.clone(), "idle_timeout"))
                } else if s.conn.is_closed() {
                    Some((s.id.clone(), "connection_lost"))
                } else {
                    None
                }
            })
            .collect();
        expired
            .into_iter()
            .filter_map(|(id, why)| sessions.remove(&id).map(|s| (s, why)))
            .collect()
    }

    /// Removes and returns the sessions `matches` picks (a freeze).
    pub fn take_matching(&self, matches: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut sessions = self.lock();
        let ids: Vec<String> = sessions
            .values()
            .filter(|s| matches(s))
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter_map(|id| sessions.remove(id)).collect()
    }

    /// Removes every session (shutdown).
    pub fn drain(&self) -> Vec<Arc<Session>> {
        self.lock().drain().map(|(_, s)| s).collect()
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
