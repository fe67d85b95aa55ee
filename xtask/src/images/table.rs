//! The matrix of `cargo xtask images` as a markdown table (printed, and kept in
//! docs/images.md) and as JSON.

use std::fmt::Write as _;

use anyhow::Context as _;

use super::probe::{Shared, Sizes};

/// The block of docs/images.md the table replaces.
const BEGIN: &str = "<!-- images-matrix:begin (cargo xtask images --write-docs) -->";
const END: &str = "<!-- images-matrix:end -->";
/// The longest reason a cell shows.
const MAX_REASON: usize = 110;

/// How one entry fared on one base.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Built, and the smoke check printed this first line.
    Works(String),
    /// A host the install downloads from cannot be reached from here.
    Unreachable(Option<String>),
    /// The install step failed otherwise (its last words).
    InstallFailed(String),
    /// Built, but the smoke check failed.
    SmokeFailed(String),
    /// `build` refused the entry on this base, before podman ran.
    Refused(String),
    /// Something else went wrong (the error).
    Broken(String),
}

/// One entry on one base.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The Debian suite.
    pub base: String,
    /// The roster entry.
    pub agent: String,
    /// How it fared.
    pub outcome: Outcome,
    /// How long its build took (`None`: the image was current and reused, or never built).
    pub seconds: Option<f64>,
    /// Its image's sizes, when it was built.
    pub sizes: Option<Sizes>,
}

impl Cell {
    /// A cell of `agent` on `base`.
    pub fn new(base: &str, agent: &str, outcome: Outcome) -> Self {
        Self {
            base: base.to_owned(),
            agent: agent.to_owned(),
            outcome,
            seconds: None,
            sizes: None,
        }
    }

    /// With the build's duration.
    pub fn took(mut self, seconds: f64) -> Self {
        self.seconds = Some(seconds);
        self
    }

    /// With the image's sizes.
    pub fn sized(mut self, sizes: Option<Sizes>) -> Self {
        self.sizes = sizes;
        self
    }

    fn works(&self) -> bool {
        matches!(self.outcome, Outcome::Works(_))
    }

    /// The cell's text in the table: ✅ with the version and figures, or ❌ with the reason.
    fn text(&self) -> String {
        let reason = match &self.outcome {
            Outcome::Works(version) => {
                let mut text = format!("✅ {}", escape(version));
                if let Some(sizes) = self.sizes {
                    let _ = write!(text, " · +{}", gb(sizes.own_bytes));
                }
                match self.seconds {
                    Some(seconds) => {
                        let _ = write!(text, " · {seconds:.0} s");
                    }
                    None => text.push_str(" · reused"),
                }
                return text;
            }
            Outcome::Unreachable(Some(host)) => format!("{host} cannot be reached from here"),
            Outcome::Unreachable(None) => "a download host cannot be reached from here".to_owned(),
            Outcome::InstallFailed(words) => format!("install failed: {words}"),
            Outcome::SmokeFailed(words) => format!("smoke check failed: {words}"),
            Outcome::Refused(reason) => format!("refused: {reason}"),
            Outcome::Broken(error) => format!("error: {error}"),
        };
        format!("❌ {}", escape(&reason))
    }
}

/// Every cell, with the shared figures of each base.
#[derive(Debug)]
pub struct Matrix {
    /// Debian suites, in column order.
    pub bases: Vec<String>,
    /// Entries, in row order.
    pub agents: Vec<String>,
    /// What every base's entries share.
    pub shared: Vec<Shared>,
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Matrix {
    fn cell(&self, agent: &str, base: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.agent == agent && c.base == base)
    }

    /// `base × entry` of every cell that does not work.
    pub fn failed(&self) -> Vec<String> {
        self.cells
            .iter()
            .filter(|c| !c.works())
            .map(|c| format!("{} × {}", c.base, c.agent))
            .collect()
    }

    /// The table as markdown: one row per entry, one column per base, then the shared layers.
    pub fn markdown(&self) -> String {
        let mut out = format!("| entry | {} |\n|---|", self.bases.join(" | "));
        out.push_str(&"---|".repeat(self.bases.len()));
        out.push('\n');
        for agent in &self.agents {
            let _ = write!(out, "| {agent} |");
            for base in &self.bases {
                let text = self.cell(agent, base).map_or_else(String::new, Cell::text);
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
        let _ = write!(out, "| *shared: L0 · L1 with no entry* |");
        for base in &self.bases {
            let text = self
                .shared
                .iter()
                .find(|s| &s.base == base)
                .map_or_else(String::new, |s| {
                    format!("{} · {}", gb(s.l0_bytes), gb(s.l1_bytes))
                });
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
        let works = self.cells.iter().filter(|c| c.works()).count();
        let _ = writeln!(out, "\n{works} of {} cells work.", self.cells.len());
        out
    }

    /// The matrix as JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = self.cells.iter().map(cell_json).collect();
        let shared: Vec<serde_json::Value> = self
            .shared
            .iter()
            .map(|s| {
                serde_json::json!({
                    "base": s.base, "l0_bytes": s.l0_bytes, "l1_bytes": s.l1_bytes,
                    "seconds": s.seconds,
                })
            })
            .collect();
        serde_json::json!({ "bases": self.bases, "agents": self.agents, "shared": shared, "cells": cells })
    }
}

fn cell_json(cell: &Cell) -> serde_json::Value {
    let (status, detail) = match &cell.outcome {
        Outcome::Works(version) => ("works", Some(version.clone())),
        Outcome::Unreachable(host) => ("unreachable", host.clone()),
        Outcome::InstallFailed(words) => ("install_failed", Some(words.clone())),
        Outcome::SmokeFailed(words) => ("smoke_failed", Some(words.clone())),
        Outcome::Refused(reason) => ("refused", Some(reason.clone())),
        Outcome::Broken(error) => ("error", Some(error.clone())),
    };
    serde_json::json!({
        "base": cell.base, "agent": cell.agent, "status": status, "detail": detail,
        "seconds": cell.seconds,
        "image_bytes": cell.sizes.map(|s| s.image_bytes),
        "own_bytes": cell.sizes.map(|s| s.own_bytes),
    })
}

/// The line printed as each cell is done.
pub fn progress_line(cell: &Cell) -> String {
    format!("{} × {}: {}", cell.base, cell.agent, cell.text())
}

/// The first line of an error, for a cell.
pub fn first_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Replaces the matrix block of docs/images.md with `matrix`.
pub fn write_docs(matrix: &Matrix) -> anyhow::Result<()> {
    let path = crate::util::workspace_root().join("docs/images.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        anyhow::bail!("{} has no `{BEGIN}` … `{END}` block", path.display());
    };
    let replaced = format!(
        "{}{BEGIN}\n{}{}",
        &text[..begin],
        matrix.markdown(),
        &text[end..]
    );
    std::fs::write(&path, replaced).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("images: wrote the table into {}", path.display());
    Ok(())
}

fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// A reason fit for one table cell: one line, no pipes, not too long.
fn escape(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = one_line.chars().take(MAX_REASON).collect();
    if one_line.chars().count() > MAX_REASON {
        short.push('…');
    }
    short.replace('|', "\\|")
}
