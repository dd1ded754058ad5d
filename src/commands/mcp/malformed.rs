//! What the server does with each line a client sends: a message the SDK understands goes on
//! to it; a request it cannot use (a `tools/call` whose `arguments` is not an object, `params`
//! or the tool's `name` missing, a non-JSON-RPC envelope) is answered here, by its id, with a
//! JSON-RPC error saying what is wrong and how to send it instead.
//!
//! Why a JSON-RPC error (-32602 Invalid params) and not a tool result with `isError`: the MCP
//! specification (2025-11-25, SEP-1303) keeps tool results for input the tool itself rejects,
//! so a model can correct its arguments; a request that does not fit the `CallToolRequest`
//! schema, or names no known tool, is a protocol error, which is -32602. Left to the SDK such
//! a request is "method not found" (it parses as an unknown method) or "invalid request"
//! without its id, which a client waits on forever.

use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, ErrorData, JsonRpcMessage,
    RequestId, ServerJsonRpcMessage,
};
use serde_json::{Value, json};

/// What to do with one line from the client.
pub(super) enum Verdict {
    /// A message for the SDK.
    Pass(Box<ClientJsonRpcMessage>),
    /// An answer to send back; the line goes no further.
    Answer(Box<ServerJsonRpcMessage>),
    /// Nothing to answer: not JSON (no id to answer, and answering garbage can start an
    /// error storm with a peer that echoes), a blank line, or a malformed notification
    /// (JSON-RPC forbids answering notifications).
    Skip(&'static str),
}

/// Sorts one line (without its newline).
pub(super) fn classify(line: &str) -> Verdict {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line).trim();
    if line.is_empty() {
        return Verdict::Skip("a blank line");
    }
    match serde_json::from_str::<ClientJsonRpcMessage>(line) {
        // The SDK parses a request for a method it knows but with params it cannot use as a
        // request for an unknown method: catch those here.
        Ok(JsonRpcMessage::Request(r)) => match &r.request {
            ClientRequest::CustomRequest(c) if KNOWN.contains(&c.method.as_str()) => {
                let error = invalid_params(&c.method, c.params.as_ref());
                answer(Some(r.id.clone()), error)
            }
            _ => Verdict::Pass(Box::new(JsonRpcMessage::Request(r))),
        },
        Ok(message) => Verdict::Pass(Box::new(message)),
        Err(e) if e.is_syntax() || e.is_eof() => Verdict::Skip("a line that is not JSON"),
        Err(e) => match serde_json::from_str::<Value>(line) {
            Ok(value) => explain(&value, &e),
            Err(_) => Verdict::Skip("a line that is not JSON"),
        },
    }
}

/// The requests the SDK has a type for: one of these parsed as an unknown method had params
/// that did not fit.
const KNOWN: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/directory/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "skills/list",
    "skills/get",
];

/// How a `tools/call` is sent, for hints.
const CALL_SHAPE: &str = "send {\"name\": \"<tool>\", \"arguments\": {…}} (tools/list names the tools and their arguments)";

fn answer(id: Option<RequestId>, error: ErrorData) -> Verdict {
    Verdict::Answer(Box::new(JsonRpcMessage::error(error, id)))
}

/// Valid JSON that is no message the SDK takes: a request gets an answer by its id.
fn explain(value: &Value, err: &serde_json::Error) -> Verdict {
    let Some(object) = value.as_object() else {
        let (message, hint) = if value.is_array() {
            (
                "JSON-RPC batches are not supported",
                "send each message as its own line (MCP dropped batching in 2025-06-18)",
            )
        } else {
            (
                "a JSON-RPC message must be a JSON object",
                "send {\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/list\"}, one message a line",
            )
        };
        return answer(None, invalid_request(message, hint));
    };
    let is_reply = object.contains_key("result") || object.contains_key("error");
    let Some(raw_id) = object.get("id").filter(|_| !is_reply) else {
        return Verdict::Skip("a malformed notification or reply");
    };
    let id = serde_json::from_value::<RequestId>(raw_id.clone()).ok();
    let error = if id.is_none() {
        invalid_request(
            &format!("the request's `id` must be a string or an integer, not {raw_id}"),
            "give each request a unique string or integer `id`",
        )
    } else if object.get("jsonrpc") != Some(&json!("2.0")) {
        invalid_request(
            "`jsonrpc` must be \"2.0\"",
            "send {\"jsonrpc\": \"2.0\", \"id\": …, \"method\": …, \"params\": {…}}",
        )
    } else {
        match object.get("method") {
            Some(Value::String(m)) if KNOWN.contains(&m.as_str()) => {
                invalid_params(m, object.get("params"))
            }
            // An unknown method stays that, whatever its params (as the SDK answers it).
            Some(Value::String(m)) => {
                ErrorData::new(rmcp::model::ErrorCode::METHOD_NOT_FOUND, m.clone(), None)
            }
            Some(other) => invalid_request(
                &format!("`method` must be a string, not {}", kind(other)),
                "name the method as a string, e.g. \"tools/call\"",
            ),
            None => invalid_request(
                &format!("not a JSON-RPC request: {err}"),
                "send {\"jsonrpc\": \"2.0\", \"id\": …, \"method\": …, \"params\": {…}}",
            ),
        }
    };
    answer(id, error)
}

/// The -32602 answer to `method` with `params` it cannot take, saying which part is wrong.
fn invalid_params(method: &str, params: Option<&Value>) -> ErrorData {
    let params = params.filter(|p| !p.is_null());
    let Some(params) = params else {
        return if method == "tools/call" {
            params_error(
                "tools/call needs `params` with the tool's `name`",
                CALL_SHAPE,
                None,
            )
        } else {
            let hint = format!("see the MCP specification for the params of {method}");
            params_error(&format!("{method} needs `params`"), &hint, None)
        };
    };
    if !params.is_object() {
        let message = format!(
            "`params` of {method} must be a JSON object, not {}",
            kind(params)
        );
        let hint = if method == "tools/call" {
            CALL_SHAPE.to_string()
        } else {
            format!("send the params of {method} as a JSON object")
        };
        return params_error(&message, &hint, None);
    }
    if method == "tools/call" {
        return invalid_call(params);
    }
    let hint = format!("see the MCP specification for the params of {method}");
    params_error(&format!("invalid params for {method}"), &hint, None)
}

/// The -32602 answer to a `tools/call` whose params are an object but no `CallToolRequest`.
fn invalid_call(params: &Value) -> ErrorData {
    let name = match params.get("name") {
        None | Some(Value::Null) => {
            return params_error(
                "tools/call without the tool's `name` in `params`",
                CALL_SHAPE,
                None,
            );
        }
        Some(Value::String(name)) => name,
        Some(other) => {
            let message = format!(
                "the tool `name` of tools/call must be a string, not {}",
                kind(other)
            );
            return params_error(&message, CALL_SHAPE, None);
        }
    };
    match params.get("arguments") {
        Some(a) if !a.is_null() && !a.is_object() => {
            let message = format!(
                "`arguments` of tool `{name}` must be a JSON object, not {}",
                kind(a)
            );
            let text_of_object = a
                .as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .is_some_and(|v| v.is_object());
            let hint = if text_of_object {
                "`arguments` is a string holding JSON: send the object itself, not its text"
            } else {
                "send the tool's arguments as an object of named values, e.g. {\"worktree\": \".\"}, or leave `arguments` out"
            };
            params_error(&message, hint, Some(name))
        }
        _ => {
            // Some other field that does not fit: the SDK's own words for it.
            let why = serde_json::from_value::<CallToolRequestParams>(params.clone())
                .err()
                .map_or_else(String::new, |e| format!(": {e}"));
            let message = format!("invalid params for tools/call of tool `{name}`{why}");
            params_error(&message, CALL_SHAPE, Some(name))
        }
    }
}

fn params_error(message: &str, hint: &str, tool: Option<&str>) -> ErrorData {
    let mut data = json!({ "hint": hint });
    if let Some(t) = tool {
        data["tool"] = json!(t);
    }
    ErrorData::invalid_params(message.to_string(), Some(data))
}

fn invalid_request(message: &str, hint: &str) -> ErrorData {
    ErrorData::invalid_request(message.to_string(), Some(json!({ "hint": hint })))
}

/// A JSON value's type, as an error names it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(line: &str) -> Value {
        match classify(line) {
            Verdict::Answer(m) => serde_json::to_value(&*m).unwrap(),
            Verdict::Pass(m) => panic!("passed: {m:?}"),
            Verdict::Skip(why) => panic!("skipped: {why}"),
        }
    }

    fn call(params: &str) -> Value {
        error_of(&format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#
        ))
    }

    #[test]
    fn arguments_that_are_not_an_object_are_invalid_params_naming_the_tool() {
        for (args, kind) in [
            ("\"x\"", "a string"),
            ("[1]", "an array"),
            ("5", "a number"),
        ] {
            let e = call(&format!(r#"{{"name":"status","arguments":{args}}}"#));
            assert_eq!(e["id"], 7);
            assert_eq!(e["error"]["code"], -32602);
            let message = e["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("`status`") && message.contains("JSON object"),
                "{message}"
            );
            assert!(message.ends_with(kind), "{message}");
            assert_eq!(e["error"]["data"]["tool"], "status");
        }
        let e = call(r#"{"name":"status","arguments":"{\"worktree\":\".\"}"}"#);
        let hint = e["error"]["data"]["hint"].as_str().unwrap();
        assert!(hint.contains("not its text"), "{hint}");
    }

    #[test]
    fn missing_params_or_name_are_invalid_params() {
        let missing = error_of(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call"}"#);
        assert_eq!(missing["id"], "a");
        assert_eq!(missing["error"]["code"], -32602);
        assert!(
            missing["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`name`")
        );
        for (params, said) in [
            ("null", "needs `params`"),
            ("{}", "without the tool's `name`"),
            (r#"{"name":5}"#, "must be a string, not a number"),
            ("[1,2]", "must be a JSON object, not an array"),
            ("\"status\"", "must be a JSON object, not a string"),
        ] {
            let e = call(params);
            assert_eq!((&e["id"], &e["error"]["code"]), (&json!(7), &json!(-32602)));
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(said), "{params}: {message}");
            assert!(
                e["error"]["data"]["hint"]
                    .as_str()
                    .unwrap()
                    .contains("tools/list")
            );
        }
    }

    #[test]
    fn good_messages_pass_untouched() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"status"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"status","arguments":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method","params":{}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}",
        ] {
            assert!(matches!(classify(line), Verdict::Pass(_)), "{line}");
        }
    }

    #[test]
    fn envelopes_that_are_not_json_rpc_get_invalid_request_with_their_id() {
        let e = error_of(r#"{"jsonrpc":"1.0","id":4,"method":"tools/list"}"#);
        assert_eq!((&e["id"], &e["error"]["code"]), (&json!(4), &json!(-32600)));
        let e = error_of(r#"{"jsonrpc":"2.0","id":5,"method":7}"#);
        assert_eq!((&e["id"], &e["error"]["code"]), (&json!(5), &json!(-32600)));
        let e = error_of(r#"{"jsonrpc":"2.0","id":6,"method":"no/such","params":3}"#);
        assert_eq!((&e["id"], &e["error"]["code"]), (&json!(6), &json!(-32601)));
        let e = error_of(r#"[{"jsonrpc":"2.0","id":8,"method":"ping"}]"#);
        assert_eq!(
            (&e["id"], &e["error"]["code"]),
            (&Value::Null, &json!(-32600))
        );
        assert!(e["error"]["message"].as_str().unwrap().contains("batches"));
    }

    #[test]
    fn garbage_and_notifications_are_not_answered() {
        for line in [
            "",
            "   ",
            "not json",
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":3}"#,
            r#"{"jsonrpc":"2.0","id":9,"result":5,"error":{}}"#,
        ] {
            assert!(matches!(classify(line), Verdict::Skip(_)), "{line}");
        }
    }
}
