//! Runs `tests/corpus/decisions.toml`: every case through the engine exactly as `meho policy check`
//! does, every load-error scenario through the config loader.

use std::path::Path;

use meho_config::Config;
use meho_core::Decision;
use meho_policy::{Elevation, Grant, Overlay, Request, Waiver};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    scenario: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    config: String,
    expect_config_error: Option<String>,
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    host: String,
    command: String,
    #[serde(default)]
    sudo: bool,
    sudo_user: Option<String>,
    caller: Option<String>,
    end_user: Option<String>,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    expired_grants: Vec<String>,
    #[serde(default)]
    waivers: Vec<CaseWaiver>,
    allowed: bool,
    require_approval: bool,
    rule: String,
    reason_code: String,
    tier: Option<String>,
    would_deny: Option<bool>,
    would_require_approval: Option<bool>,
    force_command: Option<String>,
    #[serde(default)]
    force_command_null: bool,
    #[serde(default)]
    warnings_contain: Vec<String>,
    #[serde(default)]
    warnings_empty: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseWaiver {
    command: String,
    #[serde(default)]
    sudo: bool,
    #[serde(default)]
    sudo_user: String,
    #[serde(default = "default_caller")]
    caller: String,
    #[serde(default)]
    end_user: String,
    #[serde(default)]
    expired: bool,
}

fn default_caller() -> String {
    "cli".to_owned()
}

const NOW: u64 = 1_800_000_000;

fn load_corpus() -> Corpus {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/decisions.toml");
    let text = std::fs::read_to_string(&path).expect("read corpus");
    toml_edit::de::from_str(&text).expect("corpus is valid")
}

fn check_case(config: &Config, scenario: &str, case: &Case) -> Vec<String> {
    let Some(host) = config.hosts.get(&case.host) else {
        return vec![format!("unknown host `{}`", case.host)];
    };
    let grants: Vec<Grant> =
        case.grants
            .iter()
            .enumerate()
            .map(|(i, p)| Grant::new(format!("g{i}"), p, Default::default(), NOW + 3600).unwrap())
            .chain(
                case.expired_grants.iter().enumerate().map(|(i, p)| {
                    Grant::new(format!("x{i}"), p, Default::default(), NOW - 1).unwrap()
                }),
            )
            .collect();
    let waivers: Vec<Waiver> = case
        .waivers
        .iter()
        .enumerate()
        .map(|(i, w)| Waiver {
            id: format!("w{i}"),
            command: w.command.clone(),
            elevation: Elevation::from_request(
                w.sudo,
                Some(w.sudo_user.as_str()).filter(|u| !u.is_empty()),
            ),
            caller: w.caller.clone(),
            end_user: w.end_user.clone(),
            expires_at: if w.expired { NOW - 1 } else { NOW + 3600 },
        })
        .collect();
    let request = Request {
        command: &case.command,
        elevation: Elevation::from_request(case.sudo, case.sudo_user.as_deref()),
        caller: case.caller.as_deref().unwrap_or("cli"),
        end_user: case.end_user.as_deref().unwrap_or(""),
        now: NOW,
    };
    let overlay = Overlay {
        grants: &grants,
        waivers: &waivers,
    };
    let decided = host.policy.decide(&request, overlay);
    let d: &Decision = &decided.decision;
    let mut problems = Vec::new();
    let mut expect = |what: &str, want: String, got: String| {
        if want != got {
            problems.push(format!("{what}: want {want:?}, got {got:?}"));
        }
    };
    expect("allowed", case.allowed.to_string(), d.may_run().to_string());
    expect(
        "require_approval",
        case.require_approval.to_string(),
        d.json_require_approval().to_string(),
    );
    expect("rule", case.rule.clone(), d.rule.clone());
    expect(
        "reason_code",
        case.reason_code.clone(),
        d.reason_code.to_string(),
    );
    if let Some(tier) = &case.tier {
        expect("tier", tier.clone(), d.tier.to_string());
    }
    if let Some(v) = case.would_deny {
        expect("would_deny", v.to_string(), d.would_deny.to_string());
    }
    if let Some(v) = case.would_require_approval {
        expect(
            "would_require_approval",
            v.to_string(),
            d.would_require_approval.to_string(),
        );
    }
    if let Some(fc) = &case.force_command {
        expect(
            "force_command",
            format!("{fc:?}"),
            format!(
                "{:?}",
                decided.shape.force_command.as_deref().unwrap_or("<null>")
            ),
        );
    }
    if case.force_command_null && decided.shape.force_command.is_some() {
        problems.push(format!(
            "force_command: want null, got {:?}",
            decided.shape.force_command
        ));
    }
    for needle in &case.warnings_contain {
        if !d.warnings.iter().any(|w| w.contains(needle.as_str())) {
            problems.push(format!(
                "warnings: want one containing {needle:?}, got {:?}",
                d.warnings
            ));
        }
    }
    if case.warnings_empty && !d.warnings.is_empty() {
        problems.push(format!("warnings: want none, got {:?}", d.warnings));
    }
    problems
        .into_iter()
        .map(|p| {
            format!(
                "[{scenario}] {} (`{}`): {p}",
                case.name,
                case.command.escape_debug()
            )
        })
        .collect()
}

#[test]
fn every_corpus_case_decides_as_specified() {
    let corpus = load_corpus();
    let mut failures = Vec::new();
    let mut cases = 0;
    for scenario in &corpus.scenario {
        let loaded = Config::parse(&scenario.config, Some(Path::new("corpus.toml")));
        match (&scenario.expect_config_error, loaded) {
            (Some(needle), Ok(_)) => failures.push(format!(
                "[{}] config loaded but an error containing {needle:?} was expected",
                scenario.name
            )),
            (Some(needle), Err(err)) => {
                let message = err.to_string();
                if !message.to_lowercase().contains(&needle.to_lowercase()) {
                    failures.push(format!(
                        "[{}] config error {message:?} does not contain {needle:?}",
                        scenario.name
                    ));
                }
                if !message.starts_with("corpus.toml:") {
                    failures.push(format!(
                        "[{}] config error {message:?} does not name file:line:column",
                        scenario.name
                    ));
                }
            }
            (None, Err(err)) => {
                failures.push(format!("[{}] config failed to load: {err}", scenario.name))
            }
            (None, Ok(config)) => {
                for case in &scenario.case {
                    cases += 1;
                    failures.extend(check_case(&config, &scenario.name, case));
                }
            }
        }
    }
    assert!(
        cases >= 80,
        "the corpus must hold at least 80 decision cases, has {cases}"
    );
    assert!(
        failures.is_empty(),
        "{} corpus failure(s) over {cases} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_case_names_are_unique() {
    let corpus = load_corpus();
    let mut seen = std::collections::BTreeSet::new();
    for case in corpus.scenario.iter().flat_map(|s| &s.case) {
        assert!(
            seen.insert(&case.name),
            "duplicate case name `{}`",
            case.name
        );
    }
}
