//! Session recording as asciicast v2: a JSON header line, then one `[seconds, code, text]` event
//! line per chunk (`"i"` input, `"o"` output, `"e"` stderr). Files are created with mode 0600 and
//! never replaced; the sha256 of the finished file goes into the session's outcome record.
//!
//! The format is small and fixed (<https://docs.asciinema.org/manual/asciicast/v2/>); writing it
//! with serde_json is simpler than taking a dependency for it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};

/// An event's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// What was sent to the session.
    Input,
    /// Standard output (everything, on a PTY).
    Output,
    /// Standard error (shell mode only).
    Error,
}

impl Stream {
    fn code(self) -> &'static str {
        match self {
            Stream::Input => "i",
            Stream::Output => "o",
            Stream::Error => "e",
        }
    }
}

/// One session's recording.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    started: Instant,
    out: Mutex<BufWriter<File>>,
}

impl Recorder {
    /// Creates `<dir>/<session_id>.cast` (mode 0600, `dir` mode 0700) and writes the header.
    pub fn create(
        dir: &Path,
        session_id: &str,
        title: &str,
        width: u32,
        height: u32,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(format!("{session_id}.cast"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let mut out = BufWriter::new(file);
        let header = json!({
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": crate::signer::unix_now(),
            "title": title,
            "env": { "SHELL": "/bin/sh", "TERM": "dumb" },
        });
        writeln!(out, "{header}")?;
        out.flush()?;
        Ok(Recorder {
            path,
            started: Instant::now(),
            out: Mutex::new(out),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and flushes it, so a crash loses at most the event being written.
    pub fn record(&self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let event = json!([
            (seconds * 1e6).round() / 1e6,
            stream.code(),
            String::from_utf8_lossy(data)
        ]);
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("recording writer poisoned"))?;
        writeln!(out, "{event}")?;
        out.flush()
    }

    /// Syncs the file and returns its sha256 (lowercase hex).
    pub fn finish(self) -> std::io::Result<String> {
        let out = self
            .out
            .into_inner()
            .map_err(|_| std::io::Error::other("recording writer poisoned"))?;
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        drop(file);
        let bytes = std::fs::read(&self.path)?;
        Ok(hex::encode(Sha256::digest(&bytes)))
    }
}
