//! The `terok-executor` binary: everything lives in the library so orchestrators can reuse it.

fn main() -> std::process::ExitCode {
    terok_executor_cli::main()
}
