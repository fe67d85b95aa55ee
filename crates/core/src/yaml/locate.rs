//! Finds where a field path (`vault.route_prefix`, `mounts[1].host_dir`) sits in YAML text, so
//! checks made after parsing (or after merging layers) can still point at a line and column.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// Source offsets of every node in a document, keyed by field path.
#[derive(Debug, Default, Clone)]
pub struct YamlIndex {
    nodes: HashMap<String, NodePos>,
}

#[derive(Debug, Clone, Copy)]
struct NodePos {
    /// Byte offset of the mapping key naming this node, for mapping entries.
    key: Option<usize>,
    /// Byte offset of the node itself.
    value: usize,
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, usize)>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

impl YamlIndex {
    /// Indexes `text`. Text that does not parse yields the nodes seen before the error.
    pub fn build(text: &str) -> Self {
        let mut nodes = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let byte_at = |marker: &serde_saphyr::granit_parser::Marker| {
            marker.byte_offset().unwrap_or_else(|| {
                text.char_indices()
                    .nth(marker.index())
                    .map_or(text.len(), |(b, _)| b)
            })
        };
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let offset = byte_at(&span.start);
            match event {
                Event::Scalar(..) | Event::Alias(..) => {
                    let scalar = match &event {
                        Event::Scalar(value, ..) => Some(value.to_string()),
                        _ => None,
                    };
                    if let Some(Frame::Map { key, .. }) = stack.last_mut()
                        && key.is_none()
                    {
                        *key = Some((scalar.unwrap_or_default(), offset));
                        continue;
                    }
                    record_child(&stack, &mut nodes, offset);
                    advance(&mut stack);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = record_child(&stack, &mut nodes, offset);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Map { path, key: None },
                        _ => Frame::Seq { path, index: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(&mut stack);
                }
                _ => {}
            }
        }
        Self { nodes }
    }

    /// Offset of the key that names `path` (or of the node, for sequence items and the root).
    pub fn key_offset(&self, path: &str) -> Option<usize> {
        self.nodes.get(path).map(|n| n.key.unwrap_or(n.value))
    }

    /// Offset of the value at `path`.
    pub fn value_offset(&self, path: &str) -> Option<usize> {
        self.nodes.get(path).map(|n| n.value)
    }

    /// Offset of the key at `path`, or of its nearest ancestor that exists in the text.
    pub fn nearest_offset(&self, path: &str) -> Option<usize> {
        let mut current = path.to_owned();
        loop {
            if let Some(pos) = self.nodes.get(&current) {
                return Some(pos.key.unwrap_or(pos.value));
            }
            current = parent_path(&current)?;
        }
    }
}

/// The path of the enclosing node: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → `` (root), `` → none.
pub fn parent_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        return path.rfind('[').map(|i| path[..i].to_owned());
    }
    Some(
        path.rfind('.')
            .map_or_else(String::new, |i| path[..i].to_owned()),
    )
}

/// Records the node that starts at `offset` as the next child of the innermost frame and
/// returns its path.
fn record_child(stack: &[Frame], nodes: &mut HashMap<String, NodePos>, offset: usize) -> String {
    let (path, key) = match stack.last() {
        None => (String::new(), None),
        Some(Frame::Map { path, key }) => {
            let (name, key_offset) = key.clone().unwrap_or_default();
            let child = if path.is_empty() {
                name
            } else {
                format!("{path}.{name}")
            };
            (child, Some(key_offset))
        }
        Some(Frame::Seq { path, index }) => (format!("{path}[{index}]"), None),
    };
    nodes
        .entry(path.clone())
        .or_insert(NodePos { key, value: offset });
    path
}

/// Moves the innermost frame past the node that just ended.
fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { index, .. }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "kind: native\nvault:\n  route_prefix: claude\n  upstream: https://x\nmounts:\n  - host_dir: a\n  - host_dir: ../b\n    label: L\nflow: {a: 1, b: [x, y]}\n";

    fn at(offset: usize) -> &'static str {
        &DOC[offset..DOC[offset..].find('\n').map_or(DOC.len(), |e| offset + e)]
    }

    #[test]
    fn keys_and_values_are_located() {
        let index = YamlIndex::build(DOC);
        assert_eq!(
            at(index.key_offset("vault.route_prefix").unwrap()),
            "route_prefix: claude"
        );
        assert_eq!(
            at(index.value_offset("vault.route_prefix").unwrap()),
            "claude"
        );
        assert_eq!(
            at(index.key_offset("mounts[1].host_dir").unwrap()),
            "host_dir: ../b"
        );
        assert_eq!(
            at(index.value_offset("mounts[1].host_dir").unwrap()),
            "../b"
        );
        assert_eq!(at(index.key_offset("kind").unwrap()), "kind: native");
        assert_eq!(&DOC[index.value_offset("flow.b[1]").unwrap()..][..1], "y");
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let index = YamlIndex::build(DOC);
        assert_eq!(
            at(index.nearest_offset("vault.credential_file").unwrap()),
            "vault:"
        );
        assert_eq!(index.key_offset("nope"), None);
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]").as_deref(), Some("a.b"));
        assert_eq!(parent_path("a.b").as_deref(), Some("a"));
        assert_eq!(parent_path("a").as_deref(), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
