//! `meho audit …` end to end: records are written through the `meho-audit` library (or by a real
//! `meho serve`), then read back, verified, queried and exported by the binary.
//!
//! The export is re-verified here the way an independent tool would: RFC 8785 with
//! `serde_json_canonicalizer`, sha256 with `sha2`, Ed25519 with `ed25519-dalek`, nothing from
//! `meho-audit`'s own chain code.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Output, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use meho_audit::{
    AuditKey, AuditLog, AuditOptions, InProcessBus, NewRecord, RecordKind, Redactor, Witness,
};
use meho_store::{Pool, Store};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{MEHO_ENV, Workdir, forged, host, stderr_of, stdout_of};

/// Hang guard for the processes this module waits on. Only stops a broken build from blocking
/// the suite; nothing here asserts how long anything takes.
const HANG_LIMIT: Duration = Duration::from_secs(60);

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// 2021-06-01T00:00:00Z, in unix seconds.
const JUNE_1_2021: i64 = 1_622_505_600;
const DAY: i64 = 86_400;

// --- fixture ---------------------------------------------------------------------------------

/// A record as written, for the tests' own oracle.
#[derive(Debug, Clone)]
struct Written {
    record: NewRecord,
    id: String,
    seq: i64,
    ts: i64,
    hash: String,
}

impl Written {
    /// The value of the field a query flag filters on.
    fn field(&self, flag: &str) -> Option<&str> {
        let r = &self.record;
        match flag {
            "--tenant" => Some(r.tenant.as_str()),
            "--principal" => Some(r.principal.as_str()),
            "--target" => r.target.as_deref(),
            "--action" => r.action.as_deref(),
            "--outcome" => r.outcome.as_deref(),
            "--kind" => Some(r.kind.as_str()),
            "--session" => r.session_id.as_deref(),
            "--approval" => r.approval_id.as_deref(),
            "--call" => r.call_id.as_deref(),
            other => panic!("no such filter flag {other}"),
        }
    }
}

/// A data directory with an audit key pair at the paths `--data-dir` defaults to.
struct AuditDir {
    work: Workdir,
    data: PathBuf,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

impl AuditDir {
    /// A key pair and no store yet.
    fn new() -> Self {
        let work = Workdir::new();
        let data = work.path().join("data");
        let dir = AuditDir { work, data };
        AuditKey::generate()
            .unwrap()
            .save(&dir.key_path(), &dir.public_key_path())
            .unwrap();
        dir
    }

    /// A key pair and the `SAMPLE` records, written in one session.
    fn sample() -> (Self, Vec<Written>) {
        let dir = AuditDir::new();
        let written = dir.append(sample_records());
        (dir, written)
    }

    fn key_path(&self) -> PathBuf {
        self.data.join("audit").join("audit-key.pem")
    }

    fn public_key_path(&self) -> PathBuf {
        self.data.join("audit").join("audit-key.pub.pem")
    }

    fn witness_path(&self) -> PathBuf {
        self.data.join("audit").join("witness.jsonl")
    }

    fn db_path(&self) -> PathBuf {
        self.data.join("meho.db")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db_path().display())
    }

    async fn start_log(&self, store: &Store) -> AuditLog {
        let mut options = AuditOptions::new(Redactor::new::<&str>(&[]).unwrap());
        options.key = Some(AuditKey::load(&self.key_path()).unwrap());
        options.witness = Some(Witness::new(self.witness_path()));
        AuditLog::start(
            meho_audit::store::open(store),
            Arc::new(InProcessBus::new()),
            options,
        )
        .await
        .unwrap()
    }

    /// Opens the log, appends `records` one after the other, and shuts it down (which writes a
    /// signed checkpoint of every chain to the database and the witness).
    fn append(&self, records: Vec<NewRecord>) -> Vec<Written> {
        runtime().block_on(async {
            let store = Store::open(&self.url()).await.unwrap();
            let log = self.start_log(&store).await;
            let mut written = Vec::new();
            for record in records {
                let appended = log.append(record.clone()).await.unwrap();
                written.push(Written {
                    record,
                    id: appended.id,
                    seq: appended.seq,
                    ts: appended.ts,
                    hash: appended.hash,
                });
            }
            let checkpoints = log.shutdown().await.unwrap();
            assert!(!checkpoints.is_empty(), "shutdown writes a checkpoint");
            store.close().await;
            written
        })
    }

    /// Appends `records` all at once (the writer group-commits them), then shuts down.
    fn append_concurrently(&self, records: Vec<NewRecord>) {
        runtime().block_on(async {
            let store = Store::open(&self.url()).await.unwrap();
            let log = Arc::new(self.start_log(&store).await);
            let tasks: Vec<_> = records
                .into_iter()
                .map(|record| {
                    let log = log.clone();
                    tokio::spawn(async move { log.append(record).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            log.shutdown().await.unwrap();
            store.close().await;
        });
    }

    /// Runs `f` on a raw connection pool to the SQLite file, as an attacker with file access
    /// (or a test planting rows) would.
    fn with_pool<F, Fut>(&self, f: F)
    where
        F: FnOnce(sqlx::SqlitePool) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        runtime().block_on(async {
            let store = Store::open(&self.url()).await.unwrap();
            let Pool::Sqlite(pool) = store.pool() else {
                panic!("the test store is SQLite")
            };
            f(pool.clone()).await;
            store.close().await;
        });
    }

    /// Runs raw SQL statements against the store.
    fn sql(&self, statements: &[&'static str]) {
        let statements = statements.to_vec();
        self.with_pool(|pool| async move {
            for statement in statements {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
        });
    }

    /// Inserts a new tenant's chain with chosen timestamps, hashed by this module's own
    /// independent implementation of the chain (`audit verify` must accept it).
    fn plant_chain(&self, tenant: &str, entries: &[(i64, NewRecord)]) -> Vec<Written> {
        let mut prev = GENESIS.to_owned();
        let mut written = Vec::new();
        for (index, (ts, record)) in entries.iter().enumerate() {
            assert_eq!(record.tenant, tenant);
            let seq = i64::try_from(index).unwrap() + 1;
            let id = format!("{tenant}-{seq}");
            let value = json!({
                "id": id, "tenant": tenant, "seq": seq, "ts": ts, "kind": record.kind.as_str(),
                "principal": record.principal, "target": record.target, "action": record.action,
                "outcome": record.outcome, "session_id": record.session_id,
                "approval_id": record.approval_id, "call_id": record.call_id, "body": record.body,
            });
            let hash = link(&prev, &canonical_record(&value));
            written.push((value, prev.clone(), hash.clone()));
            prev = hash;
        }
        let rows = written.clone();
        self.with_pool(|pool| async move {
            for (v, prev_hash, hash) in rows {
                sqlx::query(
                    "INSERT INTO audit_records (id, tenant, seq, ts, kind, principal, target, \
                     action, outcome, session_id, approval_id, call_id, body, prev_hash, hash) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(v["id"].as_str().unwrap().to_owned())
                .bind(v["tenant"].as_str().unwrap().to_owned())
                .bind(v["seq"].as_i64().unwrap())
                .bind(v["ts"].as_i64().unwrap())
                .bind(v["kind"].as_str().unwrap().to_owned())
                .bind(v["principal"].as_str().unwrap().to_owned())
                .bind(v["target"].as_str().map(str::to_owned))
                .bind(v["action"].as_str().map(str::to_owned))
                .bind(v["outcome"].as_str().map(str::to_owned))
                .bind(v["session_id"].as_str().map(str::to_owned))
                .bind(v["approval_id"].as_str().map(str::to_owned))
                .bind(v["call_id"].as_str().map(str::to_owned))
                .bind(
                    String::from_utf8(serde_json_canonicalizer::to_vec(&v["body"]).unwrap())
                        .unwrap(),
                )
                .bind(prev_hash)
                .bind(hash)
                .execute(&pool)
                .await
                .unwrap();
            }
        });
        entries
            .iter()
            .zip(written)
            .map(|((ts, record), (value, _, hash))| Written {
                record: record.clone(),
                id: value["id"].as_str().unwrap().to_owned(),
                seq: value["seq"].as_i64().unwrap(),
                ts: *ts,
                hash,
            })
            .collect()
    }

    /// `meho audit SUB --data-dir DATA ARGS…`, run in the work directory.
    fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.work
            .meho()
            .args(["audit", sub, "--data-dir"])
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap()
    }

    /// Like `run`, asserting exit 0; returns stdout.
    fn ok(&self, sub: &str, args: &[&str]) -> String {
        let output = self.run(sub, args);
        assert!(
            output.status.success(),
            "`meho audit {sub} {}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            stdout_of(&output),
            stderr_of(&output)
        );
        stdout_of(&output)
    }

    /// `audit verify --format json ARGS…` with its exit code and report.
    fn verify_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let output = self.run("verify", &all);
        let report = serde_json::from_str(&stdout_of(&output)).unwrap_or_else(|err| {
            panic!(
                "verify --format json printed no JSON ({err}):\n{}\nstderr:\n{}",
                stdout_of(&output),
                stderr_of(&output)
            )
        });
        (output.status.code(), report)
    }

    /// `audit query --format json ARGS…`: the ids, newest first, and `next_cursor`.
    fn query(&self, args: &[&str]) -> (Vec<String>, Option<i64>) {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let page: Value = serde_json::from_str(&self.ok("query", &all)).unwrap();
        let ids = page["records"]
            .as_array()
            .unwrap_or_else(|| panic!("no `records` array: {page}"))
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let cursor = match &page["next_cursor"] {
            Value::Null => None,
            other => Some(other.as_i64().unwrap()),
        };
        (ids, cursor)
    }

    /// Every SQLite file of the store, concatenated (the database and any WAL).
    fn store_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(&self.data).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("meho.db"))
            {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(
            !bytes.is_empty(),
            "no store files in {}",
            self.data.display()
        );
        bytes
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// tenant, kind, principal, target, action, outcome, session, approval, call (`-`: none).
#[rustfmt::skip]
const SAMPLE: &[[&str; 9]] = &[
    ["default", "config_reload", "meho",  "-",    "serve",       "loaded",         "-",  "-",   "-"],
    ["default", "intent",        "alice", "web1", "ssh_execute", "allowed",        "s1", "-",   "c1"],
    ["default", "outcome",       "alice", "web1", "ssh_execute", "ok",             "s1", "-",   "c1"],
    ["default", "denial",        "bob",   "db1",  "ssh_execute", "command_denied", "s2", "-",   "c2"],
    ["default", "approval",      "carol", "db1",  "approve",     "approved",       "s2", "ap1", "-"],
    ["default", "intent",        "bob",   "db1",  "ssh_execute", "needs_approval", "s2", "ap1", "c3"],
    ["default", "outcome",       "bob",   "db1",  "ssh_execute", "error",          "s2", "ap1", "c3"],
    ["acme",    "intent",        "alice", "web1", "ssh_execute", "allowed",        "s9", "-",   "c4"],
    ["acme",    "outcome",       "alice", "web1", "ssh_execute", "ok",             "s9", "-",   "c4"],
    ["acme",    "grant",         "dave",  "web2", "grant",       "created",        "-",  "-",   "-"],
    ["acme",    "freeze",        "erin",  "-",    "freeze",      "frozen",         "-",  "-",   "-"],
];

fn record(fields: &[&str; 9], body: Value) -> NewRecord {
    let opt = |s: &str| (s != "-").then(|| s.to_owned());
    NewRecord {
        target: opt(fields[3]),
        action: opt(fields[4]),
        outcome: opt(fields[5]),
        session_id: opt(fields[6]),
        approval_id: opt(fields[7]),
        call_id: opt(fields[8]),
        body,
        ..NewRecord::new(
            fields[0],
            fields[1].parse::<RecordKind>().unwrap(),
            fields[2],
        )
    }
}

/// The `SAMPLE` rows, with bodies that exercise RFC 8785: escapes, non-ASCII, floats,
/// exponents, nesting and key order.
fn sample_records() -> Vec<NewRecord> {
    SAMPLE
        .iter()
        .enumerate()
        .map(|(i, fields)| {
            record(
                fields,
                json!({
                    "n": i,
                    "zeta": "last key",
                    "alpha": format!("record {i}: ü € 🎉 \"quoted\" back\\slash tab\t nl\n ctl\u{1}"),
                    "nested": {"b": [1.5, -0.25, 0.1, 1e21, 9_007_199_254_740_991_i64, null, true], "a": {}},
                    // RFC 8785 sorts keys by UTF-16 code units: the astral key comes first,
                    // unlike in UTF-8 byte order.
                    "\u{e000}": "private use", "\u{10000}": "astral",
                }),
            )
        })
        .collect()
}

/// Selects records for an expected result.
type Keep<'a> = Box<dyn Fn(&Written) -> bool + 'a>;

/// Ids of `written` that `keep` selects, newest first (the order `query` returns).
fn newest_first<'a>(
    written: impl IntoIterator<Item = &'a Written>,
    keep: impl Fn(&Written) -> bool,
) -> Vec<String> {
    let mut ids: Vec<String> = written
        .into_iter()
        .filter(|w| keep(w))
        .map(|w| w.id.clone())
        .collect();
    ids.reverse();
    ids
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

fn micros_to_rfc3339(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap());
    humantime::format_rfc3339_micros(at).to_string()
}

fn now_micros() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

// --- an independent verifier -----------------------------------------------------------------

/// A member of an exported record, which must be present (null is a value, absence is a bug).
fn member<'a>(record: &'a Value, name: &str) -> &'a Value {
    record
        .get(name)
        .unwrap_or_else(|| panic!("exported record has no `{name}`: {record}"))
}

/// The RFC 8785 bytes of a record's canonical object, per docs/audit.md.
fn canonical_record(record: &Value) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    object.insert("v".to_owned(), json!(1));
    for name in [
        "id",
        "tenant",
        "seq",
        "ts",
        "kind",
        "principal",
        "target",
        "action",
        "outcome",
        "session_id",
        "approval_id",
        "call_id",
        "body",
    ] {
        object.insert(name.to_owned(), member(record, name).clone());
    }
    serde_json_canonicalizer::to_vec(&Value::Object(object)).unwrap()
}

/// `sha256(raw(prev_hex) || canonical)`, lowercase hex.
fn link(prev_hex: &str, canonical: &[u8]) -> String {
    let prev = hex::decode(prev_hex).unwrap();
    assert_eq!(prev.len(), 32, "prev_hash is not 32 bytes: {prev_hex}");
    let mut hasher = Sha256::new();
    hasher.update(&prev);
    hasher.update(canonical);
    hex::encode(hasher.finalize())
}

/// Re-verifies an export: every tenant's records contiguous, seq 1.., each `prev_hash` the
/// previous `hash` (64 zeros first), each `hash` recomputed from the canonical bytes. Returns
/// every tenant's hashes by seq.
fn reverify_export(lines: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for record in lines {
        let tenant = member(record, "tenant").as_str().unwrap().to_owned();
        if order.last() != Some(&tenant) {
            assert!(
                !order.contains(&tenant),
                "tenant `{tenant}` is not contiguous in the export"
            );
            order.push(tenant.clone());
        }
        let chain = chains.entry(tenant.clone()).or_default();
        let seq = member(record, "seq").as_i64().unwrap();
        assert_eq!(
            seq,
            i64::try_from(chain.len()).unwrap() + 1,
            "tenant `{tenant}` is not in chain order: {record}"
        );
        let expected_prev = chain.last().map_or(GENESIS, String::as_str);
        let prev = member(record, "prev_hash").as_str().unwrap();
        assert_eq!(prev, expected_prev, "prev_hash of `{tenant}` seq {seq}");
        let hash = member(record, "hash").as_str().unwrap();
        assert_eq!(
            link(prev, &canonical_record(record)),
            hash,
            "recomputed hash of `{tenant}` seq {seq} differs: {record}"
        );
        chain.push(hash.to_owned());
    }
    chains
}

fn key_id_of(public_pem: &str) -> String {
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem).unwrap();
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

/// Checks every witness line's Ed25519 signature and that it names the exported chain's hash at
/// its seq. Returns the checkpoints.
fn reverify_witness(
    witness: &str,
    public_pem: &str,
    chains: &BTreeMap<String, Vec<String>>,
) -> Vec<Value> {
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem).unwrap();
    let key_id = key_id_of(public_pem);
    let checkpoints = json_lines(witness);
    assert!(!checkpoints.is_empty(), "the witness is empty");
    for checkpoint in &checkpoints {
        let signed = serde_json_canonicalizer::to_vec(&json!({
            "v": 1,
            "type": "meho-audit-checkpoint",
            "tenant": checkpoint["tenant"],
            "seq": checkpoint["seq"],
            "head_hash": checkpoint["head_hash"],
            "time": checkpoint["time"],
            "key_id": checkpoint["key_id"],
        }))
        .unwrap();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(checkpoint["signature"].as_str().unwrap())
            .unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
        key.verify_strict(&signed, &signature)
            .unwrap_or_else(|err| panic!("bad witness signature ({err}): {checkpoint}"));
        assert_eq!(checkpoint["key_id"], key_id.as_str(), "{checkpoint}");
        let tenant = checkpoint["tenant"].as_str().unwrap();
        let seq = usize::try_from(checkpoint["seq"].as_i64().unwrap()).unwrap();
        let chain = &chains[tenant];
        assert_eq!(
            checkpoint["head_hash"].as_str(),
            chain.get(seq - 1).map(String::as_str),
            "checkpoint does not name the chain's hash at its seq: {checkpoint}"
        );
    }
    checkpoints
}

// --- processes -------------------------------------------------------------------------------

/// A child process killed (and reaped) on drop, so a failing test leaves nothing behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Guard {
    fn wait_exit(&mut self, log: &Path) -> ExitStatus {
        let deadline = Instant::now() + HANG_LIMIT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends each stdout line of `child` down a channel, from a thread.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<std::io::Result<String>> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn meho_process(work: &Workdir, log: &Path) -> Process {
    let mut command = Process::new(env!("CARGO_BIN_EXE_meho"));
    command
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(log).unwrap());
    for var in MEHO_ENV {
        command.env_remove(var);
    }
    command
}

/// Runs `meho serve ARGS` until it prints its listen line, stops it with SIGTERM as an operator
/// would, and asserts a clean exit.
fn serve_once(work: &Workdir, args: &[&OsStr]) {
    let log = work.path().join("serve.log");
    let mut serve = Guard(
        meho_process(work, &log)
            .arg("serve")
            .args(args)
            .spawn()
            .unwrap(),
    );
    let lines = stdout_lines(&mut serve.0);
    let line = match lines.recv_timeout(HANG_LIMIT) {
        Ok(Ok(line)) => line,
        other => panic!(
            "no listen line ({other:?}); log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    let addr = line
        .strip_prefix("meho listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let killed = Process::new("kill")
        .arg("-TERM")
        .arg(serve.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM failed");
    let status = serve.wait_exit(&log);
    assert!(
        status.success(),
        "serve exited {status:?} after SIGTERM; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// --- help ------------------------------------------------------------------------------------

#[test]
fn audit_help_lists_every_subcommand() {
    let work = Workdir::new();
    let output = work.meho().args(["audit", "--help"]).output().unwrap();
    assert!(output.status.success());
    let text = stdout_of(&output);
    for sub in ["keygen", "verify", "tail", "query", "show", "export"] {
        assert!(text.contains(sub), "`{sub}` missing from:\n{text}");
        let output = work.meho().args(["audit", sub, "--help"]).output().unwrap();
        assert!(output.status.success(), "audit {sub} --help");
        assert!(
            stdout_of(&output).contains("--data-dir"),
            "audit {sub} --help"
        );
    }
}

// --- keygen ----------------------------------------------------------------------------------

#[test]
fn keygen_creates_the_key_pair_in_the_data_dir_and_refuses_to_replace_it() {
    let work = Workdir::new();
    let data = work.path().join("data");
    let run = || {
        work.meho()
            .args(["audit", "keygen", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let output = run();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let private = data.join("audit").join("audit-key.pem");
    let public = data.join("audit").join("audit-key.pub.pem");
    assert_eq!(mode_of(&private), 0o600, "the private key is owner-only");
    let private_pem = std::fs::read_to_string(&private).unwrap();
    let public_pem = std::fs::read_to_string(&public).unwrap();
    assert!(
        private_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{private_pem}"
    );
    assert!(
        public_pem.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{public_pem}"
    );
    // The two files are one pair.
    let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(&private_pem).unwrap();
    let verifying = ed25519_dalek::VerifyingKey::from_public_key_pem(&public_pem).unwrap();
    assert_eq!(signing.verifying_key(), verifying);

    let stdout = stdout_of(&output);
    let key_id = key_id_of(&public_pem);
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap_or_else(|| panic!("no key id line:\n{stdout}"))
        .trim();
    assert_eq!(printed, key_id, "{stdout}");
    assert!(stdout.contains(path_str(&private)), "{stdout}");
    assert!(stdout.contains(path_str(&public)), "{stdout}");

    let again = run();
    assert_eq!(again.status.code(), Some(2), "{}", stdout_of(&again));
    let stderr = stderr_of(&again);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains(path_str(&private)), "{stderr}");
    assert_eq!(std::fs::read_to_string(&private).unwrap(), private_pem);
    assert_eq!(std::fs::read_to_string(&public).unwrap(), public_pem);
    assert_eq!(mode_of(&private), 0o600);
}

#[test]
fn keygen_refuses_to_replace_a_public_key_whose_private_key_is_gone() {
    // The public key is what old checkpoints are verified with; a new pair must not replace it.
    let work = Workdir::new();
    let data = work.path().join("data");
    let run = || {
        work.meho()
            .args(["audit", "keygen", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let private = data.join("audit").join("audit-key.pem");
    let public = data.join("audit").join("audit-key.pub.pem");
    let public_pem = std::fs::read_to_string(&public).unwrap();
    std::fs::remove_file(&private).unwrap();

    let again = run();
    assert_eq!(again.status.code(), Some(2), "{}", stdout_of(&again));
    let stderr = stderr_of(&again);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains(path_str(&public)), "{stderr}");
    assert_eq!(std::fs::read_to_string(&public).unwrap(), public_pem);
    assert!(!private.exists(), "no half-made pair");
}

#[test]
fn keygen_out_writes_the_file_and_its_pub_and_prints_json() {
    let work = Workdir::new();
    let data = work.path().join("data");
    let output = work
        .meho()
        .args(["audit", "keygen", "--data-dir"])
        .arg(&data)
        .args(["--out", "keys/signing.pem", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let printed: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(printed["private_key"], "keys/signing.pem", "{printed}");
    // One naming scheme: `KEY.pem` → `KEY.pub.pem`, as `serve` and `audit verify` look for it.
    assert_eq!(printed["public_key"], "keys/signing.pub.pem", "{printed}");

    let private = work.path().join("keys/signing.pem");
    let public = work.path().join("keys/signing.pub.pem");
    assert_eq!(mode_of(&private), 0o600);
    let public_pem = std::fs::read_to_string(&public).unwrap();
    let signing =
        ed25519_dalek::SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&private).unwrap())
            .unwrap();
    assert_eq!(
        signing.verifying_key(),
        ed25519_dalek::VerifyingKey::from_public_key_pem(&public_pem).unwrap()
    );
    assert_eq!(
        printed["key_id"],
        key_id_of(&public_pem).as_str(),
        "{printed}"
    );
    assert!(!data.exists(), "--out writes nothing to the data dir");

    // --out refuses to replace an existing key too.
    let again = work
        .meho()
        .args(["audit", "keygen", "--out", "keys/signing.pem"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&public).unwrap(),
        public_pem,
        "the public key is untouched"
    );

    // A config naming the private key finds its public half under the same scheme. (A
    // command that opens the backplane creates the store and signs its checkpoint first.)
    let config = work.write("meho.toml", "[audit]\nkey_file = \"keys/signing.pem\"\n");
    let opened = work
        .meho()
        .args(["ssh", "hosts", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(opened.status.success(), "{}", stderr_of(&opened));
    let verified = work
        .meho()
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", stderr_of(&verified));
    // Without it, verify names the file it looked for and where the name came from.
    std::fs::remove_file(&public).unwrap();
    let missing = work
        .meho()
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = stderr_of(&missing);
    assert!(
        stderr.contains("keys/signing.pub.pem") && stderr.contains("key_file"),
        "{stderr}"
    );
}

// --- verify ----------------------------------------------------------------------------------

#[test]
fn verify_accepts_an_intact_log_in_text_and_json() {
    let (dir, written) = AuditDir::sample();
    let text = dir.ok("verify", &[]);
    assert!(text.contains("OK: 11 records verified"), "{text}");
    assert!(
        text.contains("tenant default: 7 records, head seq 7"),
        "{text}"
    );
    assert!(
        text.contains("tenant acme: 4 records, head seq 4"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");

    let public_pem = std::fs::read_to_string(dir.public_key_path()).unwrap();
    let (code, report) = dir.verify_json(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["records"], 11, "{report}");
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["key_id"], key_id_of(&public_pem).as_str());
    assert_eq!(report["witness"], path_str(&dir.witness_path()));
    assert_eq!(report["witness_checkpoints"], 2, "one per tenant: {report}");
    let tenants = report["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2, "{report}");
    for tenant in tenants {
        let name = tenant["tenant"].as_str().unwrap();
        let head = written
            .iter()
            .rev()
            .find(|w| w.record.tenant == name)
            .unwrap();
        assert_eq!(tenant["head_seq"], head.seq, "{tenant}");
        assert_eq!(tenant["head_hash"], head.hash.as_str(), "{tenant}");
        assert_eq!(
            tenant["checkpointed_seq"], head.seq,
            "the shutdown checkpoint covers the head"
        );
        assert_eq!(tenant["database_checkpoints"], 1, "{tenant}");
        assert_eq!(tenant["witness_checkpoints"], 1, "{tenant}");
    }

    // MEHO_DATA_DIR selects the data directory too.
    let output = dir
        .work
        .meho()
        .args(["audit", "verify", "--format", "json"])
        .env("MEHO_DATA_DIR", &dir.data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let report: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(report["records"], 11);
}

#[test]
fn verify_names_an_edited_record_and_exits_1() {
    let (dir, written) = AuditDir::sample();
    dir.sql(&[
        "DROP TRIGGER audit_records_no_update",
        "UPDATE audit_records SET principal = 'mallory' WHERE tenant = 'default' AND seq = 3",
    ]);
    let edited = &written[2];
    assert_eq!((edited.record.tenant.as_str(), edited.seq), ("default", 3));

    let output = dir.run("verify", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout_of(&output));
    let text = stdout_of(&output);
    let fail = text
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("no FAIL line:\n{text}"));
    assert!(fail.contains("seq 3"), "{fail}");
    assert!(fail.contains(&edited.id), "{fail}");
    assert!(!text.contains("OK:"), "{text}");

    let (code, report) = dir.verify_json(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(
        problems.len(),
        1,
        "only the edited chain is damaged: {report}"
    );
    assert_eq!(problems[0]["kind"], "modified", "{report}");
    assert_eq!(problems[0]["tenant"], "default");
    assert_eq!(problems[0]["seq"], 3);
    assert_eq!(problems[0]["record_id"], edited.id.as_str());
    // The intact tenant is still checked in full.
    let acme = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .unwrap();
    assert_eq!(acme["records"], 4, "{report}");
}

#[test]
fn verify_reports_a_deleted_record_as_a_gap() {
    let (dir, written) = AuditDir::sample();
    dir.sql(&[
        "DROP TRIGGER audit_records_no_delete",
        "DELETE FROM audit_records WHERE tenant = 'default' AND seq = 5",
    ]);
    let (code, report) = dir.verify_json(&[]);
    assert_eq!(code, Some(1), "{report}");
    let problem = &report["problems"][0];
    assert_eq!(problem["kind"], "sequence_gap", "{report}");
    assert_eq!(problem["tenant"], "default");
    assert_eq!(problem["seq"], 5);
    // The record found where seq 5 should be.
    assert_eq!(problem["record_id"], written[5].id.as_str(), "{report}");
}

#[test]
fn commands_without_a_store_exit_2_and_create_nothing() {
    let work = Workdir::new();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let missing = work.path().join("missing");
    let commands: &[&[&str]] = &[
        &["verify"],
        &["tail"],
        &["query"],
        &["show", "0192aaaa-0000-7000-8000-000000000000"],
        &["export"],
    ];
    for args in commands {
        for dir in [&data, &missing] {
            let output = work
                .meho()
                .arg("audit")
                .args(*args)
                .arg("--data-dir")
                .arg(dir)
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(2), "audit {args:?}");
            let stderr = stderr_of(&output);
            assert!(
                stderr.contains("no audit store"),
                "audit {args:?}: {stderr}"
            );
            assert!(stderr.contains(path_str(&dir.join("meho.db"))), "{stderr}");
        }
        // With no flags at all, the default data dir (`.meho`) is not created either.
        let output = work.meho().arg("audit").args(*args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "audit {args:?}");
    }
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "nothing in the data dir"
    );
    assert!(!missing.exists());
    assert!(!work.path().join(".meho").exists());
}

#[test]
fn verify_without_the_public_key_exits_2() {
    let (dir, _) = AuditDir::sample();
    std::fs::remove_file(dir.public_key_path()).unwrap();
    let output = dir.run("verify", &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("public key"), "{stderr}");
    assert!(
        stderr.contains(path_str(&dir.public_key_path())),
        "{stderr}"
    );

    let output = dir.run("verify", &["--public-key", "nowhere.pem"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr_of(&output).contains("nowhere.pem"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn verify_with_another_public_key_reports_bad_signatures() {
    let (dir, _) = AuditDir::sample();
    let other = dir.work.path().join("other.pem");
    AuditKey::generate()
        .unwrap()
        .save(&other, &dir.work.path().join("other.pub.pem"))
        .unwrap();
    let other_public = dir.work.path().join("other.pub.pem");
    let (code, report) = dir.verify_json(&["--public-key", path_str(&other_public)]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    // Two tenants, each checkpointed once in the database and once in the witness.
    assert_eq!(problems.len(), 4, "{report}");
    assert!(
        problems.iter().all(|p| p["kind"] == "bad_signature"),
        "{report}"
    );
    let kinds: BTreeSet<&str> = problems
        .iter()
        .map(|p| p["message"].as_str().unwrap().split(' ').next().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["database", "witness"]), "{report}");

    let output = dir.run("verify", &["--public-key", path_str(&other_public)]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout_of(&output);
    assert!(
        text.contains("FAIL") && text.contains("invalid signature"),
        "{text}"
    );
}

#[test]
fn verify_honours_store_and_witness_flags_and_detects_a_rolled_back_database() {
    let dir = AuditDir::new();
    let records = sample_records();
    dir.append(records[..3].to_vec());
    // A copy of the database and the witness as they were at seq 3.
    let old_db = dir.work.path().join("old.db");
    std::fs::copy(dir.db_path(), &old_db).unwrap();
    let wal = dir.data.join("meho.db-wal");
    if wal.exists() {
        std::fs::copy(&wal, dir.work.path().join("old.db-wal")).unwrap();
    }
    let old_witness = dir.work.path().join("old-witness.jsonl");
    std::fs::copy(dir.witness_path(), &old_witness).unwrap();
    dir.append(records[3..5].to_vec());

    let (code, report) = dir.verify_json(&[]);
    assert_eq!((code, &report["records"]), (Some(0), &json!(5)), "{report}");
    assert_eq!(report["witness_checkpoints"], 2);

    // The old database no longer reaches the witness's latest checkpoint.
    let old_url = format!("sqlite://{}", old_db.display());
    let (code, report) = dir.verify_json(&["--store", &old_url]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["records"], 3);
    assert_eq!(report["problems"][0]["kind"], "truncated", "{report}");
    assert_eq!(report["problems"][0]["seq"], 4, "{report}");

    // Against the witness of its own time it is intact: --witness is what is read.
    let (code, report) =
        dir.verify_json(&["--store", &old_url, "--witness", path_str(&old_witness)]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["witness"], path_str(&old_witness));
    assert_eq!(report["witness_checkpoints"], 1);

    // A missing witness file is an empty witness …
    let nowhere = dir.work.path().join("nowhere.jsonl");
    let (code, report) = dir.verify_json(&["--witness", path_str(&nowhere)]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["witness_checkpoints"], 0);
    // … and an unreadable one is a failure.
    let garbage = dir
        .work
        .write("garbage.jsonl", "{\"tenant\": \"default\"}\nnot json\n");
    let (code, report) = dir.verify_json(&["--witness", path_str(&garbage)]);
    assert_eq!(code, Some(1), "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(
        problems.iter().all(|p| p["kind"] == "witness_unreadable"),
        "{report}"
    );
}

#[test]
fn verify_reads_paths_from_the_config_file() {
    let (dir, _) = AuditDir::sample();
    let elsewhere = dir.work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let public = elsewhere.join("audit.pub.pem");
    let witness = elsewhere.join("witness.jsonl");
    std::fs::rename(dir.public_key_path(), &public).unwrap();
    std::fs::rename(dir.witness_path(), &witness).unwrap();
    let config = dir.work.write(
        "custom.toml",
        &format!(
            "[server]\ndata_dir = \"{}\"\n\n[audit]\npublic_key_file = \"{}\"\nwitness_file = \"{}\"\n",
            dir.data.display(),
            public.display(),
            witness.display()
        ),
    );
    let output = dir
        .work
        .meho()
        .args(["audit", "verify", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout_of(&output),
        stderr_of(&output)
    );
    let report: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(report["records"], 11, "{report}");
    assert_eq!(report["witness"], path_str(&witness));
    assert_eq!(report["witness_checkpoints"], 2, "{report}");
}

// --- tail ------------------------------------------------------------------------------------

#[test]
fn tail_n_prints_the_newest_records_oldest_first() {
    let (dir, written) = AuditDir::sample();
    let lines = json_lines(&dir.ok("tail", &["-n", "3", "--format", "json"]));
    let ids: Vec<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = written[8..].iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, expected);

    // With a filter: the newest three of that tenant.
    let lines = json_lines(&dir.ok(
        "tail",
        &["-n", "3", "--tenant", "default", "--format", "json"],
    ));
    let ids: Vec<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = written[4..7].iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, expected);

    // The default is 20: everything here.
    assert_eq!(json_lines(&dir.ok("tail", &["--format", "json"])).len(), 11);

    // Text: a table with a header row, then the three records in order.
    let text = dir.ok("tail", &["-n", "3"]);
    let header = text
        .lines()
        .position(|l| l.contains("tenant") && l.contains("principal"));
    let rows: Vec<usize> = written[8..]
        .iter()
        .map(|w| {
            text.lines()
                .position(|l| l.contains(&w.id))
                .unwrap_or_else(|| panic!("{text}"))
        })
        .collect();
    assert!(header.is_some_and(|h| h < rows[0]), "{text}");
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(!text.contains(&written[7].id), "{text}");
}

#[test]
fn tail_follow_prints_new_records_as_they_are_written() {
    let (dir, written) = AuditDir::sample();
    let log = dir.work.path().join("tail.log");
    let mut tail = Guard(
        meho_process(&dir.work, &log)
            .args([
                "audit", "tail", "-f", "-n", "2", "--tenant", "default", "--format", "json",
            ])
            .arg("--data-dir")
            .arg(&dir.data)
            .spawn()
            .unwrap(),
    );
    let lines = stdout_lines(&mut tail.0);
    let next = || -> Value {
        match lines.recv_timeout(HANG_LIMIT) {
            Ok(Ok(line)) => {
                serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
            }
            other => panic!(
                "no line from tail -f ({other:?}); log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    // The last two records of the tenant first (so the initial query is done).
    assert_eq!(next()["id"], written[5].id.as_str());
    assert_eq!(next()["id"], written[6].id.as_str());

    let fresh =
        |tenant: &str, principal: &str| NewRecord::new(tenant, RecordKind::Announce, principal);
    // Another tenant's record is filtered out; the next line is the default one.
    let round1 = dir.append(vec![fresh("acme", "xavier"), fresh("default", "yolanda")]);
    let line = next();
    assert_eq!(line["id"], round1[1].id.as_str(), "{line}");
    assert_eq!(line["principal"], "yolanda");
    assert_eq!(line["seq"], 8);
    // The cursor moved on: nothing is printed twice.
    let round2 = dir.append(vec![fresh("default", "zack"), fresh("default", "walt")]);
    assert_eq!(next()["id"], round2[0].id.as_str());
    assert_eq!(next()["id"], round2[1].id.as_str());
    assert!(
        matches!(tail.0.try_wait(), Ok(None)),
        "tail -f keeps running"
    );
}

// --- query -----------------------------------------------------------------------------------

#[test]
fn query_each_filter_narrows_to_exactly_the_matching_records() {
    let (dir, written) = AuditDir::sample();
    let all = newest_first(&written, |_| true);
    assert_eq!(dir.query(&[]).0, all, "no filter: everything, newest first");

    let cases: &[(&str, &str)] = &[
        ("--tenant", "acme"),
        ("--principal", "alice"),
        ("--target", "db1"),
        ("--action", "approve"),
        ("--outcome", "ok"),
        ("--kind", "intent"),
        ("--session", "s2"),
        ("--approval", "ap1"),
        ("--call", "c1"),
    ];
    for (flag, value) in cases {
        let expected = newest_first(&written, |w| w.field(flag) == Some(value));
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{flag} {value} is a narrowing case"
        );
        assert_eq!(dir.query(&[flag, value]).0, expected, "{flag} {value}");
    }
    // Filters combine with AND.
    let expected = newest_first(&written, |w| {
        w.field("--principal") == Some("alice") && w.field("--tenant") == Some("default")
    });
    assert_eq!(expected.len(), 2);
    assert_eq!(
        dir.query(&["--principal", "alice", "--tenant", "default"])
            .0,
        expected
    );
    let expected = newest_first(&written, |w| {
        w.field("--session") == Some("s2") && w.field("--kind") == Some("outcome")
    });
    assert_eq!(expected.len(), 1);
    assert_eq!(
        dir.query(&["--session", "s2", "--kind", "outcome"]).0,
        expected
    );
    // No match is an empty page, not an error.
    assert_eq!(dir.query(&["--principal", "nobody"]), (vec![], None));
}

#[test]
fn query_time_filters_take_rfc3339_and_ages() {
    let dir = AuditDir::new();
    let mut rows = Vec::new();
    for principal in ["live1", "live2", "live3"] {
        rows.extend(dir.append(vec![NewRecord::new(
            "live",
            RecordKind::Announce,
            principal,
        )]));
        // Distinct microsecond timestamps for the boundary cases below.
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        rows.windows(2).all(|w| w[0].ts < w[1].ts),
        "fixture: distinct times"
    );
    let archive: Vec<(i64, NewRecord)> = (0..3)
        .map(|i| {
            let at = (JUNE_1_2021 + i * DAY) * 1_000_000;
            (
                at,
                NewRecord::new("archive", RecordKind::Grant, format!("old{i}")),
            )
        })
        .collect();
    rows.extend(dir.plant_chain("archive", &archive));
    // The planted chain is valid to meho's own verifier too.
    let (code, report) = dir.verify_json(&[]);
    assert_eq!((code, &report["records"]), (Some(0), &json!(6)), "{report}");

    let (live, old) = rows.split_at(3);
    let hour_ago = now_micros() - 3_600_000_000;
    let l2 = micros_to_rfc3339(live[1].ts);
    let l3 = micros_to_rfc3339(live[2].ts);
    let cases: Vec<(Vec<&str>, Keep<'_>)> = vec![
        // RFC 3339: `since` is inclusive, `until` exclusive.
        (
            vec![
                "--since",
                "2021-06-02T00:00:00Z",
                "--until",
                "2021-06-03T00:00:00Z",
            ],
            Box::new(|w| w.id == old[1].id),
        ),
        (
            vec!["--until", "2021-06-02T00:00:00Z"],
            Box::new(|w| w.id == old[0].id),
        ),
        (
            vec!["--since", "2021-06-02T00:00:00Z", "--tenant", "archive"],
            Box::new(|w| w.id != old[0].id && w.record.tenant == "archive"),
        ),
        // The same instant written with an offset.
        (
            vec![
                "--since",
                "2021-06-02T02:00:00+02:00",
                "--tenant",
                "archive",
            ],
            Box::new(|w| w.id != old[0].id && w.record.tenant == "archive"),
        ),
        // Microsecond precision.
        (vec!["--since", &l2], Box::new(|w| w.ts >= live[1].ts)),
        (vec!["--until", &l2], Box::new(|w| w.ts < live[1].ts)),
        (
            vec!["--since", &l2, "--until", &l3],
            Box::new(|w| w.id == live[1].id),
        ),
        // Ages, alone and mixed with RFC 3339.
        (vec!["--since", "1h"], Box::new(move |w| w.ts >= hour_ago)),
        (vec!["--until", "1h"], Box::new(move |w| w.ts < hour_ago)),
        (vec!["--since", "20000d"], Box::new(|_| true)),
        (
            vec!["--until", "2h", "--since", "2021-06-02T00:00:00Z"],
            Box::new(|w| w.record.tenant == "archive" && w.id != old[0].id),
        ),
    ];
    for (args, keep) in &cases {
        let expected = newest_first(&rows, keep);
        assert!(
            !expected.is_empty() && expected.len() < rows.len() || args == &["--since", "20000d"],
            "{args:?} is a narrowing case"
        );
        assert_eq!(dir.query(args).0, expected, "{args:?}");
    }

    // The printed time is the record's time.
    let page: Value = serde_json::from_str(&dir.ok(
        "query",
        &["--format", "json", "--until", "2021-06-02T00:00:00Z"],
    ))
    .unwrap();
    assert_eq!(
        page["records"][0]["time"], "2021-06-01T00:00:00.000Z",
        "{page}"
    );
    assert_eq!(page["records"][0]["ts"], JUNE_1_2021 * 1_000_000);
}

#[test]
fn query_invalid_time_exits_2_with_a_message() {
    let (dir, _) = AuditDir::sample();
    for (sub, flag) in [
        ("query", "--since"),
        ("query", "--until"),
        ("tail", "--since"),
    ] {
        let output = dir.run(sub, &[flag, "last tuesday"]);
        assert_eq!(output.status.code(), Some(2), "{sub} {flag}");
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("invalid time `last tuesday`") && stderr.contains("RFC 3339"),
            "{stderr}"
        );
        assert!(stdout_of(&output).is_empty());
    }
}

#[test]
fn query_cursor_pages_through_every_record_exactly_once() {
    let (dir, written) = AuditDir::sample();
    for (limit, filter) in [
        ("3", vec![]),
        ("1", vec![]),
        ("11", vec![]),
        ("4", vec!["--tenant", "default"]),
        ("2", vec!["--principal", "alice"]),
    ] {
        let expected = newest_first(&written, |w| {
            filter.is_empty() || w.field(filter[0]) == Some(filter[1])
        });
        let mut seen = Vec::new();
        let mut cursor: Option<i64> = None;
        for _ in 0..=written.len() + 1 {
            let cursor_text = cursor.map(|c| c.to_string());
            let mut args = vec!["--limit", limit];
            args.extend(filter.iter());
            if let Some(c) = &cursor_text {
                args.extend(["--cursor", c.as_str()]);
            }
            let (ids, next) = dir.query(&args);
            assert!(ids.len() <= limit.parse().unwrap(), "{args:?}");
            seen.extend(ids);
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        assert!(cursor.is_none(), "paging never ended (limit {limit})");
        assert_eq!(seen, expected, "limit {limit} {filter:?}");
    }
}

#[test]
fn query_text_is_a_table_with_a_header_row() {
    let (dir, written) = AuditDir::sample();
    let text = dir.ok("query", &["--tenant", "acme"]);
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                == [
                    "time",
                    "tenant",
                    "seq",
                    "kind",
                    "principal",
                    "target",
                    "action",
                    "outcome",
                    "id",
                ]
        })
        .unwrap_or_else(|| panic!("no header row:\n{text}"));
    let mut previous = header;
    for w in written.iter().rev().filter(|w| w.record.tenant == "acme") {
        let row = lines
            .iter()
            .position(|l| l.contains(&w.id))
            .unwrap_or_else(|| panic!("{} missing:\n{text}", w.id));
        assert!(
            row > previous,
            "rows newest first, after the header:\n{text}"
        );
        let line = lines[row];
        assert!(
            line.contains(&w.record.principal) && line.contains(w.record.kind.as_str()),
            "{line}"
        );
        assert!(line.contains(&format!(" {} ", w.seq)), "{line}");
        previous = row;
    }
    for w in written.iter().filter(|w| w.record.tenant != "acme") {
        assert!(!text.contains(&w.id), "{text}");
    }
    assert!(!text.contains("more:"), "{text}");

    let text = dir.ok("query", &["--limit", "2"]);
    assert!(
        text.lines().any(|l| l.starts_with("more: --cursor ")),
        "{text}"
    );
    let text = dir.ok("query", &["--principal", "nobody"]);
    assert_eq!(text.trim(), "no matching records");
}

// --- show ------------------------------------------------------------------------------------

/// The record's JSON as `show`, `query`, `tail` and `export` print it, pinned byte for byte: every
/// field (`row` and `time` included), keys in name order, absent fields as `null`, `time` in
/// milliseconds. Scripts and other tools read this; it is a contract.
#[test]
fn record_json_is_the_same_bytes_in_show_query_tail_and_export() {
    let (dir, written) = AuditDir::sample();
    for (i, w) in written
        .iter()
        .enumerate()
        .filter(|(i, _)| [0, 5, 9].contains(i))
    {
        let r = &w.record;
        let show = dir.ok("show", &[w.id.as_str(), "--format", "json"]);
        let row = serde_json::from_str::<Value>(&show).unwrap()["row"].clone();
        assert!(row.is_i64(), "{show}");
        let prev_hash = if i == 0 || written[i - 1].record.tenant != r.tenant {
            GENESIS.to_owned()
        } else {
            written[i - 1].hash.clone()
        };
        let expected = serde_json::to_string(&json!({
            "row": row, "id": w.id, "tenant": r.tenant, "seq": w.seq, "ts": w.ts,
            "time": micros_to_rfc3339(w.ts)[..23].to_owned() + "Z", "kind": r.kind.as_str(),
            "principal": r.principal, "target": r.target, "action": r.action,
            "outcome": r.outcome, "session_id": r.session_id, "approval_id": r.approval_id,
            "call_id": r.call_id, "body": r.body, "prev_hash": prev_hash, "hash": w.hash,
        }))
        .unwrap();
        assert_eq!(show.trim_end(), expected, "show");
        let line = |text: &str, what: &str| {
            text.lines()
                .find(|l| l.contains(&w.id))
                .unwrap_or_else(|| panic!("{what} lacks {}: {text}", w.id))
                .to_owned()
        };
        let export = dir.ok("export", &[]);
        assert_eq!(line(&export, "export"), expected, "export");
        let tail = dir.ok("tail", &["-n", "100", "--format", "json"]);
        assert_eq!(line(&tail, "tail"), expected, "tail");
        let query = dir.ok(
            "query",
            &[
                "--principal",
                &r.principal,
                "--tenant",
                &r.tenant,
                "--kind",
                r.kind.as_str(),
                "--format",
                "json",
            ],
        );
        let page: Value = serde_json::from_str(&query).unwrap();
        let records = page["records"].as_array().unwrap();
        let at = records
            .iter()
            .position(|v| v["id"] == w.id.as_str())
            .unwrap();
        let listed: Vec<String> = records
            .iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect();
        assert_eq!(listed[at], expected, "query");
        assert_eq!(
            query.trim_end(),
            format!(
                "{{\"next_cursor\":null,\"records\":[{}]}}",
                listed.join(",")
            ),
            "query page"
        );
    }
}

#[test]
fn show_prints_every_field_of_one_record() {
    let (dir, written) = AuditDir::sample();
    let w = &written[5];
    let shown: Value =
        serde_json::from_str(&dir.ok("show", &[w.id.as_str(), "--format", "json"])).unwrap();
    let r = &w.record;
    let expected = json!({
        "id": w.id, "tenant": r.tenant, "seq": w.seq, "ts": w.ts, "kind": r.kind.as_str(),
        "principal": r.principal, "target": r.target, "action": r.action, "outcome": r.outcome,
        "session_id": r.session_id, "approval_id": r.approval_id, "call_id": r.call_id,
        "body": r.body, "prev_hash": written[4].hash, "hash": w.hash,
        "time": micros_to_rfc3339(w.ts)[..23].to_owned() + "Z",
    });
    for (name, value) in expected.as_object().unwrap() {
        assert_eq!(&shown[name], value, "`{name}` of {shown}");
    }
    assert!(shown["row"].is_i64(), "{shown}");
    assert!(
        shown["session_id"].is_string()
            && shown["approval_id"].is_string()
            && shown["call_id"].is_string()
    );

    // The first record of a chain links to 64 zeros; absent fields are null.
    let first: Value =
        serde_json::from_str(&dir.ok("show", &[written[0].id.as_str(), "--format", "json"]))
            .unwrap();
    assert_eq!(first["prev_hash"], GENESIS);
    assert_eq!(first["target"], Value::Null);
    assert_eq!(first["call_id"], Value::Null);

    // Text is the same object, pretty-printed.
    let text = dir.ok("show", &[w.id.as_str()]);
    assert!(text.lines().count() > 10, "pretty-printed: {text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), shown);
}

#[test]
fn show_unknown_id_exits_2() {
    let (dir, _) = AuditDir::sample();
    let output = dir.run("show", &["0192aaaa-0000-7000-8000-000000000000"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("no audit record `0192aaaa-0000-7000-8000-000000000000`"),
        "{stderr}"
    );
    assert!(stdout_of(&output).is_empty());
}

/// A record whose fields and body carry text that forges its own display.
fn forged_record() -> NewRecord {
    NewRecord {
        target: Some(forged::TARGET.to_owned()),
        action: Some("ssh_execute".to_owned()),
        outcome: Some("pending\u{1b}[32m".to_owned()),
        body: json!({ "command": forged::COMMAND, "reason": forged::REASON }),
        ..NewRecord::new("default", RecordKind::Intent, forged::NAME)
    }
}

#[test]
fn forged_records_show_as_escapes_in_query_show_and_tail_text_and_exactly_in_json() {
    use crate::forged::{NAME, NAME_SHOWN, TARGET, TARGET_SHOWN, assert_shown};

    let dir = AuditDir::new();
    let written = dir.append(vec![forged_record()]);
    let id = written[0].id.as_str();
    let outcome_shown = r"pending\x1b[32m";

    let text = dir.ok("query", &[]);
    assert_shown(
        "audit query",
        &text,
        &[NAME_SHOWN, TARGET_SHOWN, outcome_shown],
    );
    assert_eq!(text.lines().filter(|l| l.contains(id)).count(), 1, "{text}");
    let page: Value = serde_json::from_str(&dir.ok("query", &["--format", "json"])).unwrap();
    let record = &page["records"][0];
    assert_eq!(record["principal"], NAME);
    assert_eq!(record["target"], TARGET);
    assert_eq!(record["body"]["command"], forged::COMMAND);

    // Pretty JSON: JSON escapes C0 controls itself, the CLI what JSON leaves raw.
    let text = dir.ok("show", &[id]);
    assert_shown(
        "audit show",
        &text,
        &[
            r"touch '/etc/cron.d/x\u001b[2K\u001b[1G\x9b2K\x7f\u{202e}systemctl status nginx'",
            r"ticket\x9b31m\x7f\t42",
            r"agent\u001b[2K\u{202e}7",
        ],
    );
    let shown: Value = serde_json::from_str(&dir.ok("show", &[id, "--format", "json"])).unwrap();
    assert_eq!(shown["body"]["command"], forged::COMMAND);
    assert_eq!(shown["body"]["reason"], forged::REASON);
    assert_eq!(shown["principal"], NAME);

    let text = dir.ok("tail", &["-n", "1"]);
    assert_shown("audit tail", &text, &[NAME_SHOWN, TARGET_SHOWN]);
    let lines = json_lines(&dir.ok("tail", &["-n", "1", "--format", "json"]));
    assert_eq!(lines[0]["target"], TARGET);
    let export = json_lines(&dir.ok("export", &[]));
    assert_eq!(export[0]["body"]["command"], forged::COMMAND);

    // Following: one line per record, each field escaped, so a newline in the target cannot
    // print a second, fake record line.
    let log = dir.work.path().join("tail.log");
    let mut tail = Guard(
        meho_process(&dir.work, &log)
            .args(["audit", "tail", "-f", "-n", "1"])
            .arg("--data-dir")
            .arg(&dir.data)
            .spawn()
            .unwrap(),
    );
    let lines = stdout_lines(&mut tail.0);
    let next = || match lines.recv_timeout(HANG_LIMIT) {
        Ok(Ok(line)) => line,
        other => panic!(
            "no line from tail -f ({other:?}); log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
    };
    // The first record's row in the opening table: the initial query is done.
    while !next().contains(id) {}
    let fresh = dir.append(vec![forged_record()]);
    let line = loop {
        let line = next();
        if line.contains("default#") {
            break line;
        }
        assert!(
            !line.contains("intent"),
            "a record line that is not the follow format: {line}"
        );
    };
    assert_shown(
        "audit tail -f",
        &line,
        &[
            &format!(
                "default#{}  intent  {NAME_SHOWN}  {TARGET_SHOWN}",
                fresh[0].seq
            ),
            outcome_shown,
        ],
    );
    assert!(
        lines.recv_timeout(Duration::from_millis(1200)).is_err(),
        "one line per record"
    );
}

// --- export ----------------------------------------------------------------------------------

#[test]
fn export_jsonl_is_reverifiable_by_an_independent_tool() {
    let (dir, written) = AuditDir::sample();
    let text = dir.ok("export", &["--format", "jsonl"]);
    assert_eq!(text, dir.ok("export", &[]), "jsonl is the default");
    let lines = json_lines(&text);
    assert_eq!(lines.len(), written.len());
    let exported: BTreeSet<&str> = lines.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let appended: BTreeSet<&str> = written.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(exported, appended, "every record of every tenant, once");

    let chains = reverify_export(&lines);
    assert_eq!(chains.keys().collect::<Vec<_>>(), ["acme", "default"]);
    for w in &written {
        assert_eq!(
            chains[&w.record.tenant][usize::try_from(w.seq - 1).unwrap()],
            w.hash
        );
    }
    // The bodies are what was appended.
    for w in &written {
        let line = lines.iter().find(|r| r["id"] == w.id.as_str()).unwrap();
        assert_eq!(line["body"], w.record.body);
    }

    // The witness, checked with a plain Ed25519 implementation, vouches for both heads.
    let witness = std::fs::read_to_string(dir.witness_path()).unwrap();
    let public_pem = std::fs::read_to_string(dir.public_key_path()).unwrap();
    let checkpoints = reverify_witness(&witness, &public_pem, &chains);
    for (tenant, chain) in &chains {
        assert!(
            checkpoints
                .iter()
                .any(|c| c["tenant"] == tenant.as_str() && c["seq"] == chain.len()),
            "no checkpoint of `{tenant}`'s head: {witness}"
        );
    }

    // One tenant only.
    let acme = json_lines(&dir.ok("export", &["--tenant", "acme"]));
    assert_eq!(acme.len(), 4);
    assert!(acme.iter().all(|r| r["tenant"] == "acme"));
    reverify_export(&acme);
}

#[test]
fn export_detects_what_verify_detects() {
    // The independent re-verification is not vacuous: the same edit that `verify` reports makes
    // the exported chain fail to recompute.
    let (dir, _) = AuditDir::sample();
    dir.sql(&[
        "DROP TRIGGER audit_records_no_update",
        "UPDATE audit_records SET body = '{\"n\":99}' WHERE tenant = 'acme' AND seq = 2",
    ]);
    let lines = json_lines(&dir.ok("export", &[]));
    let result = std::panic::catch_unwind(|| reverify_export(&lines));
    assert!(result.is_err(), "an edited body must not re-verify");
    assert_eq!(dir.run("verify", &[]).status.code(), Some(1));
}

#[test]
fn export_and_verify_cover_more_than_one_page() {
    let dir = AuditDir::new();
    // Another tenant first, so row numbers and sequence numbers differ.
    dir.append(sample_records()[..7].to_vec());
    let count = 5_003;
    dir.append_concurrently(
        (0..count)
            .map(|i| NewRecord {
                body: json!({ "i": i }),
                ..NewRecord::new("bulk", RecordKind::Announce, "loader")
            })
            .collect(),
    );
    let lines = json_lines(&dir.ok("export", &[]));
    assert_eq!(lines.len(), count + 7);
    let chains = reverify_export(&lines);
    assert_eq!(chains["default"].len(), 7);
    assert_eq!(chains["bulk"].len(), count);
    let bodies: BTreeSet<i64> = lines
        .iter()
        .filter(|r| r["tenant"] == "bulk")
        .map(|r| r["body"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(bodies.len(), count, "each record once");
    let bulk = json_lines(&dir.ok("export", &["--tenant", "bulk"]));
    assert_eq!(bulk.len(), count);

    let (code, report) = dir.verify_json(&[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["records"], count + 7);
    let last = json_lines(&dir.ok("tail", &["-n", "1", "--format", "json"]));
    assert_eq!(last[0]["seq"], count);
}

// --- redaction -------------------------------------------------------------------------------

#[test]
fn secrets_never_reach_the_cli_output() {
    const CANARY: &str = "CANARY123";
    const TOKEN: &str = "zzTOKENzz9876";
    let dir = AuditDir::new();
    let written = dir.append(vec![NewRecord {
        target: Some("db1".to_owned()),
        action: Some(format!("login password={CANARY}")),
        outcome: Some("ok".to_owned()),
        session_id: Some("s-secret".to_owned()),
        body: json!({
            "command": format!("mysql -h db1 --password={CANARY}"),
            "headers": {"Authorization": format!("Bearer {TOKEN}")},
            "url": format!("https://admin:{CANARY}@db1.example/"),
        }),
        ..NewRecord::new("default", RecordKind::Intent, "alice")
    }]);
    let id = written[0].id.as_str();
    let outputs = [
        ("show json", dir.ok("show", &[id, "--format", "json"])),
        ("show text", dir.ok("show", &[id])),
        ("query json", dir.ok("query", &["--format", "json"])),
        ("query text", dir.ok("query", &["--session", "s-secret"])),
        ("tail json", dir.ok("tail", &["--format", "json"])),
        ("tail text", dir.ok("tail", &[])),
        ("export", dir.ok("export", &[])),
    ];
    for (what, text) in &outputs {
        assert!(text.contains(id), "{what} shows the record: {text}");
        assert!(text.contains("[REDACTED]"), "{what}: {text}");
        assert!(!text.contains(CANARY), "{what} leaks the password: {text}");
        assert!(!text.contains(TOKEN), "{what} leaks the token: {text}");
    }
    let shown: Value = serde_json::from_str(&outputs[0].1).unwrap();
    assert_eq!(shown["action"], "login password=[REDACTED]", "{shown}");
    assert_eq!(
        shown["body"]["headers"]["Authorization"], "Bearer [REDACTED]",
        "{shown}"
    );
    // Redacted before it was stored: the database never held it.
    let stored = String::from_utf8_lossy(&dir.store_bytes()).into_owned();
    assert!(!stored.contains(CANARY) && !stored.contains(TOKEN));
    // And the redacted record is what the chain covers.
    assert_eq!(dir.verify_json(&[]).0, Some(0));
}

// --- with a real server ----------------------------------------------------------------------

#[test]
fn serve_writes_a_config_reload_record_and_a_checkpoint_that_verify_accepts() {
    let work = Workdir::new();
    let data = work.path().join("state");
    let args = [
        OsStr::new("--data-dir"),
        data.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
    ];
    serve_once(&work, &args);

    let private = data.join("audit").join("audit-key.pem");
    let public = data.join("audit").join("audit-key.pub.pem");
    assert_eq!(
        mode_of(&private),
        0o600,
        "serve creates the key pair owner-only"
    );
    let private_pem = std::fs::read_to_string(&private).unwrap();
    let public_pem = std::fs::read_to_string(&public).unwrap();

    let audit = |sub: &str, extra: &[&str]| {
        let output = work
            .meho()
            .args(["audit", sub, "--data-dir"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "audit {sub}: {}{}",
            stdout_of(&output),
            stderr_of(&output)
        );
        stdout_of(&output)
    };
    let verify = |records: u64| {
        let text = audit("verify", &[]);
        assert!(
            text.contains(&format!("OK: {records} records verified")),
            "{text}"
        );
        let report: Value = serde_json::from_str(&audit("verify", &["--format", "json"])).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["records"], records, "{report}");
        assert_eq!(report["key_id"], key_id_of(&public_pem).as_str());
        let tenant = &report["tenants"][0];
        // meho's own records go to the reserved system chain, never into a tenant's.
        assert_eq!(tenant["tenant"], "_system", "{report}");
        // Every clean shutdown checkpointed the chain head, in the database and the witness.
        assert_eq!(tenant["checkpointed_seq"], records, "{report}");
        assert_eq!(tenant["database_checkpoints"], records, "{report}");
        assert_eq!(tenant["witness_checkpoints"], records, "{report}");
    };
    verify(1);
    let records = json_lines(&audit("tail", &["--format", "json"]));
    assert_eq!(records.len(), 1);
    let reload = &records[0];
    assert_eq!(reload["kind"], "config_reload", "{reload}");
    assert_eq!(reload["tenant"], "_system");
    assert_eq!(reload["seq"], 1);
    assert_eq!(reload["principal"], "meho");
    assert_eq!(reload["action"], "serve");
    assert_eq!(reload["outcome"], "loaded");
    assert_eq!(
        reload["body"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{reload}"
    );
    assert_eq!(reload["prev_hash"], GENESIS);

    // A restart reuses the key (a new one would fail the first run's checkpoint) and extends
    // the chain.
    serve_once(&work, &args);
    assert_eq!(std::fs::read_to_string(&private).unwrap(), private_pem);
    assert_eq!(std::fs::read_to_string(&public).unwrap(), public_pem);
    verify(2);
    let records = json_lines(&audit("tail", &["--format", "json"]));
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["kind"], "config_reload");
    assert_eq!(records[1]["seq"], 2);
    assert_eq!(records[1]["prev_hash"], records[0]["hash"]);
    let chains = reverify_export(&json_lines(&audit("export", &[])));
    let witness = std::fs::read_to_string(data.join("audit").join("witness.jsonl")).unwrap();
    assert_eq!(reverify_witness(&witness, &public_pem, &chains).len(), 2);
}

#[test]
fn serve_applies_the_configured_redaction_patterns() {
    let work = Workdir::new();
    // The config's path ends up in the startup record's body; a configured pattern hides it.
    let config_dir = work.path().join("CANARY-4242");
    std::fs::create_dir(&config_dir).unwrap();
    let config = config_dir.join("meho.toml");
    std::fs::write(
        &config,
        format!("[audit]\nredact = ['CANARY-[0-9]+']\n\n{}", host("web", "")),
    )
    .unwrap();
    let data = work.path().join("state");
    serve_once(
        &work,
        &[
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--data-dir"),
            data.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ],
    );
    let output = work
        .meho()
        .args(["audit", "tail", "--format", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = stdout_of(&output);
    assert!(!text.contains("CANARY-4242"), "{text}");
    let records = json_lines(&text);
    assert_eq!(records.len(), 1, "{text}");
    let shown_config = records[0]["body"]["config"].as_str().unwrap();
    assert!(shown_config.contains("[REDACTED]"), "{shown_config}");
    assert!(shown_config.ends_with("meho.toml"), "{shown_config}");
    assert_eq!(records[0]["body"]["hosts"], json!(["web"]));
}

#[test]
fn serve_refuses_to_start_without_a_usable_audit_key() {
    // Fail closed: no audit log, no server.
    let work = Workdir::new();
    let data = work.path().join("state");
    let key = data.join("audit").join("audit-key.pem");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let output = work
        .meho()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout_of(&output));
    assert!(!stdout_of(&output).contains("listening"));
    let stderr = stderr_of(&output);
    assert!(stderr.contains(path_str(&key)), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "not a key\n");
    let output = work
        .meho()
        .args(["audit", "query", "--format", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let page: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert_eq!(page["records"], json!([]), "nothing was recorded");
}

/// A reader that stops early (`| head -1`) ends every printing command quietly: exit 0, nothing
/// on stderr (no "Broken pipe" panic). The output is far larger than a pipe's buffer, so the
/// command is still writing when `head` goes away.
#[test]
fn printing_commands_exit_quietly_when_the_reader_goes_away() {
    let dir = AuditDir::new();
    let filler = "x".repeat(400);
    dir.append(
        (0..600)
            .map(|i| NewRecord {
                target: Some(format!("host-{i}")),
                action: Some(format!("action-{i}-{filler}")),
                body: json!({ "i": i }),
                ..NewRecord::new("pipes", RecordKind::Announce, "agent")
            })
            .collect(),
    );
    let meho = env!("CARGO_BIN_EXE_meho");
    let data = dir.data.display().to_string();
    for command in [
        "audit tail -n 600",
        "audit query --limit 1000",
        "audit query --limit 1000 --format json",
        "audit export --format jsonl",
        "config schema",
    ] {
        let stderr = dir.work.path().join("stderr.txt");
        let script = format!(
            "set -o pipefail; '{meho}' {command} {data_arg} 2>'{}' | head -n 1 >/dev/null",
            stderr.display(),
            data_arg = if command.starts_with("audit") {
                format!("--data-dir '{data}'")
            } else {
                String::new()
            }
        );
        let status = Process::new("bash")
            .args(["-c", &script])
            .current_dir(dir.work.path())
            .status()
            .unwrap();
        let errors = std::fs::read_to_string(&stderr).unwrap();
        assert!(
            status.success(),
            "`{command} | head -1`: {status:?}\n{errors}"
        );
        assert!(
            errors.is_empty(),
            "`{command} | head -1` printed:\n{errors}"
        );
    }
}
