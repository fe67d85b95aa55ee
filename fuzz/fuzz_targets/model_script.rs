//! The scripted model's script format (YAML or JSON), and the requests an agent sends it in
//! each protocol, answered by the script: the first byte picks the protocol, the rest is a
//! script and a request separated by a line `---request`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use terok_fuzz::split_selector;
use terok_testkit::model::{ModelScript, Protocol};

const PROTOCOLS: [&str; 3] = ["anthropic", "chat", "responses"];

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (script, request) = text.split_once("\n---request\n").unwrap_or((&text, "{}"));
    let Ok(script) = ModelScript::parse(script, Path::new("script.yaml")) else {
        return;
    };
    let Ok(request) = serde_json::from_str(request) else {
        return;
    };
    let protocol = Protocol::from_name(PROTOCOLS[usize::from(selector) % PROTOCOLS.len()])
        .expect("a known protocol");
    let _ = protocol.answer(&script, &request, "fuzz");
});
