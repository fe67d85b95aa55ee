//! terok-testkit: what tests need to run terok for real without touching the developer's own
//! files — an isolated HOME and XDG environment, and podman fixtures (a base image made with
//! debootstrap, because no container registry is reachable on these machines).
//!
//! It also has a mock upstream HTTP server ([`upstream::MockUpstream`]) for the vault, a
//! scripted model server speaking the Anthropic Messages API, the OpenAI Responses API or Chat
//! Completions ([`model::ScriptedModel`], also as the `terok-mock-model` binary) for the real
//! agent CLIs, how each agent runs the demo against it ([`demo`]), and a stand-in agent
//! ([`agents`]) for launch tests, and a headless Chromium driven over DevTools ([`browser`]).
//!
//! Dev-only: shipped crates may use it only as a dev-dependency (`cargo xtask layers` and
//! deny.toml enforce this).

// A tool, not shipped: it writes its files (fixtures, configs) directly.
#![allow(clippy::disallowed_methods)]

pub mod agents;
pub mod base_image;
pub mod browser;
pub mod cli;
pub mod demo;
pub mod env;
pub mod full_disk;
pub mod model;
pub mod podman;
pub mod server;
pub mod unix_http;
pub mod upstream;

pub use env::IsolatedEnv;
