//! Terminal output plumbing: tracing to stderr for `-v`, and miette rendering of errors.

use std::io::IsTerminal;

/// Installs the tracing subscriber and the miette error renderer.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let stderr_is_tty = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_is_tty && std::env::var_os("NO_COLOR").is_none())
        .without_time()
        .with_target(verbosity > 1)
        .try_init();

    let color = stderr_is_tty && std::env::var_os("NO_COLOR").is_none();
    // Wrapping only helps a human at a terminal; in logs and pipes a message stays on one line.
    let width = if stderr_is_tty { 100 } else { 4096 };
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .width(width)
                .build(),
        )
    }));
}

/// Prints an error with its snippet, labels and help.
pub fn report_error(report: &miette::Report) {
    eprintln!("{report:?}");
}
