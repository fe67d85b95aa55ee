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

/// Prints `warning: …` on stderr, with what the text carries from a container or an upstream
/// (names, messages) made safe for the terminal.
pub fn warn(text: impl std::fmt::Display) {
    eprintln!(
        "warning: {}",
        terok_core::text::printable(&text.to_string())
    );
}

/// Prints an error with its snippet, labels and help (the command line's remedy when there
/// is one).
pub fn report_error(report: miette::Report) {
    eprintln!("{:?}", crate::remedy::attach(report));
}

/// Left-aligned columns, each as wide as its widest cell, separated by two spaces.
pub fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_without_trailing_spaces() {
        let out = table(
            ["NAME", "LABEL", "TYPE"],
            &[["claude", "Claude", "native"], ["gh", "GitHub CLI", "tool"]],
        );
        assert_eq!(
            out,
            "NAME    LABEL       TYPE\nclaude  Claude      native\ngh      GitHub CLI  tool\n"
        );
    }
}
