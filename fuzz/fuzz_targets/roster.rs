//! Roster override files, both shapes, through the real loader: an agent/tool entry
//! (`agents/<name>.yaml`, roster v1 and v3 fields) when the first byte is even, a roster v3
//! provider file (`providers/<name>.yaml`) when it is odd. The error, if any, is rendered
//! as the CLI shows it.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use terok_fuzz::{Scratch, render, split_selector};
use terok_roster::RosterLoader;

static SCRATCH: OnceLock<Scratch> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((selector, yaml)) = split_selector(data) else {
        return;
    };
    let scratch = SCRATCH.get_or_init(Scratch::new);
    // The same names as bundled entries, so the merge rules run too.
    let (agents, providers) = (
        scratch.path().join("agents"),
        scratch.path().join("providers"),
    );
    let _ = std::fs::remove_dir_all(&agents);
    let _ = std::fs::remove_dir_all(&providers);
    let file = if selector % 2 == 0 {
        "agents/claude.yaml"
    } else {
        "providers/anthropic.yaml"
    };
    scratch.write(file, yaml);
    std::fs::create_dir_all(&agents).expect("agents dir");
    std::fs::create_dir_all(&providers).expect("providers dir");
    let loaded = RosterLoader::bundled()
        .with_override_dir(&agents)
        .with_provider_dir(&providers)
        .load();
    match loaded {
        Ok(roster) => {
            // What launches read off a loaded roster.
            let _ = terok_credentials::routes::routes_from_roster(&roster);
        }
        Err(err) => {
            let shown = render(&err);
            assert!(!shown.is_empty());
        }
    }
});
