//! Integration tests: the built binary in real git repos and worktrees, against the Colima
//! stand-in (tests/support/colima), which runs a real sshd per profile, and the netns backend.
//! Run through tests/common/harness.rs: a test the machine cannot run is reported as ignored.

mod common;

mod integration {
    pub mod agent_worktrees;
    pub mod approval;
    pub mod bad_input;
    pub mod basics;
    pub mod colima;
    pub mod config;
    pub mod data;
    pub mod data_recovery;
    pub mod docs;
    pub mod e2e;
    pub mod faults;
    pub mod gc;
    pub mod git_side;
    pub mod lifecycle;
    pub mod mcp;
    pub mod mcp_protocol;
    pub mod messages;
    pub mod netns;
    pub mod netns_docker;
    pub mod rootless;
    pub mod safety;
    pub mod setup;
    pub mod suspend;
    pub mod suspend_edges;
    pub mod top;
    pub mod tunnels;
    pub mod tunnels_wake;
    pub mod ux;
}

fn main() -> std::process::ExitCode {
    use integration::*;
    let all = [
        agent_worktrees::tests(),
        approval::tests(),
        bad_input::tests(),
        basics::tests(),
        colima::tests(),
        config::tests(),
        data::tests(),
        data_recovery::tests(),
        docs::tests(),
        e2e::tests(),
        faults::tests(),
        gc::tests(),
        git_side::tests(),
        lifecycle::tests(),
        mcp::tests(),
        mcp_protocol::tests(),
        messages::tests(),
        netns::tests(),
        netns_docker::tests(),
        rootless::tests(),
        safety::tests(),
        setup::tests(),
        suspend::tests(),
        suspend_edges::tests(),
        top::tests(),
        tunnels::tests(),
        tunnels_wake::tests(),
        ux::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    common::harness::main(all)
}
