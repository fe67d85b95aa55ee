//! Claude Code's `--output-format stream-json` made readable on a terminal.
//!
//! The choice (documented in docs/running.md): on a TTY the CLI renders each JSON event as a
//! short line of text (assistant text as is, tool calls as `→ Tool argument`, the final result
//! with its turn count); when stdout is a pipe or file, or with `--raw-output`, every line is
//! passed through byte for byte, as the Python terok-executor does, so scripts keep the full
//! event stream.
//! Lines that are not JSON (the init script's `>> …`) always pass through.

use serde_json::Value;

/// Renders one output line. `None` means the event has nothing worth showing.
pub fn render_stream_json_line(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return Some(line.to_owned());
    }
    let Ok(event) = serde_json::from_str::<Value>(trimmed) else {
        return Some(line.to_owned());
    };
    match event["type"].as_str() {
        Some("system") if event["subtype"] == "api_retry" => Some(api_retry(&event)),
        Some("system") if event["subtype"] == "init" => Some(format!(
            "» session started{}",
            event["model"]
                .as_str()
                .map(|m| format!(" (model {m})"))
                .unwrap_or_default()
        )),
        Some("assistant") => {
            let parts: Vec<String> = event["message"]["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(render_content)
                .collect();
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        Some("user") => {
            let errors: Vec<String> = event["message"]["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "tool_result" && c["is_error"] == true)
                .map(|c| format!("  ✗ {}", first_line(&tool_result_text(&c["content"]))))
                .collect();
            (!errors.is_empty()).then(|| errors.join("\n"))
        }
        Some("result") => {
            let turns = event["num_turns"].as_u64().unwrap_or(0);
            let secs = event["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
            let ok = event["subtype"] == "success" && event["is_error"] != true;
            Some(format!(
                "{} {} after {turns} turn{} ({secs:.1} s)",
                if ok { "✓" } else { "✗" },
                if ok { "done" } else { "failed" },
                if turns == 1 { "" } else { "s" }
            ))
        }
        _ => None,
    }
}

/// Claude's `api_retry` event: `↻ API error 401 (authentication_failed); retry 2 of 10 in 1.1 s`.
fn api_retry(event: &Value) -> String {
    let status = event["error_status"]
        .as_u64()
        .map_or_else(|| "error".to_owned(), |s| format!("error {s}"));
    let reason = event["error"]
        .as_str()
        .map(|e| format!(" ({})", first_line(e)))
        .unwrap_or_default();
    let attempt = event["attempt"].as_u64();
    let max = event["max_retries"].as_u64();
    let delay = event["retry_delay_ms"].as_f64().map(|ms| ms / 1000.0);
    let retry = match (attempt, max, delay) {
        (Some(n), Some(m), Some(d)) => format!("; retry {n} of {m} in {d:.1} s"),
        (Some(n), Some(m), None) => format!("; retry {n} of {m}"),
        (Some(n), None, _) => format!("; retry {n}"),
        _ => "; retrying".to_owned(),
    };
    format!("↻ API {status}{reason}{retry}")
}

fn render_content(content: &Value) -> Option<String> {
    match content["type"].as_str()? {
        "text" => content["text"]
            .as_str()
            .map(str::trim_end)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        "tool_use" => {
            let name = content["name"].as_str().unwrap_or("tool");
            let input = &content["input"];
            let detail = [
                "file_path",
                "command",
                "pattern",
                "path",
                "url",
                "description",
            ]
            .iter()
            .find_map(|k| input[*k].as_str())
            .map(|d| format!(" {}", first_line(d)))
            .unwrap_or_default();
            Some(format!("→ {name}{detail}"))
        }
        _ => None,
    }
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 100 {
        format!("{}…", line.chars().take(100).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_session() {
        let lines = [
            ">> init complete",
            r#"{"type":"system","subtype":"init","model":"claude-sonnet-4-5","tools":["Read"]}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Let me look.\n"},{"type":"tool_use","name":"Read","input":{"file_path":"/workspace/calc.py"}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"ok"}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":true,"content":"File has not been read yet\nmore"}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"pytest -q\necho"}}]}}"#,
            r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1100,"error_status":401,"error":"authentication_failed"}"#,
            r#"{"type":"system","subtype":"api_retry","error_status":529}"#,
            r#"{"type":"result","subtype":"success","num_turns":3,"duration_ms":4200,"result":"Fixed."}"#,
            "{not json",
        ];
        let out: Vec<String> = lines
            .iter()
            .filter_map(|l| render_stream_json_line(l))
            .collect();
        insta::assert_snapshot!(out.join("\n"), @r"
        >> init complete
        » session started (model claude-sonnet-4-5)
        Let me look.
        → Read /workspace/calc.py
          ✗ File has not been read yet
        → Bash pytest -q
        ↻ API error 401 (authentication_failed); retry 2 of 10 in 1.1 s
        ↻ API error 529; retrying
        ✓ done after 3 turns (4.2 s)
        {not json
        ");
    }
}
