//! End to end through the ACP proxy with the real Claude ACP adapter (from npm, in an L1 image
//! on Debian sid: it needs Node.js 22) in a running task, against the scripted model through
//! the vault: an editor-like client (the agent-client-protocol crate's client side) sees
//! `claude:<model>` among the models, prompts "fix the failing test", follows the Read and the
//! Edit as session updates and ends with `end_turn`; the file on the host is fixed and the
//! model saw only the real key. Once over `acp TASK`'s socket, once through `acp --stdio TASK`
//! (which starts the proxy in the background), and once killed mid-prompt, which must leave
//! no `podman exec` of its session on the host and nothing of it in the container. The
//! proxy's one warm server (started ahead of the next session) is all that stays, until the
//! proxy stops.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use agent_client_protocol::v1::schema::ToolKind;
use common::acp_client::{Updates, prompt_once};
use common::acp_e2e::{
    PROMPT, PROMPT_LIMIT, TEARDOWN_LIMIT, assert_fixed, first_started, gone, marks_on_the_host,
    nothing_left, only_the_warm_server_left, runtime, start_bridge, start_proxy, stop_proxy,
    tool_kinds, wait_until,
};
use common::e2e::{Run, Scenario};
use terok_testkit::demo::demo_agent;
use terok_testkit::podman::require_podman;

const CONFIG: &str = "image:\n  base_image: localhost/debian:sid\n  agents: claude\n";

#[test]
fn an_editor_drives_claude_in_a_task_through_the_acp_proxy() {
    if !require_podman("an_editor_drives_claude_in_a_task_through_the_acp_proxy") {
        return;
    }
    let scenario = Scenario {
        demo: demo_agent("claude").unwrap(),
        real_key: "sk-ant-api03-REAL-acp-e2e-key-that-stays-home-77b3",
        config: CONFIG,
        suite: "sid",
        image_lock: "acp-e2e-images",
        turns: 3,
    };
    let mut run = Run::new(&scenario, |_| {});
    run.prepare_host();
    assert!(
        !run.sample_test_passes().status.success(),
        "the sample must start broken"
    );
    let container = run.launch_interactive();
    let logs = run.env.root().join("acp-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rt = runtime();

    // 1. An editor connected to the socket of `acp TASK`.
    let (mut proxy, socket) = start_proxy(&run, &container, &logs.join("proxy.log"));
    let updates = Updates::default();
    let transcript = rt
        .block_on(async {
            let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
            let (reader, writer) = stream.into_split();
            tokio::time::timeout(
                PROMPT_LIMIT,
                prompt_once(reader, writer, "claude:", PROMPT, updates.clone()),
            )
            .await
        })
        .expect("the prompt ends in time")
        .unwrap_or_else(|err| {
            panic!(
                "{err:?}\nproxy: {}\nunanswered: {:?}\nlast request: {}",
                std::fs::read_to_string(logs.join("proxy.log")).unwrap_or_default(),
                run.model.unanswered(),
                run.last_request_tail()
            )
        });
    assert_fixed(
        &run,
        &transcript,
        &updates,
        3,
        &[ToolKind::Read, ToolKind::Edit],
    );
    wait_until("the session's agent outlived its client", || {
        only_the_warm_server_left(&container)
    });
    // SIGTERM: the proxy stops cleanly, ends its warm server and removes its socket.
    stop_proxy(&mut proxy);
    assert!(!socket.exists(), "the socket stays after the proxy stopped");
    wait_until("the warm server outlived the proxy", || {
        nothing_left(&container)
    });

    // 2. An editor that starts `acp --stdio TASK` (the proxy now starts in the background).
    run.reset_project();
    let updates = Updates::default();
    let transcript = rt.block_on(async {
        let mut bridge = start_bridge(&run, &container, &logs.join("stdio.log"));
        let (stdin, stdout) = (bridge.stdin.take().unwrap(), bridge.stdout.take().unwrap());
        let transcript = tokio::time::timeout(
            PROMPT_LIMIT,
            prompt_once(stdout, stdin, "claude:", PROMPT, updates.clone()),
        )
        .await
        .expect("the prompt ends in time");
        // The client closed its side: the bridge ends.
        let status = tokio::time::timeout(TEARDOWN_LIMIT, bridge.wait()).await;
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "{status:?}");
        transcript
    });
    let transcript = transcript.unwrap_or_else(|err| {
        panic!(
            "{err:?}\nstdio: {}",
            std::fs::read_to_string(logs.join("stdio.log")).unwrap_or_default()
        )
    });
    assert_fixed(
        &run,
        &transcript,
        &updates,
        6,
        &[ToolKind::Read, ToolKind::Edit],
    );
    assert!(
        socket.exists(),
        "the background proxy serves the default socket"
    );

    // 3. The editor is killed mid-prompt: nothing of the session may be left.
    run.reset_project();
    let updates = Updates::default();
    let at_kill = rt.block_on(async {
        let mut bridge = start_bridge(&run, &container, &logs.join("killed.log"));
        let (stdin, stdout) = (bridge.stdin.take().unwrap(), bridge.stdout.take().unwrap());
        let prompting = tokio::spawn(prompt_once(
            stdout,
            stdin,
            "claude:",
            PROMPT,
            updates.clone(),
        ));
        let deadline = Instant::now() + PROMPT_LIMIT;
        while !tool_kinds(&updates).contains(&ToolKind::Read) {
            assert!(Instant::now() < deadline, "no tool call before the kill");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let at_kill = marks_on_the_host(&container);
        bridge.start_kill().unwrap();
        let _ = bridge.wait().await;
        prompting.abort();
        at_kill
    });
    // The session's server and the warm one started when the session took its predecessor.
    assert_eq!(at_kill.len(), 2, "{at_kill:?}");
    let session = first_started(&at_kill).unwrap();
    wait_until("a killed client left its agent running", || {
        gone(&container, &session)
    });
    wait_until("a killed client left more than the warm server", || {
        only_the_warm_server_left(&container)
    });

    // The task stops: so does its background proxy.
    run.must(&["stop", &container]);
    wait_until("the proxy outlived its task", || {
        socket.exists().then(|| socket.display().to_string())
    });
}
