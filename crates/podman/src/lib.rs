//! terok-podman: the only crate that runs `podman`.
//!
//! [`RunSpec`] describes a container the way terok wants it — hardened by default — and turns
//! into a `podman create` command line; environment values go through a 0600 `--env-file` that
//! is deleted right after the container is created, so no value ever appears on an argv.
//! [`ContainerRuntime`] is the set of operations the rest of terok needs (create, start, exec,
//! logs, wait, inspect, list, stop, rm, image queries, build). [`PodmanCli`] implements it by
//! running the podman CLI; [`FakeRuntime`] records calls and answers from a script, for unit
//! tests that should not need podman.
//!
//! Architecture Invariant: no other shipped crate spawns `podman`.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod cli;
mod error;
mod fake;
pub mod output;
mod runtime;
mod spec;
pub mod userns;

pub use cli::{OUTPUT_LIMIT, PodmanCli, bounded_output, stream_child};
pub use error::PodmanError;
pub use fake::{FakeCall, FakeOp, FakeRuntime};
pub use runtime::{
    BuildOutput, BuildSpec, ContainerInfo, ContainerRuntime, ContainerState, ContainerSummary,
    ExecOutput, ImageInfo, LogLine, LogSource, LogStream, MAX_MAPPED_LAYERS, layer_steps,
};
pub use spec::{
    GpuRequest, LABEL_AGENT, LABEL_EXECUTOR, LABEL_TASK, RunSpec, Sharing, UserMapping, VolumeSpec,
    env_file_contents, hooks_dir_args,
};
