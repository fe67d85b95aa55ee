//! YAML reading and writing with diagnostics that point into the file: path, line, column, the
//! field path (`image.family`) and what was expected, renderable by miette with a source snippet.

mod locate;
mod unique;

pub use locate::{YamlIndex, parent_path};
pub use unique::keys_are_unique;

use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A YAML document that could not be read into the shape we expected. The details are boxed so
/// `Result<T, YamlError>` stays small; they are reachable through `Deref`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(transparent)]
#[diagnostic(transparent)]
pub struct YamlError(Box<YamlErrorDetails>);

impl std::ops::Deref for YamlError {
    type Target = YamlErrorDetails;
    fn deref(&self) -> &YamlErrorDetails {
        &self.0
    }
}

/// Where and why a YAML document was rejected.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}", self.headline())]
pub struct YamlErrorDetails {
    /// The file the text came from.
    pub file: PathBuf,
    /// 1-based line of the offending node, when known.
    pub line: Option<u64>,
    /// 1-based column of the offending node, when known.
    pub column: Option<u64>,
    /// Dotted path of the field being read (`image.family`, `mounts[0].host_dir`), when known.
    pub field_path: Option<String>,
    /// What went wrong, without location (that is in the other fields).
    pub message: String,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("{label}")]
    span: Option<SourceSpan>,
    label: String,
    #[help]
    help: Option<String>,
}

impl YamlError {
    /// Builds an error for `message` at a byte offset of `text` (for checks done after parsing,
    /// such as a value that parsed but is not allowed).
    pub fn at_offset(
        file: &Path,
        text: &str,
        offset: Option<usize>,
        field_path: Option<String>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let (l, c) = line_col(text, offset);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let message = message.into();
        Self(Box::new(YamlErrorDetails {
            file: file.to_path_buf(),
            line,
            column,
            field_path,
            label: short_label(&message),
            message,
            span: offset.map(|o| error_span(text, o)),
            source_code: NamedSource::new(file.display().to_string(), text.to_owned()),
            help,
        }))
    }
}

impl YamlErrorDetails {
    fn headline(&self) -> String {
        let mut out = self.file.display().to_string();
        if let (Some(line), Some(column)) = (self.line, self.column) {
            out.push_str(&format!(":{line}:{column}"));
        }
        out.push_str(": ");
        if let Some(path) = self.field_path.as_deref().filter(|p| !p.is_empty()) {
            out.push_str(&format!("{path}: "));
        }
        out.push_str(&self.message);
        out
    }

    /// The help line shown under the snippet, if any.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }
}

/// A value that could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot render YAML: {0}")]
pub struct YamlWriteError(String);

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! { with_snippet: false }
}

/// Reads `text` (from `file`) into `T`, reporting the field path and location on failure.
pub fn parse_typed<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, YamlError> {
    let mut field_path = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|err| {
            field_path = Some(err.path().to_string()).filter(|p| p != ".");
            err.into_inner()
        })
    });
    result.map_err(|err| from_saphyr(&err, text, file, field_path))
}

/// Reads `text` into an untyped tree (for layering); an empty document is `null`.
pub fn parse_value(text: &str, file: &Path) -> Result<Value, YamlError> {
    parse_typed::<Option<Value>>(text, file).map(|v| v.unwrap_or(Value::Null))
}

/// Renders `value` as block-style YAML.
pub fn to_yaml_string<T: Serialize>(value: &T) -> Result<String, YamlWriteError> {
    serde_saphyr::to_string(value).map_err(|e| YamlWriteError(e.to_string()))
}

fn from_saphyr(
    err: &serde_saphyr::Error,
    text: &str,
    file: &Path,
    field_path: Option<String>,
) -> YamlError {
    let location = err.location();
    let offset = location
        .and_then(|l| l.span().byte_offset())
        .and_then(|o| usize::try_from(o).ok())
        .or_else(|| location.and_then(|l| offset_of(text, l.line(), l.column())))
        // A parser's offset can point past the end or into a character; neither can be cut at.
        .filter(|o| text.is_char_boundary(*o));
    let mut message = err.without_snippet().to_string();
    if let Some(loc) = location {
        let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    message = hide_internal_names(message);
    if let Some(offset) = offset {
        message = explain_scalar_error(message, &text[offset..offset + token_len(text, offset)]);
    }
    let help = suggestion(&message);
    let mut error = YamlError::at_offset(file, text, offset, field_path, message, help);
    if let Some(loc) = location {
        error.0.line = Some(loc.line());
        error.0.column = Some(loc.column());
    }
    error
}

/// Byte offset of a 1-based line and column.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(usize::try_from(line - 2).ok()?)?
            .0
            + 1
    };
    let rest = text.get(line_start..)?;
    let col = usize::try_from(column.saturating_sub(1)).ok()?;
    Some(line_start + rest.char_indices().nth(col).map_or(rest.len(), |(b, _)| b))
}

/// Drops names starting with `_` (merge sentinels) from serde's "expected one of" lists: they
/// are accepted but are not what a user who misspelt a key is looking for.
fn hide_internal_names(message: String) -> String {
    let Some((head, list)) = message.split_once(", expected one of ") else {
        return message;
    };
    let kept: Vec<&str> = list
        .split(", ")
        .filter(|name| !name.trim_matches('`').starts_with('_'))
        .collect();
    format!("{head}, expected one of {}", kept.join(", "))
}

/// Turns the parser's terse "invalid u16" into what was expected and what was found.
fn explain_scalar_error(message: String, found: &str) -> String {
    let expected = match message.strip_prefix("invalid ") {
        Some("u8") => "an integer from 0 to 255",
        Some("u16") => "an integer from 0 to 65535",
        Some("u32") => "an integer from 0 to 4294967295",
        Some("u64" | "usize") => "a non-negative integer",
        Some("i32" | "i64" | "isize") => "an integer",
        Some("f32" | "f64") => "a number",
        Some("bool" | "boolean") => "true or false",
        _ => return message,
    };
    format!("expected {expected}, found `{found}`")
}

/// For "unknown field `x`, expected one of a, b" (or "unknown variant") suggests the closest
/// allowed name.
fn suggestion(message: &str) -> Option<String> {
    let (rest, what) = match message.strip_prefix("unknown field `") {
        Some(rest) => (rest, "keys"),
        None => (message.strip_prefix("unknown variant `")?, "values"),
    };
    let (unknown, rest) = rest.split_once('`')?;
    let allowed = rest
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .or_else(|| rest.split_once("expected ").map(|(_, one)| one))?;
    let names: Vec<&str> = allowed
        .split(", ")
        .map(|n| n.trim_matches('`').trim())
        .filter(|n| !n.is_empty())
        .collect();
    let best = names
        .iter()
        .map(|n| (edit_distance(unknown, n), *n))
        .min()
        .filter(|(d, n)| *d <= (n.len() / 3).max(2));
    Some(match best {
        Some((_, name)) => format!(
            "did you mean `{name}`? Allowed {what} here: {}",
            names.join(", ")
        ),
        None => format!("allowed {what} here: {}", names.join(", ")),
    })
}

/// Levenshtein distance, for "did you mean" hints on short identifiers.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u64, column as u64)
}

/// Length of the token starting at `offset`: up to whitespace, `:` or a flow delimiter.
/// The length of the token at `offset`: up to whitespace or YAML punctuation, never past the
/// end of `text` (an error at the very end has an empty token).
fn token_len(text: &str, offset: usize) -> usize {
    text.get(offset..).map_or(0, |rest| {
        rest.find(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | ']' | '}'))
            .unwrap_or(rest.len())
    })
}

/// The span shown under an error at `offset`: its token, or one character where the token is
/// empty, within `text`.
fn error_span(text: &str, offset: usize) -> SourceSpan {
    let visible = token_len(text, offset)
        .max(1)
        .min(text.len().saturating_sub(offset));
    SourceSpan::from((offset, visible))
}

fn short_label(message: &str) -> String {
    let first = message.split(',').next().unwrap_or(message);
    first.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Section {
        base_image: Option<String>,
        family: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Doc {
        image: Option<Section>,
    }

    /// Found by the `config` fuzz target: the parser placed this error at the very end of
    /// the text, and cutting out "the token there" panicked.
    #[test]
    fn an_error_at_the_end_of_the_text_is_reported_not_a_panic() {
        let text = "e\r\0\0\0\0\0\0\0h\n";
        let err =
            parse_typed::<crate::config::TerokConfig>(text, Path::new("config.yml")).unwrap_err();
        assert_eq!(err.0.file, Path::new("config.yml"));
        for offset in 0..=text.len() {
            let span = error_span(text, offset);
            assert!(
                span.offset() + span.len() <= text.len(),
                "{offset}: {span:?}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_column_path_and_suggestion() {
        let text = "# comment\nimage:\n  bse_image: x\n";
        let err = parse_typed::<Doc>(text, Path::new("cfg.yml")).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(3)));
        assert_eq!(err.field_path.as_deref(), Some("image.bse_image"));
        let shown = err.to_string();
        assert!(
            shown.starts_with("cfg.yml:3:3: image.bse_image: unknown field `bse_image`"),
            "{shown}"
        );
        assert!(
            err.help_text()
                .unwrap()
                .contains("did you mean `base_image`?")
        );
    }

    #[test]
    fn values_parse_into_trees() {
        let v = parse_value("a: [1, x]\nb:\n", Path::new("x")).unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, "x"], "b": null}));
        assert_eq!(
            parse_value("# nothing\n", Path::new("x")).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("bse_image", "base_image"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
