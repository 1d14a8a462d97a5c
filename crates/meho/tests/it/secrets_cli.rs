//! `meho secrets …` end to end: the binary writes keys and secrets, and the store is read back
//! through `meho_store` (and as raw bytes) to check what actually landed there.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use meho_store::Store;
use meho_store::secrets::{KEY_ENV, SealedSecrets, SecretKey, SecretsError};
use serde_json::Value;

use crate::{Workdir, stderr_of, stdout_of};

/// A workdir with a key made by `meho secrets keygen` and a config pointing at it.
struct Setup {
    work: Workdir,
    key: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let work = Workdir::new();
        let out = work
            .secrets()
            .args(["secrets", "keygen", "--out", "k1.key"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let key = work.path().join("k1.key");
        work.write(
            "meho.toml",
            "[server]\ndata_dir = \"state\"\n\n[secrets]\nkey_file = \"k1.key\"\n",
        );
        Setup { work, key }
    }

    fn url(&self) -> String {
        format!(
            "sqlite://{}",
            self.work.path().join("state").join("meho.db").display()
        )
    }

    /// `meho secrets set NAME [ARGS]` with `value` on stdin.
    fn set(&self, name: &str, value: &[u8], args: &[&str]) -> std::process::Output {
        self.work
            .secrets()
            .args(["secrets", "set", name])
            .args(args)
            .write_stdin(value.to_vec())
            .output()
            .unwrap()
    }

    async fn sealed(&self, key: &Path) -> (Store, SealedSecrets) {
        let store = Store::open(&self.url()).await.unwrap();
        let key = SecretKey::from_file(key).unwrap();
        let secrets = SealedSecrets::new(&store, Some(key));
        (store, secrets)
    }
}

impl Workdir {
    /// `meho` with `MEHO_SECRETS_KEY` cleared too.
    fn secrets(&self) -> assert_cmd::Command {
        let mut cmd = self.meho();
        cmd.env_remove(KEY_ENV);
        cmd
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keygen_writes_a_0600_key_and_never_replaces_one() {
    let setup = Setup::new();
    let mode = std::fs::metadata(&setup.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read_to_string(&setup.key).unwrap();
    let key = SecretKey::from_base64(&before).unwrap();

    let out = setup
        .work
        .secrets()
        .args(["secrets", "keygen", "--out", "k1.key", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("already exists"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read_to_string(&setup.key).unwrap(), before);

    let out = setup
        .work
        .secrets()
        .args(["secrets", "keygen", "--out", "k2.key", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let answer: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let k2 = SecretKey::from_file(&setup.work.path().join("k2.key")).unwrap();
    assert_eq!(answer["key_id"], k2.id());
    assert_ne!(k2.id(), key.id());
    assert!(
        !stdout_of(&out).contains(&k2.to_base64()),
        "the key is never printed"
    );
}

#[tokio::test]
async fn set_reads_stdin_and_list_shows_no_value() {
    let setup = Setup::new();
    let canary = "CANARY-7f3e9c1d2b4a";
    let out = setup.set("api.token", format!("{canary}\n").as_bytes(), &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("stored `api.token` in tenant `default`"),
        "{}",
        stdout_of(&out)
    );
    let out = setup.set("other", b"second\r\n", &["--tenant", "acme"]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // The trailing newline is gone; the value opens with the key file.
    let (store, secrets) = setup.sealed(&setup.key).await;
    assert_eq!(
        secrets.get("default", "api.token").await.unwrap().expose(),
        canary.as_bytes()
    );
    assert_eq!(
        secrets.get("acme", "other").await.unwrap().expose(),
        b"second"
    );
    store.close().await;

    for format in ["text", "json"] {
        let out = setup
            .work
            .secrets()
            .args(["secrets", "list", "--format", format])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(text.contains("api.token"), "{text}");
        assert!(!text.contains(canary), "{text}");
        assert!(!text.contains("other"), "another tenant's secret: {text}");
    }
    let out = setup
        .work
        .secrets()
        .args(["secrets", "list", "--tenant", "acme", "--format", "json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(listed["tenant"], "acme");
    assert_eq!(listed["secrets"][0]["name"], "other");
    assert_eq!(listed["secrets"][0]["key_id"], listed["key_id"]);
    assert_eq!(listed["secrets"][0].get("value"), None);

    // Not in any byte of the database files either.
    for entry in std::fs::read_dir(setup.work.path().join("state")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, canary.as_bytes()));
    }

    // Delete, then it is gone (and deleting again is an error).
    let out = setup
        .work
        .secrets()
        .args(["secrets", "delete", "api.token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = setup
        .work
        .secrets()
        .args(["secrets", "delete", "api.token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no secret `api.token` in tenant `default`"),
        "{}",
        stderr_of(&out)
    );
}

#[tokio::test]
async fn rotate_reencrypts_everything_onto_the_new_key() {
    let setup = Setup::new();
    for (name, tenant) in [("a", "default"), ("b", "default"), ("c", "acme")] {
        let out = setup.set(
            name,
            format!("value-{name}").as_bytes(),
            &["--tenant", tenant],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let out = setup
        .work
        .secrets()
        .args(["secrets", "keygen", "--out", "k2.key"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let k2 = setup.work.path().join("k2.key");

    let out = setup
        .work
        .secrets()
        .args([
            "secrets",
            "rotate",
            "--new-key-file",
            "k2.key",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let answer: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(answer["reencrypted"], 3);
    let new_id = SecretKey::from_file(&k2).unwrap().id();
    assert_eq!(answer["new_key_id"], new_id);

    let (store, with_new) = setup.sealed(&k2).await;
    let (_, with_old) = setup.sealed(&setup.key).await;
    for (name, tenant) in [("a", "default"), ("b", "default"), ("c", "acme")] {
        assert_eq!(
            with_new.get(tenant, name).await.unwrap().expose(),
            format!("value-{name}").as_bytes()
        );
        let err = with_old.get(tenant, name).await.unwrap_err();
        assert!(matches!(err, SecretsError::WrongKey { .. }), "{err:?}");
    }
    store.close().await;

    // Until the config points at the new key, `list` says the rows are not under it.
    let out = setup
        .work
        .secrets()
        .args(["secrets", "list"])
        .output()
        .unwrap();
    assert!(
        stdout_of(&out).contains("not the configured key"),
        "{}",
        stdout_of(&out)
    );
    // A secret set under the old key before the config was switched is picked up by running the
    // rotation again; what is already under the new key is left alone.
    let out = setup.set("late", b"x", &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = setup
        .work
        .secrets()
        .args(["secrets", "rotate", "--new-key-file", "k2.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("re-encrypted 1 secret "),
        "{}",
        stdout_of(&out)
    );
}

#[test]
fn the_environment_key_wins_and_no_key_is_a_usage_error() {
    let setup = Setup::new();
    // No key anywhere: a clear error, exit 2, nothing stored.
    std::fs::write(
        setup.work.path().join("meho.toml"),
        "[server]\ndata_dir = \"state\"\n",
    )
    .unwrap();
    let out = setup.set("api.token", b"v", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_of(&out).trim(),
        "error: no secrets key: set MEHO_SECRETS_KEY or [secrets] key_file"
    );
    assert!(
        !setup.work.path().join("state").exists(),
        "no store was created"
    );

    // MEHO_SECRETS_KEY: used, and preferred over a key file.
    let env_key = SecretKey::generate().unwrap();
    setup.work.write(
        "meho.toml",
        "[server]\ndata_dir = \"state\"\n\n[secrets]\nkey_file = \"k1.key\"\n",
    );
    let out = setup
        .work
        .secrets()
        .env(KEY_ENV, env_key.to_base64())
        .args(["secrets", "set", "api.token", "--format", "json"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let answer: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(answer["key_id"], env_key.id());

    // A malformed variable is named, and its content is not echoed.
    let out = setup
        .work
        .secrets()
        .env(KEY_ENV, "c2VjcmV0LWJ1dC1zaG9ydA==")
        .args(["secrets", "set", "x"])
        .write_stdin("v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("MEHO_SECRETS_KEY"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");
}

#[test]
fn a_group_readable_key_file_is_refused() {
    let setup = Setup::new();
    std::fs::set_permissions(&setup.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = setup.set("api.token", b"v", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("k1.key"), "{err}");
    assert!(err.contains("mode 0644"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn values_never_come_from_argv_and_names_are_checked() {
    let setup = Setup::new();
    let out = setup
        .work
        .secrets()
        .args(["secrets", "set", "api.token", "hunter2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a value argument is refused");
    let out = setup.set("bad/name", b"v", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("invalid secret name"),
        "{}",
        stderr_of(&out)
    );
    let out = setup.set("empty", b"\n", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("0 bytes"), "{}", stderr_of(&out));
}

#[test]
fn tenants_are_escaped_on_the_terminal() {
    let setup = Setup::new();
    let out = setup.set("t", b"v", &["--tenant", "acme\u{202e}evil"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(text.contains(r"acme\u{202e}evil"), "{text}");
    assert!(!text.contains('\u{202e}'), "{text}");
}
