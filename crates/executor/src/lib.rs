//! terok-executor: the library an orchestrator embeds to run an AI coding agent in a hardened
//! Podman container (the `terok-executor` binary is a thin clap layer on top of it).
//!
//! - [`AgentRunner`]: headless and interactive launches ([`RunOptions`] has a typed field for
//!   every applicable `run` flag), returning a [`LaunchedTask`] handle: container name, output
//!   lines, and [`LaunchedTask::wait_with`] → [`RunOutcome`] with the agent's exit code (124
//!   when the timeout fired; the host enforces it too).
//! - [`lifecycle`]: `list`, `start`, `stop`, `rm` of tasks by label.
//! - [`preflight`]: what a launch needs from the host, as data.
//! - [`render_stream_json_line`]: Claude's stream-json as readable text.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use terok_executor::{AgentRunner, ImageSource, RunOptions, VaultClient};
//! let env = terok_core::env::HostEnv::from_process();
//! let paths = terok_core::paths::TerokPaths::resolve(&env, None)?;
//! let roster = terok_roster::RosterLoader::for_paths(&paths).load()?;
//! let podman = terok_podman::PodmanCli::new();
//! let vault = VaultClient::new(terok_vault::VaultPaths::from_terok(&paths).control_socket());
//! let runner = AgentRunner::new(&podman, &roster, &paths, env).with_vault(vault);
//! let request = terok_image_build::BuildRequest::new("ubuntu:24.04", vec!["claude".into()]);
//! let options = RunOptions::headless("claude", ".", "fix the failing test", ImageSource::Ensure(request));
//! let task = runner.launch(&options, &mut |event| eprintln!("{event:?}")).await?;
//! eprintln!("container {}", task.name());
//! let outcome = task
//!     .wait_with(|line| println!("{}", line.line), std::future::pending())
//!     .await?;
//! std::process::exit(outcome.exit_code);
//! # }
//! ```

mod error;
pub mod lifecycle;
pub mod preflight;
mod repo;
mod runner;
mod stream;
mod task;
mod vault;

pub use error::ExecutorError;
pub use repo::{RepoSource, classify_repo};
pub use runner::{
    AgentRunner, HOST_TIMEOUT_GRACE_SECS, IMAGE_CHECK_TRUST, INIT_COMPLETE, INTERRUPTED_EXIT_CODE,
    ImageSource, LaunchedTask, Mode, READY_MARKER, RunEvent, RunOptions, RunOutcome,
    TIMEOUT_EXIT_CODE,
};
pub use stream::render_stream_json_line;
pub use task::{CONTAINER_PREFIX, TaskRecord, TaskStore, container_name, is_task_id, new_task_id};
pub use vault::{STANDALONE_SCOPE, VaultClient};
