//! The emitted YAML against the Kubernetes v1.33 OpenAPI schema (strict: no field the API
//! does not know), and the Pod's isolation as a reviewer would check it: the Secret in the
//! sidecar only, no privilege, no cluster credential, default-deny egress.
//!
//! `schema/k8s-v1.33-strict.json` holds the definitions of Pod, Secret, ConfigMap and
//! NetworkPolicy and everything they refer to, from Kubernetes' published OpenAPI document
//! in the strict JSON-schema form (unknown properties refused), with descriptions removed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use serde_json::Value;
use terok_kube::{
    AGENT_CONTAINER, AgentContainer, CloneSource, Destination, Egress, Manifests, TaskFile,
    TaskPod, VAULT_CONTAINER, VaultSidecar,
};

const SCHEMA: &str = include_str!("schema/k8s-v1.33-strict.json");
const BUNDLE: &str = r#"{"version":1,"credentials":{"claude":{"type":"api_key","key":"sk-real"}}}"#;

fn task() -> TaskPod {
    let agent = AgentContainer::new(
        "localhost/terok-l1-cli:debian-bookworm-claude",
        "init-ssh-and-repo.sh && claude -p 'fix it'",
        vec![
            ("ANTHROPIC_API_KEY".into(), "terok-p-0123".into()),
            ("TEROK_VAULT_LOOPBACK_PORT".into(), "28199".into()),
        ],
    );
    let vault = VaultSidecar::new(
        "localhost/terok-vault:abc",
        vec![
            "terok-executor".into(),
            "vault".into(),
            "serve".into(),
            "--sidecar".into(),
        ],
        BUNDLE.as_bytes().to_vec(),
    );
    let mut task = TaskPod::new("terok-claude-1234", agent, vault);
    task.labels.insert("terok.dev/task".into(), "1234".into());
    task.clone = Some(CloneSource::new(
        "https://example.com/org/repo.git",
        Some("fix"),
    ));
    task.scratch_dirs = vec!["/home/dev/.terok".into(), "/home/dev/.claude".into()];
    task.files = vec![
        TaskFile::new("/home/dev/.terok/vault.env", b"X=1\n".to_vec(), 0o644),
        TaskFile::new("/home/dev/.terok/bin/it's", vec![0xff, 0x00], 0o4755),
    ];
    task.egress = Egress::Listed(vec![
        Destination::Named {
            host: "api.anthropic.com".into(),
            port: 443,
        },
        Destination::Block {
            cidr: "198.51.100.7/32".into(),
            port: Some(8080),
        },
    ]);
    task.deadline_secs = Some(3630);
    task
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap())
        .collect()
}

/// Validates `value` against `schema`, resolving `$ref`s in `defs`; returns every problem
/// with its path.
fn validate(value: &Value, schema: &Value, defs: &Value, path: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        let target = defs
            .get(name)
            .unwrap_or_else(|| panic!("no definition {name}"));
        return validate(value, target, defs, path, problems);
    }
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = choices
            .iter()
            .filter(|choice| {
                let mut inner = Vec::new();
                validate(value, choice, defs, path, &mut inner);
                inner.is_empty()
            })
            .count();
        if matching != 1 {
            problems.push(format!("{path}: matches {matching} of oneOf"));
        }
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits =
            allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        if !fits {
            problems.push(format!("{path}: {actual}, expected {allowed:?}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("int32")
        && let Some(n) = value.as_i64()
        && i32::try_from(n).is_err()
    {
        problems.push(format!("{path}: {n} is not an int32"));
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if value.get(field).is_none() {
                problems.push(format!("{path}: `{field}` is required"));
            }
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            let field_path = format!("{path}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                schema.get("additionalProperties"),
            ) {
                (Some(property), _) => validate(field, property, defs, &field_path, problems),
                (None, Some(Value::Bool(false))) => {
                    problems.push(format!("{field_path}: not a field of this object"));
                }
                (None, Some(additional @ Value::Object(_))) => {
                    validate(field, additional, defs, &field_path, problems);
                }
                (None, _) => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            validate(
                item,
                item_schema,
                defs,
                &format!("{path}[{index}]"),
                problems,
            );
        }
    }
}

fn problems_of(document: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let kind = document["kind"]
        .as_str()
        .expect("every document has a kind");
    let root = schema["roots"][kind]
        .as_str()
        .unwrap_or_else(|| panic!("no schema for {kind}"));
    let defs = &schema["$defs"];
    let mut problems = Vec::new();
    validate(document, &defs[root], defs, kind, &mut problems);
    problems
}

#[test]
fn every_emitted_object_is_valid_kubernetes() {
    let manifests = Manifests::of(&task());
    let task_docs = documents(&manifests.task_yaml().unwrap());
    let kinds: Vec<&str> = task_docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "NetworkPolicy", "Pod"]);
    let secret_docs = documents(&manifests.secret_yaml().unwrap());
    assert_eq!(secret_docs.len(), 1);
    for document in task_docs.iter().chain(&secret_docs) {
        assert_eq!(problems_of(document), Vec::<String>::new(), "{document:#}");
    }
    // The same check refuses what the API would: it is not vacuous.
    let mut pod = task_docs[2].clone();
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalations"] = false.into();
    pod["spec"]["restartPolicy"] = 3.into();
    pod["spec"]["containers"][1]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let problems = problems_of(&pod);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("allowPrivilegeEscalations: not a field")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("restartPolicy: integer")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("`name` is required")),
        "{problems:?}"
    );
}

fn containers(pod: &Value) -> Vec<&Value> {
    let spec = &pod["spec"];
    spec["initContainers"]
        .as_array()
        .into_iter()
        .chain(spec["containers"].as_array())
        .flatten()
        .collect()
}

#[test]
fn only_the_sidecar_mounts_the_secret_and_no_container_may_gain_privileges() {
    let manifests = Manifests::of(&task());
    let docs = documents(&manifests.task_yaml().unwrap());
    let pod = &docs[2];
    let secret_volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.get("secret").is_some())
        .unwrap()["name"]
        .clone();
    for container in containers(pod) {
        let name = container["name"].as_str().unwrap();
        let mounts_secret = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == secret_volume);
        assert_eq!(mounts_secret, name == VAULT_CONTAINER, "{name}");
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["privileged"], false, "{name}");
        assert_eq!(context["runAsNonRoot"], true, "{name}");
        assert_eq!(context["runAsUser"], 1000, "{name}");
        assert_eq!(context["capabilities"]["drop"][0], "ALL", "{name}");
        assert!(context["capabilities"].get("add").is_none(), "{name}");
        assert!(container.get("envFrom").is_none(), "{name}");
        // No variable of any container refers to the Secret or holds the bundle.
        let env = container["env"].to_string();
        assert!(
            !env.contains("secretKeyRef") && !env.contains("sk-real"),
            "{name}: {env}"
        );
    }
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(pod["spec"]["enableServiceLinks"], false);
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    for field in ["hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"] {
        assert!(pod["spec"].get(field).is_none(), "{field}");
    }
    // Nor does a debug print of the objects or of the task show the bundle.
    assert!(!format!("{manifests:?}").contains("sk-real"));
    assert!(!format!("{:?}", task()).contains("sk-real"));
    // The real credential is in the Secret's document only.
    let yaml = manifests.task_yaml().unwrap();
    assert!(!yaml.contains("sk-real"));
    assert!(!yaml.contains("c2stcmVhbC")); // nor base64 of it
    let secret = documents(&manifests.secret_yaml().unwrap()).remove(0);
    let stored = secret["data"]["bundle.json"].as_str().unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .unwrap();
    assert_eq!(decoded, BUNDLE.as_bytes());
    // The agent's container: its tokens, the vault's socket read-only, no set-id file.
    let agent = containers(pod)
        .into_iter()
        .find(|c| c["name"] == AGENT_CONTAINER)
        .unwrap();
    assert!(agent["env"].to_string().contains("terok-p-0123"));
    let vault_mount = agent["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/run/terok/vault")
        .unwrap();
    assert_eq!(vault_mount["readOnly"], true);
    let prepare = containers(pod).remove(0)["command"][2]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prepare
            .contains("install -D -m 755 /run/terok/files/file-1 '/home/dev/.terok/bin/it'\\''s'"),
        "{prepare}"
    );
    assert!(
        prepare.contains("install -D -m 644 /run/terok/files/file-0 /home/dev/.terok/vault.env"),
        "{prepare}"
    );
}

#[test]
fn egress_is_denied_but_for_dns_and_the_tasks_destinations() {
    let mut listed = task();
    let docs = documents(&Manifests::of(&listed).task_yaml().unwrap());
    let policy = &docs[1];
    // Ingress too, with no rule: nothing in the cluster connects to the task.
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert!(policy["spec"].get("ingress").is_none());
    // It selects this Pod alone, by its name.
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        serde_json::json!({ "terok.dev/pod": "terok-claude-1234" })
    );
    assert_eq!(
        docs[2]["metadata"]["labels"]["terok.dev/pod"],
        "terok-claude-1234"
    );
    assert_eq!(docs[2]["metadata"]["labels"]["terok.dev/task"], "1234");
    // The cluster's DNS is kube-system's, not any Pod labelled like it.
    assert_eq!(
        policy["spec"]["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );
    let rules = policy["spec"]["egress"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "{rules:#?}");
    assert_eq!(rules[0]["ports"][0]["port"], 53);
    // A name: its port at public addresses only, never the private ranges.
    assert_eq!(rules[1]["ports"][0]["port"], 443);
    let except = rules[1]["to"][0]["ipBlock"]["except"].to_string();
    for private in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "198.18.0.0/15",
    ] {
        assert!(except.contains(private), "{except}");
    }
    let except_v6 = rules[1]["to"][1]["ipBlock"]["except"].to_string();
    for private in [
        "fc00::/7",
        "fe80::/10",
        "::1/128",
        "64:ff9b::/96",
        "::ffff:0:0/96",
    ] {
        assert!(except_v6.contains(private), "{except_v6}");
    }
    assert_eq!(rules[2]["to"][0]["ipBlock"]["cidr"], "198.51.100.7/32");
    assert_eq!(rules[2]["ports"][0]["port"], 8080);
    assert_eq!(
        policy["metadata"]["annotations"]["terok.dev/egress-names"],
        "api.anthropic.com:443"
    );
    // Nothing listed: DNS only.
    listed.egress = Egress::Listed(Vec::new());
    let docs = documents(&Manifests::of(&listed).task_yaml().unwrap());
    assert_eq!(docs[1]["spec"]["egress"].as_array().unwrap().len(), 1);
    // Open: one rule that allows everything.
    listed.egress = Egress::Open;
    let docs = documents(&Manifests::of(&listed).task_yaml().unwrap());
    assert_eq!(docs[1]["spec"]["egress"], serde_json::json!([{}]));
}
