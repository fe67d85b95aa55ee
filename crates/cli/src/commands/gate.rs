//! `gate list|diff|promote|sync`: the review of what agents pushed to the host's mirrors; and
//! the hidden `gate serve-task` that serves one task's gate socket while the task runs.

use miette::IntoDiagnostic;
use terok_executor::{GateRepo, TcpListen};

use crate::Status;
use crate::args::{
    GateArgs, GateCommand, GateDiffArgs, GateListArgs, GatePromoteArgs, GateServeTaskArgs,
    GateSyncArgs,
};
use crate::context::Context;

pub fn run(ctx: &Context, args: GateArgs) -> miette::Result<Status> {
    match args.command {
        GateCommand::List(args) => list(ctx, &args),
        GateCommand::Diff(args) => diff(ctx, &args),
        GateCommand::Promote(args) => promote(ctx, &args),
        GateCommand::Sync(args) => sync(ctx, &args),
        GateCommand::ServeTask(args) => serve_task(ctx, &args),
    }
}

fn list(ctx: &Context, args: &GateListArgs) -> miette::Result<Status> {
    let GateListArgs { json } = args;
    let repos = ctx.block_on(ctx.executor()?.gate_repos())??;
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&repos).into_diagnostic()?
        );
        return Ok(Status::Ok);
    }
    if repos.is_empty() {
        println!(
            "No gate mirrors yet: a run on a git URL (or `run … --gate` on a directory) makes one."
        );
        return Ok(Status::Ok);
    }
    for repo in &repos {
        print_lines(&repo_text(repo));
    }
    println!(
        "Review with `terok-executor gate diff <task>`, then `terok-executor gate promote <task> <branch>`."
    );
    Ok(Status::Ok)
}

/// One mirror as `gate list` shows it.
fn repo_text(repo: &GateRepo) -> String {
    let mut out = format!("{}  ← {}\n", repo.name, repo.source);
    if !repo.tasks.is_empty() {
        out.push_str(&format!("  tasks: {}\n", repo.tasks.join(", ")));
    }
    for (branch, tip) in &repo.branches {
        out.push_str(&format!("  {branch:<32} {}\n", &tip[..tip.len().min(12)]));
    }
    for push in &repo.pushes {
        let short = |id: &Option<String>| {
            id.as_deref()
                .map_or("(none)".to_owned(), |id| id[..id.len().min(12)].to_owned())
        };
        out.push_str(&format!(
            "  pushed by {}: {} {} → {}\n",
            push.task,
            push.reference,
            short(&push.old),
            short(&push.new)
        ));
    }
    out
}

fn diff(ctx: &Context, args: &GateDiffArgs) -> miette::Result<Status> {
    let GateDiffArgs { target, branch } = args;
    let (branch, diff) = ctx.block_on(ctx.executor()?.gate_diff(target, branch.as_deref()))??;
    print_lines(&format!("# {branch}\n{diff}"));
    Ok(Status::Ok)
}

fn promote(ctx: &Context, args: &GatePromoteArgs) -> miette::Result<Status> {
    let GatePromoteArgs { target, branch, to } = args;
    let report = ctx.block_on(ctx.executor()?.gate_promote(target, branch, to.as_deref()))??;
    print_lines(&report);
    println!(
        "Promoted {branch} to the remote as {}.",
        to.as_deref().unwrap_or(branch)
    );
    Ok(Status::Ok)
}

fn sync(ctx: &Context, args: &GateSyncArgs) -> miette::Result<Status> {
    let GateSyncArgs { target } = args;
    let synced = ctx.block_on(ctx.executor()?.gate_sync(target))??;
    println!("Synced {}.", synced.dir.display());
    warn_blocked(&synced.blocked);
    Ok(Status::Ok)
}

/// The source's branches a sync could not bring into the mirror, and what to do.
pub(crate) fn warn_blocked(blocked: &[String]) {
    if blocked.is_empty() {
        return;
    }
    eprintln!(
        "warning: the mirror keeps its old tip of {} of the source's branches, for a pushed \
         branch is in the way of the name (`a` against `a/b`): {}",
        blocked.len(),
        terok_core::text::printable(&blocked.join(", "))
    );
    eprintln!(
        "  Promote or delete the pushed branch in the mirror, then run `terok-executor gate sync`."
    );
}

/// `text` line by line, with what an agent wrote (commit messages, file contents, branch
/// names) unable to move the cursor or hide a line on the user's terminal.
fn print_lines(text: &str) {
    for line in text.lines() {
        println!("{}", terok_core::text::printable(line));
    }
}

fn serve_task(ctx: &Context, args: &GateServeTaskArgs) -> miette::Result<Status> {
    let GateServeTaskArgs {
        container,
        uid,
        listen,
        ports,
    } = args;
    let tcp = listen
        .zip(*ports)
        .map(|(address, (first_port, last_port))| TcpListen {
            address,
            first_port,
            last_port,
        });
    ctx.block_on(ctx.executor()?.serve_task_gate(container, *uid, tcp))??;
    Ok(Status::Ok)
}
