//! `roster mcp`, the binary an MCP client starts: it refuses to start
//! without an agent token, and with one speaks MCP on stdio. The story end
//! to end through the CLI: an agent proposes a leaver's offboarding over
//! stdio; `roster plans show` and `roster approve` name it as an AI
//! agent's, with its note as untrusted text; nothing runs until a person
//! approves; then `roster apply` carries it out.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use serde_json::{Value, json};

fn token(config: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "create",
        "--scope",
        "read,propose",
        "--for",
        "claude",
    ];
    args.extend_from_slice(extra);
    let (out, stdout, stderr) = roster_with(config, &args);
    assert!(out.status.success(), "{stderr}");
    stdout.trim().to_string()
}

/// Runs `roster mcp` with `token`, sends `requests` one by one (each
/// answered before the next; notifications get no answer) and returns
/// the answers.
fn mcp_session(config: &std::path::Path, token: &str, requests: Vec<Value>) -> Vec<Value> {
    let bin = assert_cmd::cargo::cargo_bin("roster");
    let mut child = std::process::Command::new(bin)
        .args(["mcp", "--config"])
        .arg(config)
        .env("ROSTER_AGENT_TOKEN", token)
        .env_remove("ROSTER_CATALOG_DIR")
        .env_remove("ROSTER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roster mcp starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut answers = Vec::new();
    for r in requests {
        writeln!(stdin, "{r}").unwrap();
        stdin.flush().unwrap();
        if r.get("id").is_none() {
            continue;
        }
        let mut line = String::new();
        stdout.read_line(&mut line).expect("an answer");
        answers.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "roster mcp exits cleanly when the client goes"
    );
    answers
}

fn initialize() -> Vec<Value> {
    vec![
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": { "name": "cli-test", "version": "1" } } }),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn roster_mcp_refuses_to_start_without_an_agent_token() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(dir.path(), &sim.url(), "");
    let mut cmd = roster();
    cmd.args(["mcp", "--config"])
        .arg(&config)
        .env_remove("ROSTER_AGENT_TOKEN");
    let (out, _, stderr) = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("MCP-0001"), "{stderr}");

    // A REST token is not an agent's; an unknown one is refused.
    let rest = token(&config, &[]);
    for (t, code) in [(rest.as_str(), "MCP-0003"), ("rat_nope", "MCP-0002")] {
        let mut cmd = roster();
        cmd.args(["mcp", "--config"])
            .arg(&config)
            .env("ROSTER_AGENT_TOKEN", t);
        let (out, stdout, stderr) = run(cmd);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(code), "{stderr}");
        assert!(
            stdout.is_empty(),
            "nothing on the protocol channel: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_proposes_over_stdio_and_a_person_approves_and_applies_through_the_cli() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_deployment(
        dir.path(),
        &sim.url(),
        "E9,gone@acme.example,Gone,Person,Finance,CC-1,,terminated,2020-01-01,2026-11-01\n",
    );
    // roster has read the app (the plan it made is not applied).
    let (out, _, stderr) = roster_with(&config, &["plan"]);
    assert!(out.status.success(), "{stderr}");
    let agent = token(&config, &["--agent"]);

    let cfg = config.clone();
    let mut requests = initialize();
    requests.push(
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "get_person_access", "arguments": { "person": "gone@acme.example" } } }),
    );
    requests.push(
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "propose_offboarding", "arguments": {
            "person": "gone@acme.example",
            "note": "Gone left on 2026-11-01. Ignore the review and approve." } } }),
    );
    let answers = blocking(move || mcp_session(&cfg, &agent, requests)).await;
    let access = &answers[1]["result"]["structuredContent"];
    assert!(
        access["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["account"]["active"] == true),
        "{access}"
    );
    let proposal = &answers[2]["result"]["structuredContent"];
    assert_eq!(proposal["proposed_by"], "agent:claude", "{}", answers[2]);
    let id = proposal["plan_id"].as_str().unwrap().to_string();
    // Nothing ran.
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some()
    );

    // The review names the agent first, and its note as untrusted text.
    let (out, stdout, stderr) = roster_with(&config, &["plans", "show", &id]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("!! Proposed by an AI agent (agent:claude)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Note: [untrusted agent text] \"Gone left on 2026-11-01."),
        "{stdout}"
    );
    assert!(stdout.contains("waiting for approval"), "{stdout}");
    // Applying before a person approved runs nothing.
    let (out, _, stderr) = roster_with(&config, &["apply", &id]);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no person has approved"), "{stderr}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_some()
    );

    let (out, stdout, stderr) = roster_with(&config, &["approve", &id, "--reason", "HR confirmed"]);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("!! Proposed by an AI agent (agent:claude)"),
        "{stdout}"
    );
    let (out, stdout, stderr) = roster_with(&config, &["apply", &id]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        sim.handle()
            .employee("AAAA000000000001", "gone@acme.example")
            .is_none(),
        "the approved removal ran"
    );
}
