//! routes.json as the vault daemon reads it at start and on reload; a table it accepts
//! round-trips through the writer's text unchanged.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use terok_credentials::routes::{parse_routes, routes_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("routes.json");
    if let Ok(table) = parse_routes(text, file) {
        let again = parse_routes(&routes_json(&table), file).expect("written routes read back");
        assert_eq!(again, table);
    }
});
