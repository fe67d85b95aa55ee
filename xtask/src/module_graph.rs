//! Which source file of a crate uses which other (`use crate::…`, `super::…`, and paths in
//! code), so a tidy test can refuse import cycles between files: a file that uses another
//! which uses it back is one design split across two places.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files of the crate whose `src` directory is `src`, each with the files it uses.
pub fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files = modules(src);
    let by_path: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|(m, f)| (m.clone(), f.clone())).collect();
    let mut out = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Code only: doc links to another module are not imports, and tests may use anything.
        let code: String = text
            .split("\n#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut used = BTreeSet::new();
        for path in referenced_paths(&code, module) {
            if let Some(target) = resolve(&by_path, &path)
                && target != file
            {
                used.insert(target.clone());
            }
        }
        out.insert(file.clone(), used);
    }
    out
}

/// Every cycle in `graph` as the files along it (each cycle once, from its smallest file).
pub fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    let mut found: BTreeSet<Vec<PathBuf>> = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    found.insert(path.clone());
                } else if next > start && !path.contains(next) && path.len() < 8 {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Module path → file, for every `.rs` file under `src` (programs in `src/bin` excluded).
fn modules(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap_or(&path);
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module
                .last()
                .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
            {
                module.pop();
            }
            out.push((module, path));
        }
    }
    out
}

/// Absolute module paths named in `code` of the file at `module`.
fn referenced_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let preceded = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[at + prefix.len()..];
            if preceded {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for item in inner.split(',') {
                    out.push(joined(&base, &segments(item.trim())));
                }
            } else {
                out.push(joined(&base, &segments(rest)));
            }
        }
    }
    out
}

fn parent(module: &[String]) -> Vec<String> {
    module[..module.len().saturating_sub(1)].to_vec()
}

fn joined(base: &[String], tail: &[String]) -> Vec<String> {
    base.iter().chain(tail).cloned().collect()
}

/// `a::b::{c}` → `[a, b]`: the leading identifiers of a path.
fn segments(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    out
}

/// The file of the longest prefix of `path` that is a module.
fn resolve<'a>(
    by_path: &'a BTreeMap<Vec<String>, PathBuf>,
    path: &[String],
) -> Option<&'a PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| by_path.get(&path[..n].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups_are_read() {
        let code = "use crate::a::b::{C, D};\nuse crate::{x, y::z};\nfn f() { super::q::r(); }";
        let got = referenced_paths(code, &["m".to_owned(), "n".to_owned()]);
        let got: Vec<String> = got.iter().map(|p| p.join("::")).collect();
        assert_eq!(got, ["a::b", "x", "y::z", "m::q::r"]);
    }

    #[test]
    fn a_cycle_is_found_once() {
        let p = |s: &str| PathBuf::from(s);
        let graph = BTreeMap::from([
            (p("a"), BTreeSet::from([p("b")])),
            (p("b"), BTreeSet::from([p("a"), p("c")])),
            (p("c"), BTreeSet::new()),
        ]);
        assert_eq!(cycles(&graph), [vec![p("a"), p("b")]]);
    }
}
