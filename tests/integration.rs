//! Integration tests: the built binary in real git repos and worktrees, against the Colima
//! stand-in (tests/support/colima), which runs a real sshd per profile.

mod common;

mod integration {
    mod bad_input;
    mod basics;
    mod colima;
    mod config;
    mod docs;
    mod e2e;
    mod faults;
    mod git_side;
    mod lifecycle;
    mod messages;
    mod netns;
    mod safety;
    mod tunnels;
    mod ux;
}
