//! Models across agents: what a session offers (`agent:model` ids, one picker over every agent
//! of the task), and the rewriting of an agent's frames for the client — its session id
//! becomes the proxy's, its model ids get the agent's namespace.
//!
//! An id is namespaced by where it stands, not by what it contains: OpenRouter's model ids
//! have colons of their own (`…:free`), so "already has a colon" cannot mean "namespaced".
//! `agent:model` splits at the first colon, as agent names have none.

use agent_client_protocol::v1::schema as acp;
use serde_json::{Map, Value, json};

use crate::frame::Frame;

/// The one session id a proxy connection gives its client.
pub const PROXY_SESSION_ID: &str = "proxy-1";
/// The id of the proxy's model option.
pub const MODEL_OPTION_ID: &str = "model";
/// Where the three shapes of a select option keep its choices.
const CHOICE_KEYS: [&str; 3] = ["options", "values", "choices"];

/// `agent:model` split in two; `None` unless both parts are there.
pub fn split_model(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
        .filter(|(agent, model)| !agent.is_empty() && !model.is_empty())
}

/// How a model is shown in the picker: `Claude: sonnet`.
pub fn humanise(id: &str) -> String {
    match split_model(id) {
        Some((agent, model)) => {
            let mut chars = agent.chars();
            let agent: String = chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            format!("{agent}: {model}")
        }
        None => id.to_owned(),
    }
}

/// The model ids an agent's `session/new` result offers: the choices of its option of category
/// `model` (under `select.{options|values|choices}` or directly under those keys, grouped or
/// not; an id is a choice's `value` or `id`), else its `models.availableModels`.
pub fn offered_models(result: &Value) -> Vec<String> {
    if let Some(option) = model_option_of(result) {
        let mut ids = Vec::new();
        for_each_choice(option, &mut |id| ids.push(id.to_owned()));
        return ids;
    }
    result
        .pointer("/models/availableModels")
        .and_then(Value::as_array)
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.get("modelId").and_then(Value::as_str))
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The option of category `model` in a result's (or update's) `configOptions`.
pub fn model_option_of(holder: &Value) -> Option<&Value> {
    holder
        .get("configOptions")?
        .as_array()?
        .iter()
        .find(|option| is_model_option(option))
}

fn is_model_option(option: &Value) -> bool {
    option.get("category").and_then(Value::as_str) == Some("model")
}

/// Calls `visit` with the id of every choice of a select option.
fn for_each_choice(option: &Value, visit: &mut dyn FnMut(&str)) {
    for choices in choice_lists(option) {
        for choice in choices {
            // A group holds choices of its own.
            if let Some(grouped) = choice.get("options").and_then(Value::as_array) {
                for inner in grouped {
                    if let Some(id) = choice_id(inner) {
                        visit(id);
                    }
                }
            } else if let Some(id) = choice_id(choice) {
                visit(id);
            }
        }
    }
}

fn choice_lists(option: &Value) -> impl Iterator<Item = &Vec<Value>> {
    let select = option.get("select");
    CHOICE_KEYS.iter().filter_map(move |key| {
        select
            .and_then(|s| s.get(*key))
            .or_else(|| option.get(*key))
            .and_then(Value::as_array)
    })
}

/// A choice's model id; an empty one names no model.
fn choice_id(choice: &Value) -> Option<&str> {
    choice
        .get("value")
        .or_else(|| choice.get("id"))
        .and_then(Value::as_str)
        .or_else(|| choice.as_str())
        .filter(|id| !id.is_empty())
}

/// The proxy's model option over every agent's models, with `current` chosen.
pub fn model_option(models: &[String], current: &str) -> acp::SessionConfigOption {
    let choices: Vec<acp::SessionConfigSelectOption> = models
        .iter()
        .map(|id| acp::SessionConfigSelectOption::new(id.clone(), humanise(id)))
        .collect();
    acp::SessionConfigOption::select(MODEL_OPTION_ID, "Model", current.to_owned(), choices)
        .description("AI model to use")
        .category(acp::SessionConfigOptionCategory::Model)
}

/// The `models` block older ACP clients read (not in the schema, so built as JSON).
pub fn models_block(models: &[String], current: &str) -> Value {
    let available: Vec<Value> = models
        .iter()
        .map(|id| json!({ "modelId": id, "name": humanise(id) }))
        .collect();
    json!({ "availableModels": available, "currentModelId": current })
}

/// Rewrites a frame of `agent`'s server for the client: every session id becomes the proxy's
/// (one session per connection, so an update that comes before the agent's `session/new`
/// answer is placed too), every model id gets `agent:`.
pub fn to_client(frame: &mut Frame, agent: &str) {
    for key in ["result", "params"] {
        if let Some(Value::Object(holder)) = frame.get_mut(key) {
            rewrite_holder(holder, agent);
            if let Some(Value::Object(update)) = holder.get_mut("update") {
                rewrite_holder(update, agent);
            }
        }
    }
}

fn rewrite_holder(holder: &mut Map<String, Value>, agent: &str) {
    if holder.get("sessionId").is_some_and(Value::is_string) {
        holder.insert("sessionId".into(), Value::from(PROXY_SESSION_ID));
    }
    if let Some(Value::Array(options)) = holder.get_mut("configOptions") {
        for option in options.iter_mut().filter(|o| is_model_option(o)) {
            namespace_option(option, agent);
        }
    }
    if let Some(Value::Object(models)) = holder.get_mut("models") {
        namespace_field(models, "currentModelId", agent);
        if let Some(Value::Array(available)) = models.get_mut("availableModels") {
            for model in available.iter_mut().filter_map(Value::as_object_mut) {
                namespace_field(model, "modelId", agent);
            }
        }
    }
}

fn namespace_option(option: &mut Value, agent: &str) {
    let Some(option) = option.as_object_mut() else {
        return;
    };
    namespace_field(option, "currentValue", agent);
    if let Some(Value::Object(select)) = option.get_mut("select") {
        namespace_field(select, "currentValue", agent);
        namespace_choices(select, agent);
    }
    namespace_choices(option, agent);
}

fn namespace_choices(holder: &mut Map<String, Value>, agent: &str) {
    for key in CHOICE_KEYS {
        let Some(Value::Array(choices)) = holder.get_mut(key) else {
            continue;
        };
        for choice in choices.iter_mut() {
            // The same shapes `for_each_choice` reads: a group's choices are objects or bare
            // strings just like the top level's.
            if let Some(Value::Array(grouped)) = choice.get_mut("options") {
                for inner in grouped.iter_mut() {
                    namespace_choice(inner, agent);
                }
            } else {
                namespace_choice(choice, agent);
            }
        }
    }
}

fn namespace_choice(choice: &mut Value, agent: &str) {
    match choice {
        Value::Object(choice) => {
            namespace_field(choice, "value", agent);
            namespace_field(choice, "id", agent);
        }
        Value::String(id) if !id.is_empty() => *id = format!("{agent}:{id}"),
        _ => {}
    }
}

/// Prefixes the id under `key` with `agent:`. An empty id stays empty: it names no model,
/// and `agent:` alone would be an id the client could not name back.
fn namespace_field(holder: &mut Map<String, Value>, key: &str, agent: &str) {
    if let Some(Value::String(id)) = holder.get_mut(key)
        && !id.is_empty()
    {
        *id = format!("{agent}:{id}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: Value) -> Frame {
        match value {
            Value::Object(frame) => frame,
            _ => unreachable!(),
        }
    }

    /// Found by fuzzing: an agent offering a model with an empty id made the proxy offer
    /// `claude:`, which no client can select.
    #[test]
    fn an_empty_model_id_is_not_offered() {
        let mut answer = frame(json!({ "id": 3, "result": { "sessionId": "abc", "models": {
            "currentModelId": "", "availableModels": [{ "modelId": "" }, { "modelId": "opus" }] },
            "configOptions": [{ "id": "model", "category": "model", "type": "select",
              "currentValue": "", "options": ["", { "value": "" }, { "value": "haiku" }] }] } }));
        let result = answer["result"].clone();
        assert_eq!(offered_models(&result), ["haiku"]);
        to_client(&mut answer, "claude");
        assert_eq!(answer["result"]["models"]["currentModelId"], "");
        assert_eq!(
            answer["result"]["models"]["availableModels"][0]["modelId"],
            ""
        );
        assert_eq!(offered_models(&answer["result"]), ["claude:haiku"]);
        let mut models_only = answer["result"].clone();
        models_only.as_object_mut().unwrap().remove("configOptions");
        assert_eq!(offered_models(&models_only), ["claude:opus"]);
        for id in offered_models(&answer["result"]) {
            assert_eq!(split_model(&id).map(|(agent, _)| agent), Some("claude"));
        }
    }

    /// Found by fuzzing: a bare string among a group's choices was offered to the client as
    /// it was — `,` instead of `claude:,` — because only the groups' object choices were
    /// namespaced, while every shape the offer reads was offered.
    #[test]
    fn a_groups_bare_string_choice_is_namespaced_too() {
        let mut answer = frame(json!({ "id": 5, "result": { "configOptions": [{
            "id": "model", "category": "model", "currentValue": "a",
            "options": [{ "group": "g", "name": "G",
                          "options": [{ "value": "a" }, ",", { "value": "b" }] }] }] } }));
        assert_eq!(offered_models(&answer["result"]), ["a", ",", "b"]);
        to_client(&mut answer, "claude");
        let offered = offered_models(&answer["result"]);
        assert_eq!(offered, ["claude:a", "claude:,", "claude:b"]);
        for id in offered {
            assert_eq!(split_model(&id).map(|(agent, _)| agent), Some("claude"));
        }
    }

    #[test]
    fn model_ids_come_from_a_select_options_list() {
        // The shape of today's adapters (Claude's, Codex's, OpenCode's).
        let result = json!({ "sessionId": "s", "configOptions": [
            { "id": "mode", "category": "mode", "type": "select", "currentValue": "auto",
              "options": [{ "value": "auto", "name": "Auto" }] },
            { "id": "model", "category": "model", "type": "select", "currentValue": "default",
              "options": [{ "value": "default", "name": "Default" }, { "value": "sonnet", "name": "Sonnet" }] }
        ]});
        assert_eq!(offered_models(&result), ["default", "sonnet"]);
    }

    #[test]
    fn model_ids_come_from_a_nested_select_and_from_groups() {
        let nested = json!({ "configOptions": [
            { "id": "m", "category": "model", "select": { "values": [{ "id": "a" }, { "id": "b" }] } }
        ]});
        assert_eq!(offered_models(&nested), ["a", "b"]);
        let grouped = json!({ "configOptions": [
            { "id": "m", "category": "model", "options": [
                { "group": "fast", "name": "Fast", "options": [{ "value": "haiku", "name": "Haiku" }] },
                { "group": "big", "name": "Big", "options": [{ "value": "opus", "name": "Opus" }] }
            ] }
        ]});
        assert_eq!(offered_models(&grouped), ["haiku", "opus"]);
        let choices = json!({ "configOptions": [{ "category": "model", "choices": ["x", "y"] }] });
        assert_eq!(offered_models(&choices), ["x", "y"]);
    }

    #[test]
    fn an_unknown_shape_offers_nothing_and_other_categories_are_ignored() {
        assert!(offered_models(&json!({ "sessionId": "s" })).is_empty());
        assert!(offered_models(&json!({ "configOptions": "nope" })).is_empty());
        let thinking = json!({ "configOptions": [
            { "id": "effort", "category": "thought_level", "options": [{ "value": "high" }] }
        ]});
        assert!(offered_models(&thinking).is_empty());
    }

    #[test]
    fn an_old_models_block_is_read_when_there_is_no_model_option() {
        let result = json!({ "models": { "currentModelId": "default",
            "availableModels": [{ "modelId": "default" }, { "modelId": "sonnet[1m]" }] } });
        assert_eq!(offered_models(&result), ["default", "sonnet[1m]"]);
    }

    #[test]
    fn agent_and_model_split_at_the_first_colon() {
        assert_eq!(split_model("claude:sonnet"), Some(("claude", "sonnet")));
        assert_eq!(
            split_model("openrouter:meta/llama:free"),
            Some(("openrouter", "meta/llama:free"))
        );
        assert_eq!(split_model("sonnet"), None);
        assert_eq!(split_model(":sonnet"), None);
        assert_eq!(split_model("claude:"), None);
    }

    #[test]
    fn the_picker_shows_the_agent_capitalised() {
        assert_eq!(humanise("claude:sonnet"), "Claude: sonnet");
        assert_eq!(humanise("openrouter:x:free"), "Openrouter: x:free");
        assert_eq!(humanise("plain"), "plain");
    }

    #[test]
    fn the_model_option_lists_every_agent_model() {
        let models = vec!["claude:default".to_owned(), "codex:gpt-5.5".to_owned()];
        let option = serde_json::to_value(model_option(&models, "codex:gpt-5.5")).unwrap();
        assert_eq!(
            option,
            json!({ "id": "model", "name": "Model", "description": "AI model to use",
                    "category": "model", "type": "select", "currentValue": "codex:gpt-5.5",
                    "options": [{ "value": "claude:default", "name": "Claude: default" },
                                { "value": "codex:gpt-5.5", "name": "Codex: gpt-5.5" }] })
        );
        assert_eq!(
            models_block(&models, "claude:default"),
            json!({ "availableModels": [{ "modelId": "claude:default", "name": "Claude: default" },
                                        { "modelId": "codex:gpt-5.5", "name": "Codex: gpt-5.5" }],
                    "currentModelId": "claude:default" })
        );
    }

    #[test]
    fn an_agents_frames_get_the_proxy_session_and_namespaced_models() {
        let mut update = frame(
            json!({ "jsonrpc": "2.0", "method": "session/update", "params": {
            "sessionId": "0b1c-uuid", "update": { "sessionUpdate": "config_option_update",
            "configOptions": [
                { "id": "model", "category": "model", "currentValue": "sonnet",
                  "options": [{ "value": "sonnet", "name": "Sonnet" }, { "value": "x:free" }] },
                { "id": "mode", "category": "mode", "currentValue": "auto" }
            ] } } }),
        );
        to_client(&mut update, "claude");
        let params = &update["params"];
        assert_eq!(params["sessionId"], "proxy-1");
        let options = &params["update"]["configOptions"];
        assert_eq!(options[0]["currentValue"], "claude:sonnet");
        assert_eq!(options[0]["options"][0]["value"], "claude:sonnet");
        // Namespaced by position: a colon of the model's own does not stop it.
        assert_eq!(options[0]["options"][1]["value"], "claude:x:free");
        assert_eq!(options[1]["currentValue"], "auto");

        let mut response = frame(json!({ "id": 3, "result": { "sessionId": "abc",
            "models": { "currentModelId": "default",
                        "availableModels": [{ "modelId": "default" }, { "modelId": "opus" }] } } }));
        to_client(&mut response, "claude");
        assert_eq!(response["result"]["sessionId"], "proxy-1");
        assert_eq!(
            response["result"]["models"]["currentModelId"],
            "claude:default"
        );
        assert_eq!(
            response["result"]["models"]["availableModels"][1]["modelId"],
            "claude:opus"
        );
    }
}
