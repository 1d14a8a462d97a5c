//! `[secrets]`: the key file that seals stored secrets.

use std::path::Path;

use crate::{host, parse_err, parse_ok, position_of};

#[test]
fn secrets_key_file_is_optional_and_taken_as_written() {
    let config = parse_ok(&host("web", ""));
    assert_eq!(config.secrets.key_file, None);

    let config = parse_ok("[secrets]\nkey_file = \"/etc/meho/secrets.key\"\n");
    assert_eq!(
        config.secrets.key_file.as_deref(),
        Some(Path::new("/etc/meho/secrets.key"))
    );
}

#[test]
fn empty_secrets_key_file_is_an_error_at_its_value() {
    let text = "[secrets]\nkey_file = \" \"\n";
    let errors = parse_err(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("key_file"), "{errors:#?}");
    assert_eq!(
        (errors[0].line, errors[0].column),
        position_of(text, "\" \"")
    );
}

#[test]
fn unknown_secrets_keys_are_rejected() {
    let errors = parse_err("[secrets]\nkey = \"x\"\n");
    assert!(errors[0].message.contains("unknown field"), "{errors:#?}");
}
