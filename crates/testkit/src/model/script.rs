//! The conversation a scripted model follows, independent of any wire format: the script's
//! turns, and which turn (or side answer, or mismatch) a request gets.
//!
//! A request is placed in the conversation by the number of tool calls it already carries:
//! turn n applies once the calls of turns 0..n have all been made. That count is the same in
//! every API (content blocks, output items or `tool_calls`), and stays right when one turn
//! makes several calls.

use serde::Deserialize;
use serde_json::Value;

/// What the model says in one turn.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptTurn {
    /// Text the request (usually the last tool result) must contain for this turn to apply.
    #[serde(default)]
    pub expect: Option<String>,
    /// Text of the reply.
    #[serde(default)]
    pub text: Option<String>,
    /// Tool calls of the reply, in order.
    #[serde(default)]
    pub tool_uses: Vec<ToolUse>,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUse {
    /// Tool name (`Read`, `Edit`, `Bash`, `exec_command`, `apply_patch`, …).
    pub name: String,
    /// Its input: an object of arguments, or — for a free-form tool of the Responses API such
    /// as Codex's `apply_patch` — a string.
    pub input: Value,
}

/// The turns of a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelScript {
    /// One reply per agent turn.
    pub turns: Vec<ScriptTurn>,
    /// Answer to requests without tools (default `OK`).
    #[serde(default)]
    pub side_answer: Option<String>,
    /// Refuse every model request instead (a key the API does not accept).
    #[serde(default)]
    pub reject: Option<Refusal>,
}

/// An API refusing the credential: the status and the error type of its error body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// 401 or 403.
    pub status: u16,
    /// `authentication_error`, `permission_error`, …
    pub error_type: String,
}

/// What a model request shows of the conversation, read from its wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    /// Whether the request offers tools (an agent turn; without tools it is a side request
    /// such as a title).
    pub has_tools: bool,
    /// Tool calls the model made so far in the conversation.
    pub tool_calls: usize,
    /// The newest input from the agent's side: the user's prompt or the last tool result.
    pub last_input: Value,
}

/// The model's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A side request's short text.
    Side(String),
    /// Turn `index` of the script.
    Turn {
        /// Which turn.
        index: usize,
        /// Its text.
        text: Option<String>,
        /// Its tool calls.
        tool_uses: Vec<ToolUse>,
    },
    /// The request fits no turn; the text says why and is sent as the model's answer.
    Mismatch(String),
}

impl Reply {
    /// Its text and tool calls, and the turn number used in call ids (0 for a side answer or a
    /// mismatch).
    pub fn parts(&self) -> (Option<&str>, &[ToolUse], usize) {
        match self {
            Reply::Side(text) | Reply::Mismatch(text) => (Some(text), &[], 0),
            Reply::Turn {
                index,
                text,
                tool_uses,
            } => (text.as_deref(), tool_uses, *index),
        }
    }
}

impl ModelScript {
    /// A script that refuses every request with `status` and `error_type`.
    pub fn refusing(status: u16, error_type: &str) -> Self {
        Self {
            turns: Vec::new(),
            side_answer: None,
            reject: Some(Refusal {
                status,
                error_type: error_type.to_owned(),
            }),
        }
    }

    /// Reads a script from YAML (or JSON) text; `file` names it in errors.
    pub fn parse(text: &str, file: &std::path::Path) -> Result<Self, String> {
        terok_core::yaml::parse_typed(text, file).map_err(|e| format!("{e:?}"))
    }

    /// The answer to a request showing `view`.
    pub fn reply(&self, view: &RequestView) -> Reply {
        if !view.has_tools {
            return Reply::Side(self.side_answer.clone().unwrap_or_else(|| "OK".to_owned()));
        }
        let Some(index) = self.turn_after(view.tool_calls) else {
            return Reply::Mismatch(format!(
                "scripted model: no turn of the script follows {} tool calls",
                view.tool_calls
            ));
        };
        let step = &self.turns[index];
        if let Some(expected) = &step.expect
            && !mentions(&view.last_input, expected)
        {
            return Reply::Mismatch(format!(
                "scripted model: turn {index} expected `{expected}` in the request"
            ));
        }
        Reply::Turn {
            index,
            text: step.text.clone(),
            tool_uses: step.tool_uses.clone(),
        }
    }

    /// The turn that comes once `calls` tool calls have been made.
    fn turn_after(&self, calls: usize) -> Option<usize> {
        let mut made = 0;
        for (index, turn) in self.turns.iter().enumerate() {
            if made == calls {
                return Some(index);
            }
            made += turn.tool_uses.len();
            if made > calls {
                return None;
            }
        }
        None
    }
}

/// Whether any string in `value` contains `needle` — also inside strings that are themselves
/// JSON (tool results some agents send as an encoded object).
pub fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => {
            s.contains(needle)
                || serde_json::from_str::<Value>(s)
                    .is_ok_and(|inner| inner.is_object() && mentions(&inner, needle))
        }
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn script() -> ModelScript {
        ModelScript::parse(
            r#"
turns:
  - tool_uses:
      - {name: read, input: {path: a}}
      - {name: read, input: {path: b}}
  - expect: "return a - b"
    tool_uses:
      - {name: edit, input: {path: a}}
  - text: Fixed.
"#,
            std::path::Path::new("s.yaml"),
        )
        .unwrap()
    }

    fn view(tool_calls: usize, last_input: Value) -> RequestView {
        RequestView {
            has_tools: true,
            tool_calls,
            last_input,
        }
    }

    #[test]
    fn turns_are_placed_by_the_tool_calls_made_so_far() {
        let s = script();
        assert!(matches!(
            s.reply(&view(0, json!("fix"))),
            Reply::Turn { index: 0, .. }
        ));
        // One of turn 0's two calls is not a turn boundary.
        assert!(matches!(s.reply(&view(1, json!("x"))), Reply::Mismatch(_)));
        assert!(matches!(
            s.reply(&view(2, json!({"content": "return a - b"}))),
            Reply::Turn { index: 1, .. }
        ));
        assert!(matches!(
            s.reply(&view(3, json!("ok"))),
            Reply::Turn { index: 2, .. }
        ));
        assert!(matches!(s.reply(&view(4, json!("ok"))), Reply::Mismatch(_)));
    }

    #[test]
    fn expectations_look_inside_json_encoded_tool_results() {
        let s = script();
        let encoded = json!({"role": "tool", "content": "{\"content\": \"def add(a, b):\\n    return a - b\\n\"}"});
        assert!(matches!(
            s.reply(&view(2, encoded)),
            Reply::Turn { index: 1, .. }
        ));
        let Reply::Mismatch(note) = s.reply(&view(2, json!("return a + b"))) else {
            panic!("a result without the expected text must not match");
        };
        assert!(note.contains("turn 1 expected `return a - b`"), "{note}");
    }

    #[test]
    fn requests_without_tools_get_the_side_answer() {
        let mut s = script();
        let side = RequestView {
            has_tools: false,
            tool_calls: 0,
            last_input: json!("title?"),
        };
        assert_eq!(s.reply(&side), Reply::Side("OK".to_owned()));
        s.side_answer = Some("Title".to_owned());
        assert_eq!(s.reply(&side), Reply::Side("Title".to_owned()));
    }
}
