//! ACP frames as the proxy handles them from an agent: each line parsed, its models read,
//! renamed into the proxy's namespace, and the model ids split back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use terok_acp::{frame, models};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let Some(mut parsed) = frame::parse(line) else {
            continue;
        };
        let _ = frame::method(&parsed);
        let _ = frame::id(&parsed);
        let params = frame::params(&parsed).clone();
        let _ = frame::param(&params, &["modelId", "model_id"]);
        if let Some(result) = parsed.get("result") {
            for model in models::offered_models(result) {
                let _ = models::humanise(&model);
            }
        }
        models::to_client(&mut parsed, "claude");
        if let Some(result) = parsed.get("result") {
            for model in models::offered_models(result) {
                // Every model the client is offered is one it can name back.
                let (agent, _) = models::split_model(&model).expect("a namespaced model id");
                assert_eq!(agent, "claude");
            }
        }
    }
});
