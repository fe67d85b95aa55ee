//! The roster that ships inside the binary: `resources/agents/*.yaml`, embedded at compile time
//! by build.rs together with a JSON rendering of each file (cheap to parse at start-up).

include!(concat!(env!("OUT_DIR"), "/bundled_agents.rs"));

/// `(entry name, YAML text)` of every bundled roster file, sorted by name.
pub fn bundled_agents() -> impl Iterator<Item = (&'static str, &'static str)> {
    BUNDLED.iter().map(|(name, yaml, _)| (*name, *yaml))
}

/// The bundled default instructions given to every agent (docs/compatibility.md#11.3).
pub const DEFAULT_INSTRUCTIONS: &str = include_str!("../../../resources/instructions/default.md");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::AgentFile;

    #[test]
    fn every_bundled_file_passes_the_strict_schema_and_matches_its_json() {
        assert_eq!(BUNDLED.len(), 15);
        for (name, yaml, json) in BUNDLED {
            let path = std::path::PathBuf::from(format!("{name}.yaml"));
            terok_core::yaml::parse_typed::<AgentFile>(yaml, &path).unwrap();
            let from_yaml = terok_core::yaml::parse_value(yaml, &path).unwrap();
            let from_json: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(from_yaml, from_json, "{name}");
        }
    }
}
