//! config.yml through the real loader, diagnostics rendered as the CLI shows them; a file that
//! loads must still load after `config` edits it (the edit keeps the rest of the file).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use terok_core::config::edit::set_image_agents;
use terok_core::config::{ConfigSource, load_config};
use terok_core::env::HostEnv;
use terok_fuzz::{Scratch, render};

static SCRATCH: OnceLock<Scratch> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let scratch = SCRATCH.get_or_init(Scratch::new);
    let path = scratch.write("config.yml", data);
    let env = HostEnv::from_vars([("HOME", scratch.path().as_os_str())], 1000);
    let source = ConfigSource::File(path.clone());
    match load_config(&source, &env) {
        Ok(_) => {
            if set_image_agents(&path, "claude,codex").is_ok() {
                let edited = load_config(&source, &env);
                assert!(
                    edited.is_ok(),
                    "a loadable config.yml no longer loads after the edit: {:?}\n--- before\n{}\n--- after\n{}",
                    edited.err().map(|e| render(&e)),
                    String::from_utf8_lossy(data),
                    std::fs::read_to_string(&path).unwrap_or_default(),
                );
            }
        }
        Err(err) => {
            assert!(!render(&err).is_empty());
        }
    }
});
