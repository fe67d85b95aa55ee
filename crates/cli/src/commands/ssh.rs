//! `ssh keygen | import | assign | list | pubkey | rm`: the SSH keys the vault holds for tasks.

use std::io::Read;

use miette::IntoDiagnostic;
use terok_executor::{KeyUsers, SshKeyInfo};

use crate::Status;
use crate::args::{SshArgs, SshCommand, SshUsersArgs};
use crate::context::Context;
use crate::output::table;

pub fn run(ctx: &Context, args: SshArgs) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    match args.command {
        SshCommand::Keygen(args) => {
            let users = key_users(args.users, KeyUsers::All);
            let key = executor.ssh_keygen(&args.name, &args.comment, &users)?;
            print_new(&key);
        }
        SshCommand::Import(args) => {
            let text = read_key_file(&args.file)?;
            let name = match args.name {
                Some(name) => name,
                None => file_stem(&args.file)?,
            };
            let users = key_users(args.users, KeyUsers::All);
            let key = executor.ssh_import(&name, &text, "terok", &users)?;
            print_new(&key);
        }
        SshCommand::Assign(args) => {
            let users = key_users(args.users, KeyUsers::None);
            let key = executor.ssh_assign(&args.name, &users)?;
            eprintln!("{} may be used by: {}", key.name, who(&key));
        }
        SshCommand::List(args) => list(&executor.ssh_keys()?, args.json)?,
        SshCommand::Pubkey(args) => {
            let key = executor
                .ssh_keys()?
                .into_iter()
                .find(|k| k.name == args.name)
                .ok_or_else(|| {
                    miette::miette!(
                        help = "`terok-executor ssh list` shows the stored keys",
                        "no SSH key named `{}`",
                        args.name
                    )
                })?;
            println!("{}", key.public_key);
        }
        SshCommand::Rm(args) => {
            if !executor.ssh_remove(&args.name)? {
                return Err(miette::miette!(
                    help = "`terok-executor ssh list` shows the stored keys",
                    "no SSH key named `{}`",
                    args.name
                ));
            }
            eprintln!("Removed: {}", args.name);
        }
    }
    Ok(Status::Ok)
}

/// Who the flags name; `unnamed` when neither flag is given.
fn key_users(args: SshUsersArgs, unnamed: KeyUsers) -> KeyUsers {
    let SshUsersArgs { for_agent, all } = args;
    match (all, for_agent.is_empty()) {
        (true, _) => KeyUsers::All,
        (false, false) => KeyUsers::Agents(for_agent),
        (false, true) => unnamed,
    }
}

fn who(key: &SshKeyInfo) -> String {
    match key.scopes.as_slice() {
        [] => "no task yet (`terok-executor ssh assign NAME --for-agent AGENT`)".to_owned(),
        scopes if scopes.iter().any(|s| s == "%all") => "every task".to_owned(),
        scopes => format!("tasks of {}", scopes.join(", ")),
    }
}

/// The public key on stdout (to paste into a forge), the rest on stderr.
fn print_new(key: &SshKeyInfo) {
    eprintln!(
        "SSH key {} ({}, {}) stored in the vault; used by {}.",
        key.name,
        key.kind,
        key.fingerprint,
        who(key)
    );
    eprintln!("Add this public key to your forge (e.g. as a deploy key):");
    println!("{}", key.public_key);
}

fn list(keys: &[SshKeyInfo], json: bool) -> miette::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(keys).into_diagnostic()?);
        return Ok(());
    }
    if keys.is_empty() {
        eprintln!("No SSH keys (`terok-executor ssh keygen` makes one).");
        return Ok(());
    }
    let used: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.scopes.is_empty() {
                "-".to_owned()
            } else {
                k.scopes.join(",")
            }
        })
        .collect();
    let rows: Vec<[&str; 4]> = keys
        .iter()
        .zip(&used)
        .map(|(k, used)| {
            [
                k.name.as_str(),
                k.kind.as_str(),
                k.fingerprint.as_str(),
                used,
            ]
        })
        .collect();
    print!(
        "{}",
        table(["NAME", "TYPE", "FINGERPRINT", "USED BY"], &rows)
    );
    Ok(())
}

fn read_key_file(path: &std::path::Path) -> miette::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| miette::miette!("cannot read the key from stdin: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| miette::miette!("cannot read {}: {e}", path.display()))
}

fn file_stem(path: &std::path::Path) -> miette::Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| *s != "-")
        .map(str::to_owned)
        .ok_or_else(|| {
            miette::miette!(
                help = "name it with --name",
                "the key has no file name to be named after"
            )
        })
}
