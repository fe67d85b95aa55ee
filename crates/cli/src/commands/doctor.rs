//! `doctor [TASK]`: what is wrong with this host and its tasks, one check per line.

use miette::IntoDiagnostic;
use terok_executor::Verdict;

use crate::Status;
use crate::args::DoctorArgs;
use crate::context::Context;
use crate::output::table;

pub fn run(ctx: &Context, args: &DoctorArgs) -> miette::Result<Status> {
    let DoctorArgs { task, fix, json } = args;
    let checks = ctx.block_on(ctx.executor()?.doctor(task.as_deref(), *fix))??;
    let worst = checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).into_diagnostic()?
        );
    } else {
        let rows: Vec<[&str; 3]> = checks
            .iter()
            .map(|c| {
                let verdict = match c.verdict {
                    Verdict::Ok => "ok",
                    Verdict::Warn => "WARN",
                    _ => "ERROR",
                };
                [c.name.as_str(), verdict, c.detail.as_str()]
            })
            .collect();
        // Names and details can carry a task's text (its container's answers).
        let shown: Vec<[String; 3]> = rows
            .iter()
            .map(|r| r.map(|cell| terok_core::text::printable(cell).into_owned()))
            .collect();
        let rows: Vec<[&str; 3]> = shown
            .iter()
            .map(|r| r.each_ref().map(String::as_str))
            .collect();
        print!("{}", table(["CHECK", "VERDICT", "DETAIL"], &rows));
        if checks.iter().any(|c| c.fixable) {
            println!("Some checks inside tasks can be repaired: terok-executor doctor --fix");
        }
        if worst == Verdict::Error {
            println!(
                "Refused credentials: store a new one with `terok-executor auth <agent>`; \
                 host problems: `terok-executor setup`."
            );
        }
    }
    Ok(if worst == Verdict::Error {
        Status::Failure
    } else {
        Status::Ok
    })
}
