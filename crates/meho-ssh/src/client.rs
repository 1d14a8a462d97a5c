//! The SSH client side: dial a chain of hops with per-hop certificates, pin every host key, run
//! commands, move files over SFTP. Built on russh.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};
use russh::{ChannelMsg, Disconnect};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;
use crate::wire::HostView;

/// One hop of a connection: where, as whom, with which ephemeral key and certificate.
pub struct Hop {
    /// The host as the signer describes it.
    pub view: HostView,
    /// The ephemeral private key; it lives only as long as the connection.
    pub key: Arc<PrivateKey>,
    /// The certificate the signer issued for `key`.
    pub certificate: Certificate,
}

impl std::fmt::Debug for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hop")
            .field("host", &self.view.name)
            .field("serial", &self.certificate.serial())
            .finish_non_exhaustive()
    }
}

/// How to dial.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Local address to bind the first hop's socket to.
    pub bind_address: Option<IpAddr>,
    /// TCP connect plus handshake plus auth, per hop.
    pub connect_timeout: Duration,
}

/// Pins the server's host key to the configured one. A mismatch is remembered so the error can
/// say what was offered.
struct PinnedHostKey {
    expected: PublicKey,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                if key.key_data() == self.expected.key_data() {
                    return Ok(true);
                }
                key.fingerprint(HashAlg::Sha256).to_string()
            }
            PublicKeyOrCertificate::Certificate(cert) => format!(
                "a host certificate for key {}",
                cert.public_key().fingerprint(HashAlg::Sha256)
            ),
        };
        if let Ok(mut slot) = self.offered.lock() {
            *slot = Some(offered);
        }
        Ok(false)
    }
}

/// An authenticated connection to the last hop, through the others.
pub struct Connection {
    /// Hop handles, bastions first. Bastion handles must outlive the target's: the target's
    /// transport is a channel on them.
    handles: Vec<Handle<PinnedHostKey>>,
    /// The chain as dialed, for the session recheck: (name, addr, user, host_key, jump) per hop.
    chain: Vec<HostView>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field(
                "chain",
                &self.chain.iter().map(|h| &h.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn ssh_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

/// Dials `hops` in order (bastions first, target last), each through the one before.
pub async fn connect(hops: Vec<Hop>, options: &ConnectOptions) -> Result<Connection, Error> {
    let config = ssh_config();
    let mut handles: Vec<Handle<PinnedHostKey>> = Vec::with_capacity(hops.len());
    let mut chain = Vec::with_capacity(hops.len());
    for hop in hops {
        let host = hop.view.name.clone();
        let step = async {
            let expected = PublicKey::from_openssh(hop.view.host_key.trim()).map_err(|err| {
                Error::Connect {
                    target: host.clone(),
                    message: format!("configured host_key is not a public key: {err}"),
                }
            })?;
            let offered = Arc::new(Mutex::new(None));
            let handler = PinnedHostKey {
                expected: expected.clone(),
                offered: offered.clone(),
            };
            let handshake = match handles.last() {
                None => {
                    let stream =
                        dial(&hop.view.addr, options.bind_address)
                            .await
                            .map_err(|message| Error::Connect {
                                target: host.clone(),
                                message,
                            })?;
                    client::connect_stream(config.clone(), stream, handler).await
                }
                Some(previous) => {
                    let (target, port) =
                        split_addr(&hop.view.addr).ok_or_else(|| Error::Connect {
                            target: host.clone(),
                            message: format!("addr `{}` is not host:port", hop.view.addr),
                        })?;
                    let channel = previous
                        .channel_open_direct_tcpip(target, u32::from(port), "127.0.0.1", 0)
                        .await
                        .map_err(|err| Error::Connect {
                            target: host.clone(),
                            message: format!(
                                "the bastion could not open a tunnel to {}: {err}",
                                hop.view.addr
                            ),
                        })?;
                    client::connect_stream(config.clone(), channel.into_stream(), handler).await
                }
            };
            let mut handle = match handshake {
                Ok(handle) => handle,
                Err(err) => {
                    let offered = offered.lock().ok().and_then(|mut o| o.take());
                    return Err(match offered {
                        Some(offered) => Error::HostKeyMismatch {
                            target: host.clone(),
                            expected: expected.fingerprint(HashAlg::Sha256).to_string(),
                            offered,
                        },
                        None => Error::Connect {
                            target: host.clone(),
                            message: format!("SSH handshake failed: {err}"),
                        },
                    });
                }
            };
            let auth = handle
                .authenticate_openssh_cert(
                    hop.view.user.clone(),
                    hop.key.clone(),
                    hop.certificate.clone(),
                )
                .await
                .map_err(|err| Error::Connect {
                    target: host.clone(),
                    message: format!("authentication failed: {err}"),
                })?;
            if !auth.success() {
                return Err(Error::AuthRefused {
                    target: host.clone(),
                    serial: hop.certificate.serial(),
                });
            }
            Ok(handle)
        };
        let handle = tokio::time::timeout(options.connect_timeout, step)
            .await
            .map_err(|_| Error::Connect {
                target: hop.view.name.clone(),
                message: format!(
                    "timed out after {} s connecting to {}",
                    options.connect_timeout.as_secs(),
                    hop.view.addr
                ),
            })??;
        handles.push(handle);
        chain.push(hop.view);
    }
    if handles.is_empty() {
        return Err(Error::Internal("connect called with no hops".into()));
    }
    Ok(Connection { handles, chain })
}

async fn dial(addr: &str, bind: Option<IpAddr>) -> Result<tokio::net::TcpStream, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|err| format!("cannot resolve {addr}: {err}"))?
        .collect();
    let mut last = format!("{addr} resolved to no address");
    for target in addrs {
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|err| format!("socket: {err}"))?;
        if let Some(ip) = bind {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|err| format!("cannot bind {ip}: {err}"))?;
        }
        match socket.connect(target).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = format!("cannot connect to {target}: {err}"),
        }
    }
    Err(last)
}

/// `host:port` or `[v6]:port` into its parts.
fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// What one command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output, at most the cap.
    pub stdout: Vec<u8>,
    /// Standard error, at most the cap.
    pub stderr: Vec<u8>,
    /// The exit status, when the command exited.
    pub exit_code: Option<u32>,
    /// The signal that ended it, if one did.
    pub exit_signal: Option<String>,
    /// Bytes of stdout dropped past the cap.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped past the cap.
    pub stderr_dropped: u64,
    /// The command outran the exec timeout and was cut off.
    pub timed_out: bool,
}

impl ExecOutput {
    /// sha256 over stdout then stderr as kept, lowercase hex.
    pub fn sha256(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(&self.stdout);
        hasher.update(&self.stderr);
        hex::encode(hasher.finalize())
    }
}

/// Appends `data` to `buf` up to `cap`, counting what does not fit.
pub(crate) fn push_capped(buf: &mut Vec<u8>, dropped: &mut u64, data: &[u8], cap: usize) {
    let room = cap.saturating_sub(buf.len());
    let take = room.min(data.len());
    buf.extend_from_slice(data.get(..take).unwrap_or_default());
    *dropped += (data.len() - take) as u64;
}

impl Connection {
    fn target(&self) -> Result<&Handle<PinnedHostKey>, Error> {
        self.handles
            .last()
            .ok_or_else(|| Error::Internal("connection without hops".into()))
    }

    /// The hops as dialed.
    pub fn chain(&self) -> &[HostView] {
        &self.chain
    }

    /// Whether the target's transport is gone.
    pub fn is_closed(&self) -> bool {
        self.handles.iter().any(Handle::is_closed)
    }

    /// Runs `command` on a fresh exec channel. Output beyond `cap` bytes per stream is read and
    /// dropped (so the remote never blocks) and counted.
    pub async fn exec(
        &self,
        command: &str,
        pty: bool,
        cap: usize,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let host = self.host_name();
        let mut channel = self.open_command(command, pty).await?;
        let mut out = ExecOutput::default();
        let collect = async {
            while let Some(message) = channel.wait().await {
                match message {
                    ChannelMsg::Data { data } => {
                        push_capped(&mut out.stdout, &mut out.stdout_dropped, &data, cap);
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        push_capped(&mut out.stderr, &mut out.stderr_dropped, &data, cap);
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.exit_code = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.exit_signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Failure => {
                        return Err(Error::Channel {
                            target: host.clone(),
                            message: "the host refused to run the command".into(),
                        });
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, collect).await {
            Ok(result) => result?,
            Err(_) => {
                out.timed_out = true;
                let _ = channel.close().await;
            }
        }
        Ok(out)
    }

    /// Opens a session channel running `command`, optionally on a PTY (a `dumb` terminal, so
    /// programs print no colour or cursor codes).
    pub(crate) async fn open_command(
        &self,
        command: &str,
        pty: bool,
    ) -> Result<russh::Channel<client::Msg>, Error> {
        let host = self.host_name();
        let channel_err = |err: russh::Error| Error::Channel {
            target: host.clone(),
            message: err.to_string(),
        };
        let channel = self
            .target()?
            .channel_open_session()
            .await
            .map_err(channel_err)?;
        if pty {
            channel
                .request_pty(true, "dumb", 200, 50, 0, 0, &[])
                .await
                .map_err(channel_err)?;
        }
        channel.exec(true, command).await.map_err(channel_err)?;
        Ok(channel)
    }

    /// Uploads `data` to `path` over SFTP. Returns the sha256 of what was sent.
    pub async fn put_file(&self, path: &str, data: &[u8]) -> Result<String, Error> {
        let sftp = self.sftp().await?;
        let host = self.host_name();
        let file_err = |err: &dyn std::fmt::Display| Error::File {
            target: host.clone(),
            path: path.to_owned(),
            message: err.to_string(),
        };
        let mut file = sftp.create(path).await.map_err(|e| file_err(&e))?;
        file.write_all(data).await.map_err(|e| file_err(&e))?;
        file.shutdown().await.map_err(|e| file_err(&e))?;
        let _ = sftp.close().await;
        Ok(hex::encode(Sha256::digest(data)))
    }

    /// Downloads `path` over SFTP, refusing files larger than `cap` bytes.
    pub async fn get_file(&self, path: &str, cap: u64) -> Result<Vec<u8>, Error> {
        let sftp = self.sftp().await?;
        let host = self.host_name();
        let file_err = |message: String| Error::File {
            target: host.clone(),
            path: path.to_owned(),
            message,
        };
        let metadata = sftp
            .metadata(path)
            .await
            .map_err(|e| file_err(e.to_string()))?;
        if let Some(size) = metadata.size
            && size > cap
        {
            return Err(file_err(format!(
                "the file is {size} bytes, over the {cap}-byte transfer cap"
            )));
        }
        let file = sftp.open(path).await.map_err(|e| file_err(e.to_string()))?;
        let mut data = Vec::new();
        // Read one byte past the cap: a file that grew after stat is refused, not truncated.
        file.take(cap + 1)
            .read_to_end(&mut data)
            .await
            .map_err(|e| file_err(e.to_string()))?;
        let _ = sftp.close().await;
        if data.len() as u64 > cap {
            return Err(file_err(format!(
                "the file exceeds the {cap}-byte transfer cap"
            )));
        }
        Ok(data)
    }

    async fn sftp(&self) -> Result<russh_sftp::client::SftpSession, Error> {
        let host = self.host_name();
        let channel =
            self.target()?
                .channel_open_session()
                .await
                .map_err(|err| Error::Channel {
                    target: host.clone(),
                    message: err.to_string(),
                })?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|err| Error::Channel {
                target: host.clone(),
                message: format!("sftp subsystem: {err}"),
            })?;
        russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(|err| Error::Channel {
                target: host,
                message: format!("sftp: {err}"),
            })
    }

    fn host_name(&self) -> String {
        self.chain
            .last()
            .map(|h| h.name.clone())
            .unwrap_or_default()
    }

    /// Disconnects every hop, target first.
    pub async fn close(&self) {
        for handle in self.handles.iter().rev() {
            let _ = handle
                .disconnect(Disconnect::ByApplication, "meho: call finished", "en")
                .await;
        }
    }
}
