//! Tidy checks that `cargo test` enforces: conventions a reviewer would otherwise have to catch.

use std::path::{Path, PathBuf};

use crate::util::workspace_root;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, &["target", "fixtures"], &|path| {
        path.extension().is_some_and(|e| e == "rs")
    })
}

/// The files under `dir` that `keep` accepts, sorted, not descending into directories named in
/// `skip`.
fn files_under(dir: &Path, skip: &[&str], keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path
                    .file_name()
                    .is_some_and(|n| skip.iter().any(|s| n == *s))
                {
                    stack.push(path);
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Source files of shipped library code: `crates/<name>/src/**`.
fn library_sources(exempt: &[&str]) -> Vec<PathBuf> {
    let crates = workspace_root().join("crates");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if exempt.contains(&name.as_str()) {
            continue;
        }
        out.extend(rust_files(&entry.path().join("src")));
    }
    out
}

/// Lines of `text` outside `#[cfg(test)]` modules (a crude cut: everything from the first
/// `#[cfg(test)]` onwards is test code, which is how this workspace lays files out).
fn non_test_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .map(|(i, l)| (i + 1, l))
}

#[test]
fn every_rust_file_starts_with_a_module_doc_comment() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for path in rust_files(&root.join("crates"))
        .into_iter()
        .chain(rust_files(&root.join("xtask")))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        if !first.starts_with("//!") {
            missing.push(relative(&path));
        }
    }
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line:\n{}",
        missing.join("\n")
    );
}

#[test]
fn only_the_cli_prints() {
    let mut found = Vec::new();
    // Programs (`src/bin/`, e.g. testkit's terok-mock-model) talk to their terminal; libraries
    // never do.
    for path in library_sources(&["cli"])
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "bin"))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line_no, line) in non_test_lines(&text) {
            let code = line.split("//").next().unwrap_or_default();
            if ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("]
                .iter()
                .any(|m| code.contains(m))
            {
                found.push(format!("{}:{line_no}: {}", relative(&path), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "printing outside the cli crate:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_terok_podman_spawns_podman() {
    // terok-testkit is dev-only tooling (base image, test gates) and may call podman directly.
    let mut found = Vec::new();
    for path in library_sources(&["podman", "testkit"]) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (line_no, line) in non_test_lines(&text) {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("Command::new(\"podman\"")
                || compact.contains("Command::new(PODMAN")
            {
                found.push(format!("{}:{line_no}: {}", relative(&path), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "podman spawned outside terok-podman:\n{}",
        found.join("\n")
    );
}

/// Architecture Invariant: no child process inherits the vault key or passphrase — every
/// file that starts a process removes `SECRET_VARS` from its environment.
#[test]
fn every_child_process_is_started_without_the_vault_secrets() {
    // terok-testkit is dev-only tooling; the CLI starts no process (clap's `Command` is not one).
    let mut found = Vec::new();
    for path in library_sources(&["testkit", "cli"]) {
        let text = std::fs::read_to_string(&path).unwrap();
        let code: Vec<(usize, &str)> = non_test_lines(&text).collect();
        let scrubs = code.iter().any(|(_, l)| l.contains("SECRET_VARS"));
        for (line_no, line) in &code {
            if line.contains("Command::new(") && !scrubs {
                found.push(format!("{}:{line_no}: {}", relative(&path), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "processes started with the vault secrets in their environment:\n{}",
        found.join("\n")
    );
}

#[test]
fn architecture_doc_shows_the_layers_table() {
    let doc_path = workspace_root().join("docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let expected = crate::docs::architecture_with_table(&doc).unwrap();
    assert!(
        doc == expected,
        "docs/architecture.md's layers table differs from xtask/src/layers.rs; run `cargo xtask docs`. \
         It should read:\n{}",
        crate::layers::markdown_table()
    );
}

#[test]
fn roster_schema_doc_is_current() {
    let committed = std::fs::read_to_string(crate::docs::roster_schema_path()).unwrap_or_default();
    assert!(
        committed == crate::docs::roster_schema_text(),
        "docs/roster.schema.json is out of date with crates/roster/src/schema.rs; run `cargo xtask docs`"
    );
    let committed =
        std::fs::read_to_string(crate::docs::provider_schema_path()).unwrap_or_default();
    assert!(
        committed == crate::docs::provider_schema_text(),
        "docs/roster-provider.schema.json is out of date with crates/roster/src/schema.rs; run `cargo xtask docs`"
    );
}

/// Every file under `dir` (any kind), skipping build output and git metadata.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, &["target", ".git"], &|_| true)
}

/// The texts a reference outside the repository shows up as: the reference files of the
/// Python original and our early decision notes, which lived next to the repository. Built
/// with `concat!` so that this file does not match itself.
const OUTSIDE_REFERENCES: &[&str] = &[
    concat!("executor", ".md"),
    concat!("sandbox", ".md"),
    concat!("..", "/shared"),
    concat!("/work", "/shared"),
];

/// A section citation of the decisions file points outside the repository unless it is the
/// one under `docs/`.
const DECISIONS_CITATION: &str = concat!("decisions", ".md §");

/// What on `line` points outside the repository, if anything.
fn outside_reference(line: &str) -> Option<&'static str> {
    if let Some(found) = OUTSIDE_REFERENCES.iter().find(|p| line.contains(**p)) {
        return Some(found);
    }
    line.match_indices(DECISIONS_CITATION)
        .any(|(at, _)| !line[..at].ends_with("docs/"))
        .then_some(DECISIONS_CITATION)
}

#[test]
fn no_reference_points_outside_the_repository() {
    // The project explains itself: comments and docs cite docs/decisions.md and
    // docs/compatibility.md, never files that only exist on some machine.
    let root = workspace_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["crates", "xtask", "docs", "resources"] {
        files.extend(all_files(&root.join(dir)));
    }
    let mut found = Vec::new();
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (line_no, line) in text.lines().enumerate() {
            if let Some(pattern) = outside_reference(line) {
                found.push(format!(
                    "{}:{}: `{pattern}` in: {}",
                    relative(&path),
                    line_no + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references to files outside the repository (cite docs/decisions.md or \
         docs/compatibility.md by section instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn outside_references_are_recognised() {
    let decisions = concat!("decisions", ".md");
    assert_eq!(
        outside_reference(&format!("(docs/{decisions} §3.3)")),
        None,
        "the in-repository file is fine"
    );
    assert!(outside_reference(&format!("({decisions} §3 item 3)")).is_some());
    assert!(outside_reference(&format!("docs/{decisions} §1, {decisions} §2")).is_some());
    assert!(outside_reference(concat!("see executor", ".md §4")).is_some());
    assert!(outside_reference(concat!("..", "/shared/spec")).is_some());
    assert_eq!(outside_reference("docs/compatibility.md §9.2"), None);
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let root = workspace_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("src"))
        .collect();
    dirs.push(root.join("xtask/src"));
    dirs.sort();
    let mut found = Vec::new();
    for src in dirs {
        for cycle in crate::module_graph::cycles(&crate::module_graph::graph(&src)) {
            let names: Vec<String> = cycle.iter().map(|p| relative(p)).collect();
            found.push(names.join(" -> "));
        }
    }
    assert!(
        found.is_empty(),
        "files that import each other (move what both need into a module of its own):\n{}",
        found.join("\n")
    );
}

/// The one place that may use `unsafe`: the allocator call that gives a vault daemon's memory
/// back after a burst (docs/decisions.md, "One unsafe declaration"). The workspace lint denies
/// `unsafe_code` everywhere else; this check keeps a second `allow` or `expect` from slipping
/// in, and catches code outside the workspace lint (the fuzz crate).
const UNSAFE_SITE: &str = "crates/vault/src/memory.rs";

/// `source` with every comment and literal (strings, raw strings, byte strings, chars)
/// blanked to spaces, line breaks kept: what is left is code, on the lines it was on.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    // Blanks `chars[from..to]`, keeping line breaks.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &c in &chars[from..to.min(chars.len())] {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let in_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        let end = if c == '/' && next == Some('/') {
            (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len())
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == '"' {
            string_end(&chars, i + 1)
        } else if (c == 'r' || (c == 'b' && next == Some('r'))) && !in_word {
            match raw_string_end(&chars, i + usize::from(c == 'b') + 1) {
                Some(end) => end,
                None => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            }
        } else if c == '\'' {
            match char_literal_end(&chars, i) {
                Some(end) => end,
                None => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            }
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    out
}

/// Just past the `*/` closing the (possibly nested) block comment opening at `start`.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Just past the quote closing a string whose text starts at `from` (escapes skipped).
fn string_end(chars: &[char], from: usize) -> usize {
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Just past a raw string whose hashes (if any) start at `from` (after the `r`), or `None`
/// when `r` starts an identifier instead.
fn raw_string_end(chars: &[char], from: usize) -> Option<usize> {
    let hashes = chars[from.min(chars.len())..]
        .iter()
        .take_while(|&&c| c == '#')
        .count();
    if chars.get(from + hashes) != Some(&'"') {
        return None;
    }
    let mut i = from + hashes + 1;
    while i < chars.len() {
        let closing_hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
        if chars[i] == '"' && closing_hashes >= hashes {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

/// Just past the char literal opening at `start`, or `None` for a lifetime (`'a`).
fn char_literal_end(chars: &[char], start: usize) -> Option<usize> {
    match chars.get(start + 1) {
        Some('\\') => {
            let close = (start + 2..chars.len()).find(|&j| chars[j] == '\'')?;
            Some(close + 1)
        }
        Some(_) if chars.get(start + 2) == Some(&'\'') => Some(start + 3),
        _ => None,
    }
}

/// The lines of `source` (1-based) whose code uses `unsafe` or lifts the lint against it —
/// the word in a comment or a literal does not count.
fn unsafe_lines(source: &str) -> Vec<usize> {
    code_only(source)
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == "unsafe" || word == "unsafe_code")
        })
        .map(|(n, _)| n + 1)
        .collect()
}

#[test]
fn unsafe_code_is_the_one_declared_foreign_call() {
    let root = workspace_root();
    let mut found = Vec::new();
    for dir in ["crates", "xtask", "fuzz"] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for n in unsafe_lines(&text) {
                let line = lines.get(n - 1).map_or("", |l| l.trim());
                found.push(format!("{}:{n}: {line}", relative(&file)));
            }
        }
    }
    let elsewhere: Vec<_> = found
        .iter()
        .filter(|hit| !hit.starts_with(&format!("{UNSAFE_SITE}:")))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "unsafe outside {UNSAFE_SITE}:\n{elsewhere:#?}"
    );
    let at_site: Vec<_> = found
        .iter()
        .filter(|hit| hit.starts_with(&format!("{UNSAFE_SITE}:")))
        .collect();
    assert_eq!(
        at_site.len(),
        2,
        "{UNSAFE_SITE} lifts the lint once and declares one foreign block: {at_site:#?}"
    );
}

#[test]
fn unsafe_is_recognised_in_code_and_not_in_words() {
    let found = |source: &str| !unsafe_lines(source).is_empty();
    assert!(found("    let x = unsafe { f() };"));
    assert!(found("#[allow(unsafe_code)]"));
    assert!(found("unsafe extern \"C\" {"));
    assert!(!found("// an unsafe scope name"));
    assert!(!found("    \"unsafe scope names refused\","));
    assert!(!found("fn unsafe_scope_is_refused() {"));
    assert!(!found("    \"a \\\"quoted\\\" unsafe\","));
    assert!(found("    f(\"a \\\"quote\\\"\"); unsafe { g() }"));
    // A quote that is a char, in a raw string or in a comment opens no string.
    assert!(found("match c { '\"' => unsafe { f() }, _ => {} }"));
    assert!(found("match c { '\\'' => unsafe { f() }, _ => {} }"));
    assert!(found("let s = r#\"a \" b\"#; unsafe { f() }"));
    assert!(found("let s = r\"C:\\\"; unsafe { f() }"));
    assert!(found("/* \" */ unsafe { f() }"));
    assert!(found("fn f<'a>(x: &'a str) { unsafe { g() } }"));
    // A string over several lines hides only its own text.
    assert_eq!(
        unsafe_lines("let s = \"a\nunsafe b\";\nunsafe { f() }"),
        vec![3]
    );
    assert!(!found("/* outer /* nested */ unsafe */"));
    assert!(!found("let s = br#\"unsafe\"#;"));
    assert!(!found("let c = b'\"'; // unsafe"));
}
