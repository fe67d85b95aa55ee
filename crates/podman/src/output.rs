//! What podman prints with `--format json`, read into terok's types: pure functions of the
//! text, so the parsing is tested (and fuzzed) without running podman.
//!
//! Podman's JSON is taken as it comes: a missing or mistyped field becomes its empty value
//! rather than an error, because podman versions differ in which fields they fill. Only text
//! that is not JSON at all is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

use crate::error::PodmanError;
use crate::runtime::{ContainerInfo, ContainerState, ContainerSummary, ImageInfo};

/// `podman container inspect --format json NAME`: the first container, if any.
pub fn container_inspect(text: &str) -> Result<Option<ContainerInfo>, PodmanError> {
    let value = parse_json("container inspect", text)?;
    Ok(value.as_array().and_then(|a| a.first()).map(container_info))
}

/// `podman ps --all --format json` (podman prints nothing at all for no containers).
pub fn container_list(text: &str) -> Result<Vec<ContainerSummary>, PodmanError> {
    let value = parse_json("ps", or_empty_list(text))?;
    Ok(items(&value).map(container_summary).collect())
}

/// `podman image inspect --format json REF…`: one entry per image found, in order.
pub fn image_inspect(text: &str) -> Result<Vec<ImageInfo>, PodmanError> {
    let value = parse_json("image inspect", text)?;
    Ok(items(&value).map(image_info).collect())
}

/// `podman images --format json`: each image once, though podman lists it once per tag.
pub fn image_list(text: &str) -> Result<Vec<ImageInfo>, PodmanError> {
    let value = parse_json("images", or_empty_list(text))?;
    let mut seen = BTreeSet::new();
    Ok(items(&value)
        .filter(|img| seen.insert(str_of(&img["Id"])))
        .map(|img| ImageInfo {
            id: str_of(&img["Id"]),
            tags: strings_of(&img["Names"]),
            labels: labels_of(img.get("Labels")),
            layers: None,
            size: img["Size"].as_u64(),
        })
        .collect())
}

/// `podman network inspect --format json NAME`: the first subnet's gateway that is an address.
pub fn network_gateway(text: &str) -> Result<Option<IpAddr>, PodmanError> {
    let value = parse_json("network inspect", text)?;
    Ok(value[0]["subnets"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|subnet| subnet["gateway"].as_str()?.parse().ok()))
}

fn container_info(c: &Value) -> ContainerInfo {
    let state = &c["State"];
    ContainerInfo {
        id: str_of(&c["Id"]),
        name: c["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: str_of(&c["ImageName"]),
        state: ContainerState {
            status: state["Status"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            running: state["Running"].as_bool().unwrap_or(false),
            exit_code: state["ExitCode"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(0),
            pid: state["Pid"].as_i64().unwrap_or(0),
        },
        labels: labels_of(c["Config"].get("Labels")),
        created: str_of(&c["Created"]),
        env: c["Config"]["Env"]
            .as_array()
            .map(|vars| {
                vars.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn container_summary(c: &Value) -> ContainerSummary {
    ContainerSummary {
        id: str_of(&c["Id"]),
        name: c["Names"]
            .as_array()
            .and_then(|n| n.first())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        state: c["State"].as_str().unwrap_or_default().to_ascii_lowercase(),
        image: str_of(&c["Image"]),
        labels: labels_of(c.get("Labels")),
        created_unix: c["Created"].as_i64().unwrap_or(0),
    }
}

/// An image as `podman image inspect` describes it.
fn image_info(img: &Value) -> ImageInfo {
    ImageInfo {
        id: str_of(&img["Id"]),
        tags: strings_of(&img["RepoTags"]),
        labels: labels_of(img.get("Labels").or_else(|| img["Config"].get("Labels"))),
        layers: img["RootFS"]["Layers"].as_array().map(Vec::len),
        size: img["Size"].as_u64(),
    }
}

/// Labels as podman prints them; a value that is not a string is kept as its JSON text.
fn labels_of(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn strings_of(value: &Value) -> Vec<String> {
    items(value)
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn or_empty_list(text: &str) -> &str {
    if text.trim().is_empty() { "[]" } else { text }
}

fn parse_json(command: &str, text: &str) -> Result<Value, PodmanError> {
    serde_json::from_str(text).map_err(|e| PodmanError::Output {
        command: command.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspected_container_keeps_its_state_labels_and_environment() {
        let text = r#"[{"Id":"abc","Name":"/task-1","ImageName":"localhost/x:1",
            "State":{"Status":"Exited","Running":false,"ExitCode":3,"Pid":0},
            "Config":{"Labels":{"a":"b","n":1},"Env":["K=V=W","BROKEN"]},
            "Created":"2026-01-01T00:00:00Z"}]"#;
        let info = container_inspect(text).unwrap().unwrap();
        assert_eq!(info.name, "task-1");
        assert_eq!(info.state.status, "exited");
        assert_eq!(info.state.exit_code, 3);
        assert_eq!(info.labels["n"], "1");
        assert_eq!(info.env.len(), 1);
        assert_eq!(info.env["K"], "V=W");
    }

    #[test]
    fn odd_shapes_read_as_empty_and_only_non_json_is_an_error() {
        assert_eq!(container_inspect("[]").unwrap(), None);
        assert!(container_list("").unwrap().is_empty());
        assert!(image_list("{}").unwrap().is_empty());
        let info = container_inspect(r#"[{"State":{"ExitCode":99999999999}}]"#)
            .unwrap()
            .unwrap();
        assert_eq!(info.state.exit_code, 0, "out of range is not truncated");
        assert_eq!(network_gateway("[]").unwrap(), None);
        let err = container_list("[{").unwrap_err();
        assert!(err.to_string().contains("ps"), "{err}");
    }

    #[test]
    fn images_are_listed_once_however_many_tags() {
        let text = r#"[{"Id":"i1","Names":["a:1"]},{"Id":"i1","Names":["a:2"]},{"Id":"i2"}]"#;
        let ids: Vec<_> = image_list(text)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["i1", "i2"]);
    }

    #[test]
    fn the_gateway_is_the_first_subnet_gateway_that_parses() {
        let text = r#"[{"subnets":[{"gateway":"nope"},{"gateway":"10.89.0.1"}]}]"#;
        assert_eq!(
            network_gateway(text).unwrap(),
            Some("10.89.0.1".parse().unwrap())
        );
    }
}
