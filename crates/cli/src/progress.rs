//! Build progress on the terminal: a spinner per layer on a TTY, plain lines otherwise, and
//! podman's own output with `-v`.

use std::io::IsTerminal;
use std::time::Duration;
use terok_core::text::printable;

use indicatif::{ProgressBar, ProgressStyle};
use terok_executor::{BuildEvent, Layer};

/// Renders [`BuildEvent`]s.
pub struct BuildProgress {
    verbose: bool,
    tty: bool,
    bar: Option<ProgressBar>,
    /// Say nothing about layers that turn out current (for `run`, where the check is routine);
    /// the pending layer is announced when its first build step arrives.
    quiet_when_current: bool,
    pending: Option<(Layer, String)>,
    /// Notes held back with the pending layer (entries left out of `all`).
    notes: Vec<String>,
}

impl BuildProgress {
    /// Progress on stderr; `verbose` also streams podman's output.
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            tty: std::io::stderr().is_terminal(),
            bar: None,
            quiet_when_current: false,
            pending: None,
            notes: Vec::new(),
        }
    }

    /// Progress that stays silent while every layer is current.
    pub fn quiet_when_current(verbose: bool) -> Self {
        Self {
            quiet_when_current: true,
            ..Self::new(verbose)
        }
    }

    fn announce(&mut self, layer: Layer, tag: &str) {
        if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("{} {tag}", layer.display_name()));
            bar.set_message("checking…");
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        } else {
            eprintln!("{} {tag}: checking", layer.display_name());
        }
    }

    /// Handles one event.
    pub fn event(&mut self, event: BuildEvent) {
        match event {
            BuildEvent::LayerStarted { layer, tag } => {
                if self.quiet_when_current {
                    self.pending = Some((layer, tag));
                } else {
                    self.announce(layer, &tag);
                }
            }
            BuildEvent::Step {
                layer,
                current,
                total,
                text,
            } => {
                if let Some((pending_layer, tag)) = self.pending.take() {
                    for note in self.notes.drain(..) {
                        eprintln!("{note}");
                    }
                    self.announce(pending_layer, &tag);
                }
                let text: String = printable(&text).chars().take(100).collect();
                match &self.bar {
                    Some(bar) => bar.set_message(format!("step {current}/{total}: {text}")),
                    None => eprintln!("{} step {current}/{total}: {text}", layer.display_name()),
                }
            }
            BuildEvent::Output { line, .. } => {
                let line = printable(&line);
                if self.verbose {
                    match &self.bar {
                        Some(bar) => bar.println(format!("  | {line}")),
                        None => eprintln!("  | {line}"),
                    }
                }
            }
            BuildEvent::LeftOut(unsuited) => {
                let note = format!("note: {unsuited}: left out of `all`");
                // A launch whose images are current says nothing, this included.
                if self.quiet_when_current {
                    self.notes.push(note);
                } else {
                    eprintln!("{note}");
                }
            }
            BuildEvent::Squashed {
                layer,
                layers,
                limit,
            } => {
                let note = format!(
                    "note: {} would have {layers} layers, more than a task container can start \
                     from ({limit}): its steps are squashed into one layer (no per-step build cache)",
                    layer.display_name(),
                );
                match &self.bar {
                    Some(bar) => bar.println(note),
                    None => eprintln!("{note}"),
                }
            }
            BuildEvent::LayerFinished {
                layer,
                tag,
                reused,
                duration,
                ..
            } => {
                if reused && self.pending.take().is_some() {
                    return;
                }
                let how = if reused {
                    "current, reused".to_owned()
                } else {
                    format!("built in {}", human_duration(duration))
                };
                let line = format!("{} {tag}: {how}", layer.display_name());
                match self.bar.take() {
                    Some(bar) => bar.finish_with_message(how),
                    None => eprintln!("{line}"),
                }
            }
        }
    }
}

/// `1m12s`, `8.3s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{secs:.1}s")
    }
}
