//! An orchestrator's headless launch: open a session, make sure the vault runs, launch an
//! agent on a directory, stream its events and output, and exit with its exit code.
//!
//! ```sh
//! cargo run -p terok-executor --example headless -- claude ./my-project "fix the failing test"
//! ```
//!
//! The vault is served by this program itself when it is not running yet (an orchestrator
//! with its own daemon would pass a `VaultLauncher` to the builder instead).

// An example program talks to its terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use terok_executor::{
    Executor, ExecutorError, ImageChoice, ImageSource, LogSource, RunEvent, RunOptions,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ExecutorError> {
    let mut args = std::env::args().skip(1);
    let (Some(agent), Some(repo), Some(prompt)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: headless AGENT DIRECTORY PROMPT");
        std::process::exit(2);
    };
    let mut builder = Executor::builder(terok_core::HostEnv::from_process());
    if let Ok(cwd) = std::env::current_dir() {
        builder = builder.cwd(cwd);
    }
    let executor = builder.build()?;

    // Serve the vault in this process unless a daemon answers already.
    if !executor.vault_client().is_running().await {
        executor.write_routes()?;
        let config = executor.vault_config();
        tokio::spawn(async move {
            if let Err(err) = terok_executor::serve_vault(config).await {
                eprintln!("vault: {err}");
            }
        });
        while !executor.vault_client().is_running().await {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    let request = executor.build_request(&ImageChoice::default())?;
    let options = RunOptions::headless(agent, repo, prompt, ImageSource::Ensure(request));
    let task = executor
        .launch(&options, &mut |event| match event {
            RunEvent::Image(event) => eprintln!("image: {event:?}"),
            RunEvent::VaultWired { providers } => eprintln!("vault: tokens for {providers:?}"),
            RunEvent::Launching { name, .. } => eprintln!("container: {name}"),
            other => eprintln!("{other:?}"),
        })
        .await?;

    // The task owns what it needs: the orchestrator may hand it to another task.
    let outcome = tokio::spawn(async move {
        task.wait_with(
            |line| match line.source {
                LogSource::Stdout => println!("{}", line.line),
                _ => eprintln!("{}", line.line),
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await
    })
    .await
    .map_err(|e| ExecutorError::Io {
        context: "the run's task failed".to_owned(),
        source: std::io::Error::other(e),
    })??;
    eprintln!("exit code {}", outcome.exit_code);
    std::process::exit(outcome.exit_code);
}
