//! What the shield reads that a user or podman wrote: the OCI state on the hook's stdin,
//! allowlist profiles, and `nft list` output of the live sets, picked by the first byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use terok_fuzz::split_selector;
use terok_shield::{hook, live, profile};

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 3 {
        0 => drop(hook::ContainerState::parse(&text)),
        1 => drop(profile::Profile::parse("fuzz", "fuzz.txt", &text)),
        _ => drop(live::parse_sets(&text)),
    }
});
