//! `storage [--json]`: the disk terok uses — tasks, shared config directories, images.

use miette::IntoDiagnostic;
use terok_executor::StorageReport;

use crate::Status;
use crate::args::StorageArgs;
use crate::context::Context;
use crate::output::table;

pub fn run(ctx: &Context, args: &StorageArgs) -> miette::Result<Status> {
    let StorageArgs { json } = args;
    let report = ctx.block_on(ctx.executor()?.storage())??;
    if *json {
        println!("{}", to_json(&report).into_diagnostic()?);
    } else {
        print!("{}", render(&report));
    }
    Ok(Status::Ok)
}

/// The report with its totals, as JSON (sizes in bytes).
fn to_json(report: &StorageReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&serde_json::json!({
        "tasks": report.tasks,
        "shared_mounts": report.shared_mounts,
        "images": report.images,
        "totals": {
            "tasks_bytes": report.tasks_bytes(),
            "shared_mounts_bytes": report.shared_mounts_bytes(),
            "images_bytes": report.images_bytes(),
        },
    }))
}

/// The report as three tables and a total line.
fn render(report: &StorageReport) -> String {
    let mut out = String::new();
    out.push_str("Tasks:\n");
    if report.tasks.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let cells: Vec<[String; 6]> = report
            .tasks
            .iter()
            .map(|t| {
                [
                    t.id.clone(),
                    t.name.clone().unwrap_or_else(|| "-".to_owned()),
                    human_bytes(t.workspace_bytes),
                    human_bytes(t.agent_config_bytes),
                    human_bytes(t.other_bytes),
                    human_bytes(t.total_bytes),
                ]
            })
            .collect();
        out.push_str(&indented(table(
            ["ID", "NAME", "WORKSPACE", "AGENT CONFIG", "OTHER", "TOTAL"],
            &as_strs(&cells),
        )));
    }
    out.push_str("Shared config directories:\n");
    if report.shared_mounts.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let cells: Vec<[String; 3]> = report
            .shared_mounts
            .iter()
            .map(|m| [m.host_dir.clone(), m.label.clone(), human_bytes(m.bytes)])
            .collect();
        out.push_str(&indented(table(["NAME", "WHAT", "SIZE"], &as_strs(&cells))));
    }
    out.push_str("Images:\n");
    if report.images.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let cells: Vec<[String; 2]> = report
            .images
            .iter()
            .map(|i| {
                [
                    i.tags.first().cloned().unwrap_or_else(|| i.id.clone()),
                    i.size_bytes.map_or_else(|| "?".to_owned(), human_bytes),
                ]
            })
            .collect();
        out.push_str(&indented(table(["IMAGE", "SIZE"], &as_strs(&cells))));
    }
    out.push_str(&format!(
        "Total: tasks {}, shared {}, images {} (layers images share are counted in each)\n",
        human_bytes(report.tasks_bytes()),
        human_bytes(report.shared_mounts_bytes()),
        human_bytes(report.images_bytes())
    ));
    out
}

fn as_strs<const N: usize>(rows: &[[String; N]]) -> Vec<[&str; N]> {
    rows.iter()
        .map(|r| r.each_ref().map(String::as_str))
        .collect()
}

fn indented(text: String) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `1.5 MiB`, `812 B`: binary units, one decimal.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
