//! The signals that ask the CLI to stop what it follows: Ctrl-C from a terminal, SIGTERM
//! from a supervisor, `kill` or a CI runner's timeout. Both get the same orderly stop.

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal between the two is not lost.
pub(crate) fn interrupted() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                only.recv().await;
            }
            // No handler could be installed: the default actions apply, and nothing here
            // would ever resolve.
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}
