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
        return Err(exists(secret_file));
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
    write_new(secret_file, secret.as_bytes())?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(objects.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| miette::miette!("cannot write the task's objects: {e}"))?;
    tell_what_next(&task, secret_file);
    Ok(Status::Ok)
}

/// The Secret's file, refused when something already is at that path (checked when it is
/// created, too: the images may take minutes to build), and removed if it cannot be
/// written whole.
fn write_new(path: &Path, contents: &[u8]) -> miette::Result<()> {
    let mut file = terok_core::secure_fs::create_new_private(path).map_err(|e| {
        if path.symlink_metadata().is_ok() {
            exists(path)
        } else {
            miette::miette!("cannot create {}: {e}", path.display())
        }
    })?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = terok_core::secure_fs::remove_file(path);
        return Err(miette::miette!(
            "cannot write the Secret to {}: {e}",
            path.display()
        ));
    }
    Ok(())
}

fn exists(path: &Path) -> miette::Report {
    miette::miette!(
        help = "give --kube-secret a path that does not exist yet (it is written owner-only)",
        "{} exists: refusing to overwrite it with the task's Secret",
        path.display()
    )
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
