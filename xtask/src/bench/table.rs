//! The table of `cargo xtask bench`: a figure with its goal and the baseline measured in the
//! same run, how the figures are timed (medians of whole runs), and how the table prints.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Which way a goal points.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// Smaller is better; the value should not exceed this.
    AtMost(f64),
    /// Larger is better; the value should reach this.
    AtLeast(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Unit of `value` and of the goal.
    pub unit: &'static str,
    /// The goal.
    pub goal: Goal,
    /// The baseline measured in the same run, as text (`/bin/true 0.8 ms`).
    pub baseline: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        match self.goal {
            Goal::AtMost(goal) | Goal::AtLeast(goal) => self.value / goal,
        }
    }

    fn meets(&self) -> bool {
        match self.goal {
            Goal::AtMost(goal) => self.value <= goal,
            Goal::AtLeast(goal) => self.value >= goal,
        }
    }

    fn goal_text(&self) -> String {
        match self.goal {
            Goal::AtMost(goal) => format!("≤ {} {}", fmt_num(goal), self.unit),
            Goal::AtLeast(goal) => format!("≥ {} {}", fmt_num(goal), self.unit),
        }
    }
}

pub fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Median of `samples` in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

/// Runs `make()` `runs` times, each to completion with output discarded, and returns the median
/// wall time in milliseconds. Any failed run is a measurement error.
pub fn time_command(runs: usize, mut make: impl FnMut() -> Command) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut cmd = make();
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
        samples.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "{:?} failed: {}",
                cmd.get_program(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(median_ms(&mut samples))
}

pub fn print_table(rows: &[Row]) {
    let header = [
        "figure",
        "measured",
        "baseline (same run)",
        "goal",
        "ratio to goal",
        "",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                format!("{} {}", fmt_num(r.value), r.unit),
                r.baseline.clone(),
                r.goal_text(),
                format!("{:.2}×", r.ratio()),
                if r.meets() {
                    "meets goal"
                } else {
                    "MISSES goal"
                }
                .to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        row.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    println!();
    println!("{}", line(&header.map(str::to_owned)));
    println!("{}", widths.map(|w| "-".repeat(w)).join("-|-"));
    for row in &cells {
        println!("{}", line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_samples() {
        let ms = Duration::from_millis;
        assert_eq!(median_ms(&mut [ms(3), ms(1), ms(2)]), 2.0);
        assert_eq!(median_ms(&mut [ms(4), ms(1), ms(2), ms(3)]), 2.5);
    }

    #[test]
    fn goals_compare_in_their_direction() {
        let row = |value, goal| Row {
            figure: String::new(),
            value,
            unit: "ms",
            goal,
            baseline: String::new(),
        };
        assert!(row(4.0, Goal::AtMost(5.0)).meets());
        assert!(!row(6.0, Goal::AtMost(5.0)).meets());
        assert!((row(2.5, Goal::AtMost(5.0)).ratio() - 0.5).abs() < 1e-9);
        assert!(row(30000.0, Goal::AtLeast(27000.0)).meets());
        assert!(!row(20000.0, Goal::AtLeast(27000.0)).meets());
    }
}
