//! `terok-mock-model --script FILE [--listen ADDR]`: the scripted Anthropic Messages API server
//! of terok-testkit as a program, for the demo and for trying an agent by hand. Prints the URL,
//! then one line per request, until interrupted.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use terok_testkit::model::{ModelScript, ScriptedModel};

fn usage() -> ExitCode {
    eprintln!("usage: terok-mock-model --script FILE [--listen 127.0.0.1:PORT]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut script = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--script" => script = args.next().map(PathBuf::from),
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage(),
            },
            "-h" | "--help" => {
                println!(
                    "terok-mock-model --script FILE [--listen ADDR]\n\nServes the Anthropic Messages API from a script of turns (see terok_testkit::model)."
                );
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let Some(path) = script else {
        return usage();
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cannot read {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let script = match ModelScript::parse(&text, &path) {
        Ok(script) => script,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let model = match ScriptedModel::start(script, &listen) {
        Ok(model) => model,
        Err(err) => {
            eprintln!("cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", model.url());
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let requests = model.requests();
        for r in &requests[seen..] {
            eprintln!("{} {}", r.method, r.path_and_query);
        }
        seen = requests.len();
    }
}
