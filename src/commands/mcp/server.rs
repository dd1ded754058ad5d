//! The MCP tool definitions (names, argument schemas, descriptions) over [`Tools`]: each call
//! runs on a blocking thread and answers with structured content, or a tool error carrying
//! the CLI's message and hint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tools::{Handle, Tools};
use crate::output::JSON_VERSION;

/// What the server tells a client about itself and its rules.
const INSTRUCTIONS: &str = "git-vmoat gives each git worktree its own VM running the project's stack on its stock ports. \
Every tool acts on the worktree named by `worktree` (default: the server's directory) and returns the same JSON as \
`git vmoat <command> --json`. `up` returns at once with a handle (poll `status` or `logs`) unless `wait_seconds` is \
given. Nothing runs that a person has not approved: an unapproved project fails with a hint to run `git vmoat trust`, \
which only the user may do.";

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Target {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// Wait up to this many seconds for the stack to be up (default 0: return at once with a
    /// handle). Progress is reported while waiting when the request has a progress token.
    wait_seconds: Option<u64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// How many of the log's last lines to return (default 50).
    lines: Option<usize>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TestArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// Extra arguments appended to the test command, each quoted as is.
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// The command and its arguments, run in the VM in the worktree's directory (no shell
    /// between: each element is one argument).
    argv: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TunnelArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// Guest ports to forward (default: tunnel.ports, else the containers' published ports).
    #[serde(default)]
    ports: Vec<u16>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DestroyArgs {
    /// Path of the git worktree (default: the server's working directory).
    worktree: Option<String>,
    /// Must be true: destroying deletes the VM's containers, images and volumes.
    #[serde(default)]
    confirm: bool,
    /// Destroy even though the worktree has uncommitted changes (its files are never touched).
    #[serde(default)]
    force: bool,
}

#[derive(Clone)]
pub(super) struct Server {
    tools: Arc<Tools>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Server {
    pub(super) fn new(tools: Tools) -> Self {
        Self {
            tools: Arc::new(tools),
            tool_router: Self::tool_router(),
        }
    }

    /// Runs a blocking tool off the protocol's thread.
    async fn call<F>(&self, f: F) -> CallToolResult
    where
        F: FnOnce(&Tools) -> Result<Value> + Send + 'static,
    {
        let tools = self.tools.clone();
        match tokio::task::spawn_blocking(move || f(&tools)).await {
            Ok(Ok(v)) => CallToolResult::structured(v),
            Ok(Err(e)) => tool_error(&e),
            Err(e) => tool_error(&anyhow::anyhow!("the tool stopped: {e}")),
        }
    }

    #[tool(
        description = "Every worktree of this repository with its VM's state, containers, health, tunnel URLs and background job (each as `status`), plus every VM of the repository (`status --all`, orphans marked)."
    )]
    async fn worktrees(
        &self,
        Parameters(a): Parameters<Target>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(move |t| t.worktrees(a.worktree.as_deref())).await)
    }

    #[tool(
        description = "This worktree's VM: name, backend, state, size, containers, health, tunnels (URLs; dead ones marked) and background job; the JSON of `git vmoat status --json`."
    )]
    async fn status(&self, Parameters(a): Parameters<Target>) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(move |t| t.status(a.worktree.as_deref())).await)
    }

    #[tool(
        description = "Bring the stack up in the worktree's VM (create, provision, run commands.up, wait for health) as a background job. Returns at once with a handle and the job's state, or waits up to `wait_seconds`; follow it with `status` or `logs`."
    )]
    async fn up(
        &self,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        Parameters(a): Parameters<UpArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let tools = self.tools.clone();
        let path = a.worktree.clone();
        let started = tokio::task::spawn_blocking(move || tools.start_up(path.as_deref())).await;
        let mut handle = match started {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Ok(tool_error(&e)),
            Err(e) => return Ok(tool_error(&anyhow::anyhow!("the tool stopped: {e}"))),
        };
        let wait = Duration::from_secs(a.wait_seconds.unwrap_or(0));
        wait_for(&mut handle, wait, meta, &peer).await;
        if !handle.done() {
            return Ok(CallToolResult::structured(handle.report(None)));
        }
        let tools = self.tools.clone();
        let status = tokio::task::spawn_blocking(move || {
            let status = tools.status(a.worktree.as_deref()).ok();
            (handle.report(status), handle)
        })
        .await;
        let Ok((report, handle)) = status else {
            return Ok(tool_error(&anyhow::anyhow!("the tool stopped")));
        };
        if handle.job.effective_state() == crate::jobs::JobState::Ok {
            return Ok(CallToolResult::structured(report));
        }
        let error = handle.job.error.as_deref().unwrap_or("the job died");
        let hint = "the job's log is in `log_tail` (more with the `logs` tool); fix the cause and call `up` again";
        Ok(error_result(error, Some(hint), report))
    }

    #[tool(
        description = "The last lines of the worktree's background job log (what `up` and new-worktree jobs print), with the job's state."
    )]
    async fn logs(&self, Parameters(a): Parameters<LogsArgs>) -> Result<CallToolResult, ErrorData> {
        let lines = a.lines.unwrap_or(50);
        Ok(self
            .call(move |t| t.logs(a.worktree.as_deref(), lines))
            .await)
    }

    #[tool(
        description = "Run the project's test command (commands.test) in the VM, with `args` appended. Returns its exit code (non-zero is a result, not an error), duration and the end of its output."
    )]
    async fn test(&self, Parameters(a): Parameters<TestArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(move |t| t.test(a.worktree.as_deref(), a.args))
            .await)
    }

    #[tool(
        description = "Run a command (`argv`, no shell) in the VM, in the worktree's directory. Returns its exit code and the end of its stdout and stderr (64 KiB each at most)."
    )]
    async fn exec(&self, Parameters(a): Parameters<ExecArgs>) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(move |t| t.exec(a.worktree.as_deref(), a.argv))
            .await)
    }

    #[tool(
        description = "Forward the stack's ports to 127.0.0.1 and return their URLs (the JSON of `git vmoat tunnel --json`). Always use the returned URLs: a port another worktree holds gets a different host port."
    )]
    async fn tunnel(
        &self,
        Parameters(a): Parameters<TunnelArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let ports = a.ports.iter().map(u16::to_string).collect();
        Ok(self
            .call(move |t| t.tunnel(a.worktree.as_deref(), ports))
            .await)
    }

    #[tool(
        description = "Stop the worktree's VM (tunnels closed, disk kept for the next `up`); returns its status."
    )]
    async fn down(&self, Parameters(a): Parameters<Target>) -> Result<CallToolResult, ErrorData> {
        Ok(self.call(move |t| t.down(a.worktree.as_deref())).await)
    }

    #[tool(
        description = "Delete the worktree's VM with its containers, images and volumes (never the worktree's files). Needs `confirm: true`; refused while the worktree has uncommitted changes unless `force: true`."
    )]
    async fn destroy(
        &self,
        Parameters(a): Parameters<DestroyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(self
            .call(move |t| t.destroy(a.worktree.as_deref(), a.confirm, a.force))
            .await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    /// The router's call, with arguments that do not fit a tool's schema answered like every
    /// other tool error (message, hint, structured content), so a model can correct itself.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !self.tool_router.has_route(&name) {
            // A protocol error in the MCP specification (-32602), as the SDK answers it, but
            // naming the tool and the ones there are.
            let tools: Vec<String> = self
                .tool_router
                .list_all()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            let hint = format!("call one of: {}", tools.join(", "));
            let data = json!({"hint": hint, "tool": name, "tools": tools});
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`"),
                Some(data),
            ));
        }
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        match self.tool_router.call(tcc).await? {
            rmcp::model::CallToolResponse::Complete(r)
                if r.is_error == Some(true) && r.structured_content.is_none() =>
            {
                let said = r
                    .content
                    .first()
                    .and_then(|c| c.as_text())
                    .map_or_else(String::new, |t| t.text.clone());
                let message = format!("invalid arguments for {name}: {said}");
                let hint = "pass the arguments the tool's input schema lists (tools/list), with their types";
                let data = json!({"version": JSON_VERSION, "error": message, "hint": hint});
                Ok(error_result(&message, Some(hint), data).into())
            }
            other => Ok(other),
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("git-vmoat", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Polls the job until it is done or `wait` has passed, reporting its last log line as
/// progress when the client asked for progress.
async fn wait_for(
    handle: &mut Handle,
    wait: Duration,
    meta: RequestMetaObject,
    peer: &Peer<RoleServer>,
) {
    let token = meta.get_progress_token();
    let start = Instant::now();
    let mut last = None;
    let mut step = 0.0;
    while !handle.done() && start.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(250)).await;
        handle.refresh();
        let line = handle.last_line();
        if let Some(token) = &token
            && line.is_some()
            && line != last
        {
            step += 1.0;
            let note = ProgressNotificationParam::new(token.clone(), step)
                .with_message(line.clone().unwrap_or_default());
            let _ = peer.notify_progress(note).await;
            last = line;
        }
    }
}

/// An error as a tool error: the CLI's message and hint, as text and as structured content.
fn tool_error(err: &anyhow::Error) -> CallToolResult {
    let hint = crate::error::find_hint(err);
    let data = json!({"version": JSON_VERSION, "error": format!("{err:#}"), "hint": hint});
    error_result(&format!("{err:#}"), hint, data)
}

fn error_result(message: &str, hint: Option<&str>, data: Value) -> CallToolResult {
    let mut text = format!("error: {message}");
    if let Some(h) = hint {
        text.push_str(&format!("\nhint: {h}"));
    }
    let mut result = CallToolResult::structured_error(data);
    result.content = vec![ContentBlock::text(text)];
    result
}
