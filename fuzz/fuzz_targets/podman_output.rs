//! podman's `--format json` output as terok reads it (container inspect, ps, image inspect,
//! images, network inspect), picked by the first byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use terok_fuzz::split_selector;
use terok_podman::output;

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 5 {
        0 => drop(output::container_inspect(&text)),
        1 => drop(output::container_list(&text)),
        2 => drop(output::image_inspect(&text)),
        3 => drop(output::image_list(&text)),
        _ => drop(output::network_gateway(&text)),
    }
});
