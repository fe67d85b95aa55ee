//! `run … --emit kube --kube-secret FILE`: the task as Kubernetes objects. The ConfigMap,
//! NetworkPolicy and Pod go to stdout (for a file or a pipe); the Secret, which holds real
//! credentials, goes only into a new owner-only file — never onto a terminal or into a log.

use std::io::Write;
use std::path::Path;

use terok_executor::{KubeTask, RunOptions};

use crate::Status;
use crate::commands::run_events::show_event;
use crate::context::Context;
use crate::progress::BuildProgress;

/// Writes the task of `options`: the Secret into `secret_file`, the rest to stdout.
pub fn emit(ctx: &Context, options: &RunOptions, secret_file: &Path) -> miette::Result<Status> {
    if std::fs::symlink_metadata(secret_file).is_ok() {
        return Err(miette::miette!(
            help = "give --kube-secret a path that does not exist yet (it is written owner-only)",
            "{} exists: refusing to overwrite it with the task's Secret",
            secret_file.display()
        ));
    }
    let executor = ctx.executor()?;
    let verbose = ctx.verbose > 0;
    let task = ctx.block_on(async {
        let mut progress = BuildProgress::quiet_when_current(verbose);
        executor
            .emit_kube(options, &mut |event| show_event(&mut progress, event))
            .await
    })??;
    let objects = task.manifests.task_yaml()?;
    let secret = task.manifests.secret_yaml()?;
    terok_core::secure_fs::write_atomic(secret_file, secret.as_bytes(), 0o600).map_err(|e| {
        miette::miette!("cannot write the Secret to {}: {e}", secret_file.display())
    })?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(objects.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| miette::miette!("cannot write the task's objects: {e}"))?;
    tell_what_next(&task, secret_file);
    Ok(Status::Ok)
}

/// How to run what was written (on stderr: stdout is the YAML).
fn tell_what_next(task: &KubeTask, secret_file: &Path) {
    eprintln!("Pod: {}", task.name);
    if task.providers.is_empty() {
        eprintln!("The Secret holds no credential: `terok-executor auth` stores one.");
    } else {
        eprintln!(
            "The Secret in {} holds the real credential of {} (owner-only; treat it as the key itself).",
            secret_file.display(),
            task.providers.join(", ")
        );
    }
    eprintln!(
        "Images (push them where the cluster pulls from): {}",
        task.images.join(" ")
    );
    eprintln!(
        "Run it: kubectl apply -f {secret} -f TASK.yaml   (or: podman kube play {secret} && podman kube play TASK.yaml)",
        secret = secret_file.display()
    );
}
