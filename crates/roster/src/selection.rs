//! Agent selections (`build --agents`, `agents set`, `image.agents`): `all`, comma lists, and
//! `-name` exclusions, expanded with `depends_on` and sorted (docs/compatibility.md#5.4).

use std::collections::BTreeSet;

use crate::error::RosterError;
use crate::roster::Roster;

/// A parsed selection, before it is checked against a roster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Whether `all` (or nothing but exclusions) was given.
    pub all: bool,
    /// Names asked for explicitly.
    pub include: Vec<String>,
    /// Names excluded with `-name`.
    pub exclude: Vec<String>,
}

impl Selection {
    /// Parses `text`: trimmed, lowercased, split on commas; empty or `all` means every
    /// installable entry; `-name` excludes.
    pub fn parse(text: &str) -> Self {
        let mut selection = Self::default();
        for part in text.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            if part.is_empty() {
                continue;
            }
            if part == "all" {
                selection.all = true;
            } else if let Some(name) = part.strip_prefix('-') {
                selection.exclude.push(name.trim().to_owned());
            } else {
                selection.include.push(part);
            }
        }
        if selection.include.is_empty() {
            selection.all = true;
        }
        selection
    }
}

impl Roster {
    /// Resolves a selection to the sorted list of entries to install, dependencies included.
    pub fn resolve_selection(&self, text: &str) -> Result<Vec<String>, RosterError> {
        let selection = Selection::parse(text);
        let installable: BTreeSet<String> =
            self.installable().map(|(a, _)| a.name.clone()).collect();
        let available = || installable.iter().cloned().collect::<Vec<_>>().join(", ");

        let unknown: Vec<&String> = selection
            .include
            .iter()
            .chain(&selection.exclude)
            .filter(|n| self.get(n).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(RosterError::Selection {
                message: format!(
                    "unknown agent{} in selection `{text}`: {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    join(&unknown)
                ),
                help: format!("available: {}", available()),
            });
        }
        let not_installable: Vec<&String> = selection
            .include
            .iter()
            .filter(|n| !installable.contains(*n))
            .collect();
        if !not_installable.is_empty() {
            return Err(RosterError::Selection {
                message: format!(
                    "{} cannot be installed into an image (no install section)",
                    join(&not_installable)
                ),
                help: format!("installable: {}", available()),
            });
        }

        let excluded: BTreeSet<&String> = selection.exclude.iter().collect();
        let mut chosen: BTreeSet<String> = if selection.all {
            installable.iter().cloned().collect()
        } else {
            selection.include.iter().cloned().collect()
        };
        chosen.retain(|n| !excluded.contains(n));

        // Expand depends_on transitively.
        let mut queue: Vec<String> = chosen.iter().cloned().collect();
        while let Some(name) = queue.pop() {
            let deps = self
                .get(&name)
                .and_then(|a| a.install.as_ref())
                .map(|i| i.depends_on.clone())
                .unwrap_or_default();
            for dep in deps {
                if excluded.contains(&dep) {
                    return Err(RosterError::Selection {
                        message: format!("cannot exclude `{dep}`: `{name}` depends on it"),
                        help: format!("exclude `{name}` too, or keep `{dep}`"),
                    });
                }
                if chosen.insert(dep.clone()) {
                    queue.push(dep);
                }
            }
        }
        Ok(chosen.into_iter().collect())
    }

    /// `names` in install order: every entry after the entries it depends on, otherwise by name.
    pub fn install_order(&self, names: &[String]) -> Vec<String> {
        let wanted: BTreeSet<&String> = names.iter().collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut order = Vec::with_capacity(names.len());
        let mut remaining: Vec<&String> = wanted.iter().copied().collect();
        while !remaining.is_empty() {
            let ready: Vec<&String> = remaining
                .iter()
                .copied()
                .filter(|name| {
                    self.get(name)
                        .and_then(|a| a.install.as_ref())
                        .is_none_or(|i| {
                            i.depends_on
                                .iter()
                                .all(|d| done.contains(d) || !wanted.contains(d))
                        })
                })
                .collect();
            // A dependency cycle cannot be ordered; keep name order for what is left.
            let batch = if ready.is_empty() {
                remaining.clone()
            } else {
                ready
            };
            for name in batch {
                done.insert(name.clone());
                order.push(name.clone());
            }
            remaining.retain(|n| !done.contains(*n));
        }
        order
    }
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(
            Selection::parse(" Claude, codex ,,"),
            Selection {
                all: false,
                include: vec!["claude".into(), "codex".into()],
                exclude: vec![]
            }
        );
        assert!(Selection::parse("").all);
        assert!(Selection::parse("all").all);
        let s = Selection::parse("-vibe");
        assert!(s.all);
        assert_eq!(s.exclude, ["vibe"]);
    }
}
