//! `git vmoat mcp` driven by clients nobody here wrote: the official Python MCP SDK
//! (tests/support/mcp_client.py) brings a netns stack up, runs commands and tests in it,
//! tunnels and destroys it, and is refused until a person approved the project; the MCP
//! Inspector's CLI lists the tools and calls `status`; the plugin's `.mcp.json` starts the server.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// The stack: a web server on the VM's 127.0.0.1:8080 serving the worktree's `www/`.
const STACK: &str = r#"backend = "netns"
[commands]
up = "python3 -m http.server 8080 --bind 127.0.0.1 --directory \"$PWD/www\" </dev/null >/dev/null 2>&1 &"
test = "exit"
[health]
url = "http://127.0.0.1:8080/"
timeout = 60
[tunnel]
ports = [8080]
"#;

pub(crate) const TOOLS: [&str; 9] = [
    "destroy",
    "down",
    "exec",
    "logs",
    "status",
    "test",
    "tunnel",
    "up",
    "worktrees",
];

/// Runs the Python client against `server` in `dir` with `calls`; its report.
fn client(env: &Env, dir: &Path, server: &[PathBuf], calls: Value) -> Value {
    let plan = env.tmp.path().join(format!("plan-{}.json", free_port()));
    std::fs::write(&plan, json!({ "calls": calls }).to_string()).unwrap();
    let out = env
        .cmd(mcp_python(), dir)
        .arg(support_dir().join("mcp_client.py"))
        .arg(&plan)
        .args(server)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn server() -> Vec<PathBuf> {
    vec![bin(), "mcp".into()]
}

/// The `i`th call's result, which must (not) be a tool error.
#[track_caller]
fn call(report: &Value, i: usize, error: bool) -> &Value {
    let c = &report["calls"][i];
    assert_eq!(c["is_error"], error, "call {i}: {c:#}");
    c
}

fn cli_json(env: &Env, dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&env.vmoat(dir, args).ok().stdout).unwrap()
}

/// A linked worktree with the stack committed.
fn stack_worktree(env: &Env) -> (PathBuf, PathBuf) {
    let repo = env.repo("proj");
    let wt = env.worktree(&repo, &env.home.join("src/agent"), "agent");
    env.write(&wt.join("www/index.html"), "the agent's page\n");
    env.write(&wt.join("vmoat.toml"), STACK);
    env.git(&wt, &["add", "."]);
    env.git(&wt, &["commit", "-q", "-m", "stack"]);
    (repo, wt)
}

#[track_caller]
fn tools_are_listed_with_their_argument_names(report: &Value) {
    let tools = report["tools"].as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    let props = |name: &str| {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        t["input_schema"]["properties"].clone()
    };
    for name in TOOLS {
        assert!(props(name)["worktree"].is_object(), "{name} takes worktree");
    }
    assert_eq!(props("test")["args"]["type"], "array");
    assert_eq!(props("exec")["argv"]["type"], "array");
    assert!(props("up")["wait_seconds"].is_object());
    assert_eq!(props("destroy")["confirm"]["type"], "boolean");
    assert_eq!(props("destroy")["force"]["type"], "boolean");
    assert_eq!(report["server"]["name"], "git-vmoat");
}

/// Before a person approved the project, an agent can look but not run anything, and the
/// server approves nothing on its behalf.
fn refused_until_approved(env: &Env, wt: &Path) {
    let r = client(
        env,
        wt,
        &server(),
        json!([
            {"tool": "status"},
            {"tool": "up", "args": {"wait_seconds": 5}},
            {"tool": "test"},
            {"tool": "exec", "args": {"argv": ["true"]}},
            {"tool": "logs", "args": {"lines": "ten"}},
        ]),
    );
    tools_are_listed_with_their_argument_names(&r);
    // Arguments of the wrong type: a tool error like the others, saying which and what to do.
    let bad = call(&r, 4, true);
    assert!(
        bad["structured"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid arguments for logs"),
        "{bad:#}"
    );
    assert!(
        bad["structured"]["hint"]
            .as_str()
            .unwrap()
            .contains("schema")
    );
    // The same report as the CLI's, field for field.
    let status = &call(&r, 0, false)["structured"];
    assert_eq!(status, &cli_json(env, wt, &["status", "--json"]));
    for i in 1..4 {
        let c = call(&r, i, true);
        assert!(
            c["text"]
                .as_str()
                .unwrap()
                .contains("run `git vmoat trust`"),
            "{c:#}"
        );
        assert!(c["structured"]["hint"].as_str().unwrap().contains("trust"));
    }
    let after = cli_json(env, wt, &["status", "--json"]);
    assert_eq!(
        (&after["exists"], &after["job"]),
        (&json!(false), &Value::Null),
        "nothing ran"
    );
    // Still unapproved: the CLI's own gate says so too.
    let approvals = std::fs::read_to_string(env.state_dir().join("approvals.json"));
    assert!(
        approvals.is_err(),
        "the server approved something: {approvals:?}"
    );
}

fn an_agent_drives_a_netns_stack_through_the_python_sdk() {
    let env = Env::new();
    let (repo, wt) = stack_worktree(&env);
    refused_until_approved(&env, &wt);
    env.vmoat(&wt, &["trust"]).ok();

    let r = client(
        &env,
        &repo,
        &server(),
        json!([
            {"tool": "up", "args": {"worktree": wt}},
            {"tool": "up", "args": {"worktree": wt, "wait_seconds": 120}, "progress": true},
            {"tool": "exec", "args": {"worktree": wt, "argv": ["sh", "-c", "cat www/index.html; echo oops >&2; exit 7"]}},
            {"tool": "test", "args": {"worktree": wt}},
            {"tool": "test", "args": {"worktree": wt, "args": ["3"]}},
            {"tool": "tunnel", "args": {"worktree": wt}},
            {"tool": "logs", "args": {"worktree": wt}},
            {"tool": "worktrees"},
            {"tool": "status", "args": {"worktree": "../agent"}},
        ]),
    );
    // `up` returns at once with a handle; waiting on it ends with the stack up and healthy.
    let started = &call(&r, 0, false)["structured"];
    assert!(started["handle"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(["running", "ok"].contains(&started["job"]["state"].as_str().unwrap()));
    let up = &call(&r, 1, false)["structured"];
    assert_eq!(
        (&up["done"], &up["job"]["state"]),
        (&json!(true), &json!("ok")),
        "{up:#}"
    );
    assert_eq!(up["status"]["state"], "Running");
    assert_eq!(up["status"]["health"]["ok"], true);

    let exec = &call(&r, 2, false)["structured"];
    assert_eq!(exec["exit_code"], 7);
    assert_eq!(exec["stdout"], "the agent's page\n");
    assert_eq!(exec["stderr"], "oops\n");
    assert_eq!(call(&r, 3, false)["structured"]["exit_code"], 0);
    let failing = &call(&r, 4, false)["structured"];
    assert_eq!(
        (&failing["exit_code"], &failing["command"]),
        (&json!(3), &json!("exit '3'"))
    );

    let tunnel = &call(&r, 5, false)["structured"];
    let url = tunnel["tunnels"][0]["url"].as_str().unwrap();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(http_get(port).as_deref(), Some("the agent's page\n"));
    let logs = &call(&r, 6, false)["structured"];
    assert!(logs["tail"].as_str().unwrap().contains("is up"), "{logs:#}");

    let all = &call(&r, 7, false)["structured"];
    let listed: Vec<&str> = all["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worktree"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [repo.to_str().unwrap(), wt.to_str().unwrap()]);
    assert_eq!(all["worktrees"][1]["state"], "Running");
    assert_eq!(all["worktrees"][1]["tunnels"][0]["url"], url);
    assert_eq!(all["vms"][0]["worktree"], json!(wt));
    // The same report as the CLI's (a relative `worktree` starts at the server's directory).
    let status = &call(&r, 8, false)["structured"];
    assert_eq!(status, &cli_json(&env, &wt, &["status", "--json"]));

    stopped_then_destroyed_only_when_confirmed(&env, &wt);
}

/// `down` stops the VM; `destroy` needs `confirm`, and `force` for a worktree with changes.
fn stopped_then_destroyed_only_when_confirmed(env: &Env, wt: &Path) {
    env.write(&wt.join("notes.txt"), "uncommitted\n");
    let r = client(
        env,
        wt,
        &server(),
        json!([
            {"tool": "down"},
            {"tool": "destroy"},
            {"tool": "destroy", "args": {"confirm": true}},
            {"tool": "status"},
            {"tool": "destroy", "args": {"confirm": true, "force": true}},
        ]),
    );
    assert_eq!(call(&r, 0, false)["structured"]["state"], "Stopped");
    assert!(
        call(&r, 1, true)["text"]
            .as_str()
            .unwrap()
            .contains("confirm: true")
    );
    assert!(
        call(&r, 2, true)["text"]
            .as_str()
            .unwrap()
            .contains("uncommitted changes")
    );
    assert_eq!(
        call(&r, 3, false)["structured"]["exists"],
        true,
        "refusals kept the VM"
    );
    assert_eq!(call(&r, 4, false)["structured"]["exists"], false);
    assert_eq!(cli_json(env, wt, &["status", "--json"])["exists"], false);
    assert!(wt.join("notes.txt").exists() && wt.join("www/index.html").exists());
}

/// The Inspector's CLI mode (its own client) lists the tools and calls `status`.
fn the_mcp_inspector_lists_the_tools_and_calls_status() {
    let env = Env::new();
    let repo = env.repo("proj");
    let inspector = mcp_inspector().unwrap();
    // The Inspector hands the server only a few variables of its own: pass the hermetic ones.
    let mut vars = vec![];
    for k in [
        "HOME",
        "PATH",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
    ] {
        let v = match k {
            "HOME" => env.home.display().to_string(),
            "PATH" => env.path_var(true),
            "GIT_CONFIG_NOSYSTEM" => "1".into(),
            _ => "/dev/null".into(),
        };
        vars.extend(["-e".to_string(), format!("{k}={v}")]);
    }
    let run = |method: &[&str]| -> Value {
        let out = env
            .cmd(&inspector, &repo)
            .arg("--cli")
            .args(&vars)
            .arg(bin())
            .arg("mcp")
            .args(method)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let list = run(&["--method", "tools/list"]);
    let mut names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS);
    let status = run(&["--method", "tools/call", "--tool-name", "status"]);
    assert_eq!(status["isError"], false, "{status:#}");
    assert_eq!(
        status["structuredContent"],
        cli_json(&env, &repo, &["status", "--json"])
    );
}

/// The plugin registers the server: the command its `.mcp.json` names starts it.
fn the_plugin_registers_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(".mcp.json")).unwrap()).unwrap();
    let entry = &config["mcpServers"]["git-vmoat"];
    let mut argv = vec![PathBuf::from(entry["command"].as_str().unwrap())];
    argv.extend(
        entry["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| PathBuf::from(a.as_str().unwrap())),
    );
    let env = Env::new();
    let repo = env.repo("proj");
    // The command is found on PATH, as a client would find it.
    let r = client(&env, &repo, &argv, json!([{"tool": "status"}]));
    tools_are_listed_with_their_argument_names(&r);
    assert_eq!(call(&r, 0, false)["structured"]["worktree"], json!(repo));
    // The skill and the slash command use the tools when the client has them.
    for doc in ["skills/vmoat/SKILL.md", "commands/vmoat.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(
            text.contains("MCP") && text.contains("`up`") && text.contains("`status`"),
            "{doc}"
        );
    }
}

/// `git vmoat mcp` hands over to `git-vmoat-mcp`; without it, it says how to get it.
fn without_its_server_binary_mcp_says_how_to_install_it() {
    let env = Env::new();
    let dir = env.tmp.path().join("alone");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(bin(), dir.join("git-vmoat")).unwrap();
    // A test running in parallel may fork while the copy is still open for writing: retry.
    let out = (0..100)
        .find_map(|_| {
            let r = env
                .cmd(dir.join("git-vmoat"), &env.home)
                .arg("mcp")
                .env("PATH", "/usr/bin:/bin")
                .output();
            match r {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                }
                r => Some(r.unwrap()),
            }
        })
        .expect("the copy stayed busy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start the MCP server `git-vmoat-mcp`")
            && stderr.contains("hint:")
            && out.stdout.is_empty(),
        "{stderr}"
    );
}

crate::tests! {
    without_its_server_binary_mcp_says_how_to_install_it;
    an_agent_drives_a_netns_stack_through_the_python_sdk: Netns, McpPython;
    the_mcp_inspector_lists_the_tools_and_calls_status: McpInspector, Ssh;
    the_plugin_registers_the_server: McpPython, Ssh;
}
