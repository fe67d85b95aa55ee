//! What `run --web` and `start` say about a web task: its link, once the UI answers.

use std::time::Duration;

use terok_executor::WebAccess;

/// How long a web task's UI may take to answer (a cold page cache on a slow disk takes its
/// time).
pub(crate) const WEB_READY_LIMIT: Duration = Duration::from_secs(120);

/// The link of a web task (stdout: scripts read it) and what to do with the task.
pub(crate) fn print_web_access(name: &str, access: &WebAccess) {
    println!("Toad available at: {}", access.url);
    eprintln!(
        "The link holds the task's access token (a new one at every start). `terok-executor \
         stop {name}` stops it; `terok-executor rm {name}` removes it."
    );
}
