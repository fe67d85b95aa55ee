//! The executor as an orchestrator embeds it: a session opened on the recording fake runtime
//! (or real podman) with a real vault daemon served in the test process.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod auth;
mod doctor;
mod faults;
mod images;
mod krun;
mod kube;
mod launch;
mod rejections;
mod remote_engine;
mod roster_v3;
mod routes;
mod services_tcp;
mod sessions;
mod support;
mod vault_container;
mod web_tool;
