//! `shield status|allow|deny`: a task's egress firewall, read and changed while it runs; and
//! the hidden `shield hook` podman runs before a shielded container starts.

use std::io::Read;

use miette::IntoDiagnostic;
use terok_executor::{ShieldChange, ShieldStatus};

use crate::Status;
use crate::args::{ShieldArgs, ShieldCommand, ShieldStatusArgs, ShieldTargetArgs};
use crate::context::Context;

pub fn run(ctx: &Context, args: ShieldArgs) -> miette::Result<Status> {
    match args.command {
        ShieldCommand::Status(args) => status(ctx, &args),
        ShieldCommand::Allow(args) => change(ctx, &args, true),
        ShieldCommand::Deny(args) => change(ctx, &args, false),
        ShieldCommand::Hook => hook(),
    }
}

/// The OCI hook: podman shows what it prints on stderr when it refuses to start the container.
fn hook() -> miette::Result<Status> {
    let mut state = String::new();
    std::io::stdin()
        .take(1 << 20)
        .read_to_string(&mut state)
        .into_diagnostic()?;
    match terok_executor::run_shield_hook(&state) {
        Ok(_) => Ok(Status::Ok),
        Err(err) => {
            eprintln!(
                "terok-shield: the egress firewall was not loaded, so the container does not start: {err}"
            );
            Ok(Status::Failure)
        }
    }
}

fn status(ctx: &Context, args: &ShieldStatusArgs) -> miette::Result<Status> {
    let ShieldStatusArgs { name, json } = args;
    let status = ctx.block_on(ctx.executor()?.shield_status(name))??;
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status_json(&status)).into_diagnostic()?
        );
    } else {
        print!("{}", status_text(&status));
    }
    Ok(Status::Ok)
}

fn status_json(status: &ShieldStatus) -> serde_json::Value {
    let state = status.state.as_ref().map(|state| {
        let texts = |networks: &[terok_executor::Network]| -> Vec<String> {
            networks.iter().map(ToString::to_string).collect()
        };
        serde_json::json!({
            "profiles": state.profiles,
            "domains": state.domains,
            "allowed": texts(&state.policy.allowed),
            "denied": texts(&state.policy.denied),
            "audit": state.policy.audit,
        })
    });
    let live = status.live.as_ref().map(|live| {
        serde_json::json!({
            "allowed": live.allowed,
            "denied": live.denied,
            "resolvers": live.resolvers,
            "learned": live.learned,
            "denials": live.denials.iter().map(|d| serde_json::json!({
                "address": d.address,
                "protocol": d.protocol,
                "port": d.port,
                "expires_secs": d.expires_secs,
            })).collect::<Vec<_>>(),
        })
    });
    serde_json::json!({
        "name": status.name,
        "mode": status.mode,
        "applied": status.applied,
        "saved": state,
        "live": live,
    })
}

fn status_text(status: &ShieldStatus) -> String {
    let mut out = format!("Task:     {}\nMode:     {}\n", status.name, status.mode);
    let Some(state) = &status.state else {
        return out;
    };
    out.push_str(&format!("Profiles: {}\n", state.profiles.join(", ")));
    out.push_str(&format!(
        "Loaded:   {}\n",
        if status.applied {
            "yes (by the hook, at the container's last start)"
        } else {
            "no (the container has not started since its firewall was prepared)"
        }
    ));
    let Some(live) = &status.live else {
        out.push_str("Running:  no (the saved allow-list applies at the next start)\n");
        return out;
    };
    let list = |items: &[String]| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    out.push_str(&format!("DNS:      {}\n", list(&live.resolvers)));
    out.push_str(&format!("Allowed:  {}\n", list(&live.allowed)));
    out.push_str(&format!("Learned:  {}\n", list(&live.learned)));
    out.push_str(&format!("Denied:   {}\n", list(&live.denied)));
    if live.denials.is_empty() {
        out.push_str("Recent denials: none\n");
    } else {
        out.push_str("Recent denials (address, protocol, port):\n");
        for denial in &live.denials {
            out.push_str(&format!(
                "  {} {} {}\n",
                denial.address, denial.protocol, denial.port
            ));
        }
    }
    out
}

fn change(ctx: &Context, args: &ShieldTargetArgs, allow: bool) -> miette::Result<Status> {
    let ShieldTargetArgs { name, target } = args;
    let executor = ctx.executor()?;
    let changed: ShieldChange = ctx.block_on(async {
        if allow {
            executor.shield_allow(name, target).await
        } else {
            executor.shield_deny(name, target).await
        }
    })??;
    let networks: Vec<String> = changed.networks.iter().map(ToString::to_string).collect();
    println!(
        "{} for {}: {}",
        if allow { "Allowed" } else { "Denied" },
        changed.name,
        networks.join(", ")
    );
    if !changed.live {
        eprintln!(
            "The task is not running: the change applies when it starts (terok-executor start {}).",
            changed.name
        );
    }
    Ok(Status::Ok)
}
