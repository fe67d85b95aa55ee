//! Running a command-line program (the `terok-executor` binary, in its tests) in an
//! [`IsolatedEnv`]: its exit code and output with the temporary root redacted, optionally fed
//! on stdin — and storing an API key the way a user pipes one in.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::IsolatedEnv;

/// How a run ended: exit code (-1 for a signal) and output, paths redacted to `[TMP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliRun {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `program` with `args` in `env`, with nothing on stdin.
pub fn run_cli(env: &IsolatedEnv, program: impl AsRef<Path>, args: &[&str]) -> CliRun {
    run_cli_with_stdin(env, program, args, "")
}

/// Runs `program` with `args` in `env`, writing `stdin` to its standard input.
///
/// # Panics
/// When the program cannot be started (a test failure).
pub fn run_cli_with_stdin(
    env: &IsolatedEnv,
    program: impl AsRef<Path>,
    args: &[&str],
    stdin: &str,
) -> CliRun {
    let program = program.as_ref();
    let mut child = env
        .command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(mut input) = child.stdin.take() {
        // A program that exits without reading its input closes the pipe: that is its answer.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", program.display()));
    CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: env.redact(&String::from_utf8_lossy(&out.stdout)),
        stderr: env.redact(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// Stores `key` for `agent` with `program auth AGENT --api-key -` (the key through stdin,
/// never on argv).
///
/// # Panics
/// When the program refuses (a test failure), with its output.
pub fn store_key(env: &IsolatedEnv, program: impl AsRef<Path>, agent: &str, key: &str) {
    let run = run_cli_with_stdin(env, program, &["auth", agent, "--api-key", "-"], key);
    assert_eq!(run.code, 0, "auth {agent}: {}{}", run.stdout, run.stderr);
}
