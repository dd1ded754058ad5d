//! `git vmoat mcp` spoken to in raw JSON-RPC over its stdio, as a client with its own idea of
//! the protocol might: requests that do not fit it get an error by their id that says what is
//! wrong (never "method not found" for a method the server has), and the server keeps serving.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};

use super::mcp::TOOLS;
use crate::common::*;

/// `git vmoat mcp` spoken to in raw JSON-RPC, one message a line each way.
struct Raw {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Raw {
    /// Started in `dir` and initialized.
    fn start(env: &Env, dir: &Path) -> Self {
        let mut child = env
            .cmd(bin(), dir)
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut raw = Self {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        let init = raw.ask(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        );
        assert_eq!(
            init["result"]["serverInfo"]["name"], "git-vmoat",
            "{init:#}"
        );
        raw.send(r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#);
        raw
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// The server's next message. The wait is bounded only so that a request left unanswered
    /// fails the test instead of hanging it.
    fn next(&self) -> Value {
        let line = self.lines.recv_timeout(Duration::from_secs(120));
        serde_json::from_str(&line.expect("the server did not answer")).unwrap()
    }

    fn ask(&mut self, message: Value) -> Value {
        self.send(&message.to_string());
        self.next()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error answering request `id`, which must have `code` and a message containing `said`,
/// and a hint.
#[track_caller]
fn error_for(answer: &Value, id: Value, code: i64, said: &str) -> Value {
    assert_eq!(
        (&answer["id"], &answer["error"]["code"]),
        (&id, &json!(code)),
        "{answer:#}"
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(said), "{answer:#}");
    let hint = answer["error"]["data"]["hint"].as_str().unwrap_or_default();
    assert!(!hint.is_empty(), "{answer:#}");
    answer["error"]["data"].clone()
}

/// A `tools/call` the SDK cannot parse (`arguments` not an object, `params` or the tool's
/// `name` missing or of the wrong type) or naming no tool gets -32602 by its id, saying what
/// is wrong, not "method not found"; the server serves the requests that follow.
fn malformed_tool_calls_get_invalid_params_by_their_id() {
    let env = Env::new();
    let repo = env.repo("proj");
    let mut s = Raw::start(&env, &repo);
    let cases = [
        (
            json!({"name": "status", "arguments": "{}"}),
            "`arguments` of tool `status` must be a JSON object, not a string",
        ),
        (
            json!({"name": "status", "arguments": ["."]}),
            "`arguments` of tool `status` must be a JSON object, not an array",
        ),
        (
            json!({"name": "logs", "arguments": 7}),
            "`arguments` of tool `logs` must be a JSON object, not a number",
        ),
        (
            json!(["status"]),
            "`params` of tools/call must be a JSON object, not an array",
        ),
        (
            Value::Null,
            "tools/call needs `params` with the tool's `name`",
        ),
        (
            json!({"arguments": {}}),
            "tools/call without the tool's `name`",
        ),
        (
            json!({"name": 5}),
            "the tool `name` of tools/call must be a string, not a number",
        ),
        (
            json!({"name": "nope", "arguments": {}}),
            "unknown tool `nope`",
        ),
    ];
    for (i, (params, said)) in cases.into_iter().enumerate() {
        let r = s.ask(json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}));
        let data = error_for(&r, json!(i), -32602, said);
        let hint = data["hint"].as_str().unwrap();
        match i {
            0 => assert!(
                hint.contains("send the object itself, not its text"),
                "{hint}"
            ),
            7 => assert!(data["tools"].as_array().unwrap().contains(&json!("logs"))),
            _ => {}
        }
    }
    let r = s.ask(json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call"}));
    error_for(&r, json!("x"), -32602, "needs `params`");
    other_envelopes_are_answered_by_their_id(&mut s);
    still_serving(&mut s, &repo);
    // Its end of input ends the server cleanly.
    drop(s.stdin.take());
    assert!(s.child.wait().unwrap().success());
}

/// Good requests after the bad ones are served: `arguments` null or left out is no arguments.
fn still_serving(s: &mut Raw, repo: &Path) {
    for (id, params) in [
        (30, json!({"name": "logs", "arguments": null})),
        (31, json!({"name": "logs"})),
    ] {
        let r =
            s.ask(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}));
        assert_eq!(r["id"], id, "{r:#}");
        let result = &r["result"];
        assert_eq!(result["isError"], false, "{r:#}");
        assert_eq!(
            result["structuredContent"]["worktree"],
            json!(repo),
            "{r:#}"
        );
    }
    let list = s.ask(json!({"jsonrpc": "2.0", "id": 32, "method": "tools/list"}));
    let listed = list["result"]["tools"].as_array().map(Vec::len);
    assert_eq!(listed, Some(TOOLS.len()), "{list:#}");
}

/// A message that is not a JSON-RPC request gets -32600 by its id (null for a batch); what has
/// no id to answer (not JSON, a notification) gets nothing.
fn other_envelopes_are_answered_by_their_id(s: &mut Raw) {
    let r = s.ask(json!({"jsonrpc": "1.0", "id": "old", "method": "tools/list"}));
    error_for(&r, json!("old"), -32600, "`jsonrpc` must be \"2.0\"");
    let r = s.ask(json!([{"jsonrpc": "2.0", "id": 20, "method": "ping"}]));
    error_for(&r, Value::Null, -32600, "batches are not supported");
    s.send("this is not json");
    s.send(r#"{"jsonrpc": "2.0", "method": "notifications/progress", "params": 3}"#);
    let pong = s.ask(json!({"jsonrpc": "2.0", "id": 21, "method": "ping"}));
    assert_eq!(
        (&pong["id"], &pong["result"]),
        (&json!(21), &json!({})),
        "{pong:#}"
    );
}

crate::tests! {
    malformed_tool_calls_get_invalid_params_by_their_id;
}
