//! `acp TASK [--socket PATH]` serves a running task's agents over ACP on a Unix socket until the
//! task stops; `acp --stdio TASK` is the command an editor starts: ACP on stdin/stdout, bridged
//! to the task's proxy (started in the background when none runs).

use std::io::Read;
use std::time::Duration;

use terok_executor::{AcpOpened, AcpOptions, AcpStopped};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Status;
use crate::args::AcpArgs;
use crate::context::Context;

pub fn run(ctx: &Context, args: AcpArgs) -> miette::Result<Status> {
    let AcpArgs {
        task,
        socket_path,
        socket,
        stdio,
        probe_timeout,
        no_warm,
    } = args;
    let options = AcpOptions::default()
        .socket(socket.or(socket_path))
        .probe_timeout(probe_timeout.map(Duration::from_secs_f64))
        .keep_warm(!no_warm);
    if stdio {
        bridge(ctx, &task, &options)
    } else {
        serve(ctx, &task, &options)
    }
}

/// Runs the task's proxy in the foreground.
fn serve(ctx: &Context, task: &str, options: &AcpOptions) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    ctx.block_on(async {
        let daemon = match executor.open_acp(task, options).await? {
            AcpOpened::AlreadyActive(socket) => {
                eprintln!(
                    "An ACP proxy for {task} answers on {} already.",
                    socket.display()
                );
                return Ok(Status::Ok);
            }
            AcpOpened::Ready(daemon) => daemon,
            _ => return Ok(Status::Ok),
        };
        // The socket alone on stdout, for scripts; the rest is for people.
        println!("{}", daemon.socket().display());
        eprintln!(
            "ACP proxy for {task} (agents of its image: {}). Connect an editor to the socket, \
             or start `terok-executor acp --stdio {task}` from it. Ctrl-C stops it.",
            if daemon.agents().is_empty() {
                "none".to_owned()
            } else {
                daemon.agents().join(", ")
            }
        );
        match daemon.run(crate::signals::interrupted()).await {
            AcpStopped::ContainerStopped => eprintln!("The task stopped; so did its ACP proxy."),
            _ => eprintln!("ACP proxy stopped."),
        }
        Ok::<_, terok_executor::ExecutorError>(Status::Ok)
    })?
    .map_err(Into::into)
}

/// Copies stdin to the task's proxy and the proxy's frames to stdout until the proxy closes
/// the connection (stdin's end is passed on, and the proxy then ends the session).
fn bridge(ctx: &Context, task: &str, options: &AcpOptions) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    ctx.block_on(async {
        let stream = executor.connect_acp(task, options).await?;
        let (mut from_proxy, mut to_proxy) = stream.into_split();
        let mut input = stdin_chunks();
        let upstream = async move {
            while let Some(chunk) = input.recv().await {
                if to_proxy.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to_proxy.shutdown().await;
            // Keep the half open until the proxy has answered and closed.
            std::future::pending::<()>().await;
        };
        let downstream = async move {
            let mut stdout = tokio::io::stdout();
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = from_proxy.read(&mut buf).await {
                if n == 0
                    || stdout.write_all(&buf[..n]).await.is_err()
                    || stdout.flush().await.is_err()
                {
                    break;
                }
            }
        };
        tokio::select! {
            () = upstream => {}
            () = downstream => {}
        }
        Ok::<_, terok_executor::ExecutorError>(Status::Ok)
    })?
    .map_err(Into::into)
}

/// Stdin in chunks, read on a thread of its own: a blocking read must not hold up the end of
/// the process once the proxy has closed.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}
