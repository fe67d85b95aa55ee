//! Vendor credential files: what each extractor reads, how a changed format is reported (field
//! named, value never shown), and the phantom files containers get.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use base64::Engine as _;
use terok_credentials::Credential;
use terok_credentials::vendor::{
    VendorError, extract, is_phantom_content, phantom_file, synthetic_jwt,
};

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn claude_oauth_then_api_key_fallback() {
    let d = dir_with(&[(
        ".credentials.json",
        r#"{"claudeAiOauth":{"accessToken":"at","refreshToken":"","expiresAt":"soon","scopes":["user:inference"],"rateLimitTier":"t"}}"#,
    )]);
    match extract("claude", d.path()).unwrap() {
        Credential::Oauth {
            access_token,
            refresh_token,
            expires_at,
            rate_limit_tier,
            ..
        } => {
            assert_eq!(access_token.expose(), "at");
            assert!(refresh_token.is_none(), "empty refresh token is none");
            assert_eq!(expires_at, None, "a non-numeric expiry is dropped");
            assert_eq!(rate_limit_tier.as_deref(), Some("t"));
        }
        other => panic!("{other:?}"),
    }
    let d = dir_with(&[("config.json", r#"{"api_key":"sk-ant-key"}"#)]);
    assert_eq!(
        extract("claude", d.path()).unwrap(),
        Credential::api_key("sk-ant-key")
    );
    let d = dir_with(&[]);
    assert!(matches!(
        extract("claude", d.path()),
        Err(VendorError::NotFound { .. })
    ));
}

#[test]
fn a_changed_field_type_names_the_field_and_hides_the_value() {
    let d = dir_with(&[(
        ".credentials.json",
        r#"{"claudeAiOauth":{"accessToken":{"value":"sk-ant-secret"}}}"#,
    )]);
    let err = extract("claude", d.path()).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("field `claudeAiOauth.accessToken` should be a string"),
        "{shown}"
    );
    assert!(!shown.contains("sk-ant-secret"));
    let d = dir_with(&[("auth.json", r#"{"tokens": ["not", "a", "map"]}"#)]);
    assert!(
        extract("codex", d.path())
            .unwrap_err()
            .to_string()
            .contains("field `tokens` should be a mapping")
    );
    let d = dir_with(&[("hosts.yml", "- a list\n- not hosts\n")]);
    assert!(matches!(
        extract("gh", d.path()),
        Err(VendorError::FieldType { .. })
    ));
}

#[test]
fn codex_vibe_gh_glab_and_opencode_providers() {
    let d = dir_with(&[(
        "auth.json",
        r#"{"OPENAI_API_KEY":null,"tokens":{"access_token":"a","refresh_token":"r","id_token":"i","account_id":"acc"},"extra":1}"#,
    )]);
    match extract("codex", d.path()).unwrap() {
        Credential::Oauth {
            account_id,
            id_token,
            ..
        } => {
            assert_eq!(account_id.as_deref(), Some("acc"));
            assert_eq!(id_token.unwrap().expose(), "i");
        }
        other => panic!("{other:?}"),
    }
    let d = dir_with(&[(".env", "# comment\n\nexport MISTRAL_API_KEY=\"mk\"\n")]);
    assert_eq!(
        extract("vibe", d.path()).unwrap(),
        Credential::api_key("mk")
    );
    let d = dir_with(&[(
        "hosts.yml",
        "ghe.example.com:\n  oauth_token: other\ngithub.com:\n  oauth_token: gho_x\n  user: me\n",
    )]);
    match extract("gh", d.path()).unwrap() {
        Credential::OauthToken { token, host } => {
            assert_eq!(
                (token.expose(), host.as_deref()),
                ("gho_x", Some("github.com")),
                "github.com first"
            );
        }
        other => panic!("{other:?}"),
    }
    let d = dir_with(&[("config.yml", "hosts:\n  gitlab.com:\n    token: glpat-x\n")]);
    assert!(matches!(
        extract("glab", d.path()).unwrap(),
        Credential::Pat { .. }
    ));
    let d = dir_with(&[("config.json", r#"{"api_key":"bk"}"#)]);
    assert_eq!(
        extract("blablador", d.path()).unwrap(),
        Credential::api_key("bk")
    );
    assert_eq!(
        extract("kisski", d.path()).unwrap(),
        Credential::api_key("bk")
    );
}

#[test]
fn phantom_files_carry_the_task_token_and_no_secret() {
    let token = "terok-p-0123456789abcdef0123456789abcdef";
    let real = Credential::Oauth {
        access_token: terok_credentials::Secret::new("sk-ant-oat01-REAL"),
        refresh_token: Some(terok_credentials::Secret::new("sk-ant-ort01-REAL")),
        expires_at: Some(1.0),
        scopes: None,
        subscription_type: Some("max".into()),
        rate_limit_tier: None,
        id_token: None,
        account_id: None,
    };
    let claude =
        String::from_utf8(phantom_file("claude", ".credentials.json", Some(&real), token).unwrap())
            .unwrap();
    assert!(
        claude.contains(token) && !claude.contains("REAL"),
        "{claude}"
    );
    assert!(claude.contains("\"subscriptionType\": \"max\""));
    assert!(is_phantom_content(claude.as_bytes()));
    let codex =
        String::from_utf8(phantom_file("codex", "auth.json", None, token).unwrap()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&codex).unwrap();
    assert_eq!(doc["tokens"]["access_token"], token);
    assert_eq!(doc["OPENAI_API_KEY"], serde_json::Value::Null);
    for (provider, file) in [
        ("vibe", ".env"),
        ("gh", "hosts.yml"),
        ("glab", "config.yml"),
        ("kisski", "config.json"),
    ] {
        let bytes = phantom_file(provider, file, None, token).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes).contains(token),
            "{provider}"
        );
        assert!(is_phantom_content(&bytes), "{provider}");
    }
    assert!(!is_phantom_content(
        br#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-REAL"}}"#
    ));
}

#[test]
fn the_synthetic_jwt_is_unsigned_and_far_future() {
    let jwt = synthetic_jwt(Some("acct-1"));
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], "terok");
    let decode = |p: &str| -> serde_json::Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(parts[0])["alg"], "none");
    let payload = decode(parts[1]);
    assert_eq!(payload["exp"], 253402300799_i64);
    assert_eq!(
        payload["https://api.openai.com/auth"]["chatgpt_account_id"],
        "acct-1"
    );
}
