//! What users see from the `terok-executor` binary: version, help, `show-config`, and the
//! errors for a bad config file, as inline snapshots.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use insta::assert_snapshot;
use terok_testkit::IsolatedEnv;
use terok_testkit::cli::{CliRun as Run, run_cli};

const BIN: &str = env!("CARGO_BIN_EXE_terok-executor");

fn run_in(env: &IsolatedEnv, args: &[&str]) -> Run {
    run_cli(env, BIN, args)
}

fn run(args: &[&str]) -> Run {
    run_in(&IsolatedEnv::new().unwrap(), args)
}

#[test]
fn version_names_the_binary() {
    let r = run(&["--version"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @"terok-executor 0.1.0");
}

#[test]
fn help_lists_verbs_and_global_options() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @r"
    Run AI coding agents (Claude Code, Codex, Vibe, Copilot, OpenCode, Pi) in hardened Podman
    containers.

    Containers only ever see phantom tokens; the host-side vault swaps them for the real credential on
    the way out.

    Usage: terok-executor [OPTIONS] [COMMAND]

    Commands:
      run          Run an agent in a new container on a directory or a git URL
      run-tool     Run a sidecar tool (e.g. coderabbit) once on a directory or a git URL, with its real
                   credential, in a container of its own
      list         List tasks: containers terok started (and task directories whose container is gone)
      start        Start a stopped task again (with fresh phantom tokens)
      stop         Stop a running task; it stays for a later `start` (its tokens are revoked)
      rm           Remove tasks: container, task directory and tokens
      agents       List, inspect and select the agents of the roster
      auth         Store a credential for an agent: an API key, or an OAuth login in an auth container
      build        Build the container images (L0 base layer, L1 agent layer; reused when current)
      setup        Prepare this host: vault routes, the vault daemon, the container images (idempotent)
      uninstall    Remove what setup and build created: every image terok built
      show-config  Print the effective configuration: every config.yml layer merged, defaults filled in
      doctor       Check this host and its tasks: podman, the vault, its routes, refused credentials
      storage      Show how much disk terok uses: each task, each shared config directory, each image
      vault        The token broker that keeps real credentials on the host
      shield       The egress firewall of a task: status, live allow and deny
      gate         The git gate: review what agents pushed to the host's mirrors, promote it, sync
      ssh          SSH keys the vault holds for tasks: git and ssh in a task sign with them through its
                   SSH signer; the private keys never enter a container
      acp          Serve a running task's agents to an editor (Zed, Toad) over ACP, the Agent Client
                   Protocol

    Options:
          --config <PATH>
              Read only this config file instead of the layered /etc/terok and ~/.config/terok files

          --raw
              Ignore every config.yml (built-in defaults only)

      -v, --verbose...
              Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's output

          --connection <NAME>
              Use this podman system connection (a remote engine) instead of the local one;
              `CONTAINER_HOST` in the environment works too

      -h, --help
              Print help (see a summary with '-h')

      -V, --version
              Print version
    ");
}

#[test]
fn no_verb_prints_help_and_fails() {
    let r = run(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("Usage: terok-executor [OPTIONS] [COMMAND]"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_unknown_verb_is_a_usage_error() {
    let r = run(&["frobnicate"]);
    assert_eq!(r.code, 2);
    assert_snapshot!(r.stderr, @"
    error: unrecognized subcommand 'frobnicate'

    Usage: terok-executor [OPTIONS] [COMMAND]

    For more information, try '--help'.
    ");
}

#[test]
fn show_config_help() {
    let r = run(&["show-config", "--help"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @"
    Print the effective configuration: every config.yml layer merged, defaults filled in

    Usage: terok-executor show-config [OPTIONS]

    Options:
          --config <PATH>      Read only this config file instead of the layered /etc/terok and
                               ~/.config/terok files
          --json               Print JSON instead of YAML
          --raw                Ignore every config.yml (built-in defaults only)
      -v, --verbose...         Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's
                               output
          --connection <NAME>  Use this podman system connection (a remote engine) instead of the local
                               one; `CONTAINER_HOST` in the environment works too
      -h, --help               Print help
    ");
}

#[test]
fn show_config_merges_the_system_and_user_layers() {
    let env = IsolatedEnv::new().unwrap();
    std::fs::write(
        env.system_config_dir().join("config.yml"),
        "image:\n  base_image: fedora:44\n  agents: all\nservices: {mode: tcp}\n",
    )
    .unwrap();
    env.write_user_config("# mine\nimage:\n  agents: claude,codex\ntui:\n  theme: dark\n")
        .unwrap();
    let r = run_in(&env, &["show-config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_snapshot!(r.stdout, @"
    # Effective configuration (defaults filled in), merged from:
    #   [TMP]/etc-terok/config.yml
    #   [TMP]/home/.config/terok/config.yml
    credentials: {}
    paths: {}
    shield:
      bypass_firewall_no_protection: false
      profiles: []
    services:
      mode: tcp
    vault: {}
    gate_server: {}
    network:
      port_range_start: 18700
      port_range_end: 32700
    ssh:
      use_personal: false
    image:
      base_image: fedora:44
      agents: claude,codex
    container:
      runtime: podman
    tui:
      theme: dark
    ");
}

#[test]
fn show_config_json_is_machine_readable() {
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config("image: {family: rpm}\n").unwrap();
    let r = run_in(&env, &["show-config", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let value: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(value["image"]["family"], "rpm");
    assert_eq!(value["image"]["base_image"], "ubuntu:24.04");
}

#[test]
fn raw_ignores_every_config_file() {
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config("image: {family: rpm}\n").unwrap();
    let r = run_in(&env, &["--raw", "show-config", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let value: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(value["image"].get("family").is_none(), "{}", r.stdout);
}

#[test]
fn config_flag_reads_only_that_file() {
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config("image: {family: rpm}\n").unwrap();
    let only = env
        .write_work_file(
            "only.yml",
            "image: {base_image: 'localhost/debian:bookworm'}\n",
        )
        .unwrap();
    let r = run_in(&env, &["show-config", "--config", only.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("#   [TMP]/work/only.yml\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("base_image: localhost/debian:bookworm"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("rpm"), "{}", r.stdout);
}

#[test]
fn a_misspelt_key_reports_file_line_column_and_allowed_keys() {
    let env = IsolatedEnv::new().unwrap();
    let bad = env
        .write_work_file(
            "bad.yml",
            "# my config\nimage:\n  base_image: localhost/debian:bookworm\n  familly: deb\n",
        )
        .unwrap();
    let r = run_in(&env, &["--config", bad.to_str().unwrap(), "show-config"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_snapshot!(r.stderr, @"
     x [TMP]/work/bad.yml:4:3: image.familly: unknown field `familly`, expected one of base_image, family, agents, user_snippet_inline, user_snippet_file, ca_certificates
      ,-[[TMP]/work/bad.yml:4:3]
    3 |   base_image: localhost/debian:bookworm
    4 |   familly: deb
      :   ^^^|^^^
      :      `-- unknown field `familly`
      `----
     help: did you mean `family`? Allowed keys here: base_image, family, agents, user_snippet_inline, user_snippet_file, ca_certificates
    ");
}

#[test]
fn a_wrong_type_reports_what_was_expected() {
    let env = IsolatedEnv::new().unwrap();
    let bad = env
        .write_work_file("bad.yml", "network:\n  port_range_start: lots\n")
        .unwrap();
    let r = run_in(&env, &["--config", bad.to_str().unwrap(), "show-config"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
     x [TMP]/work/bad.yml:2:21: network.port_range_start: expected an integer from 0 to 65535, found `lots`
      ,-[[TMP]/work/bad.yml:2:21]
    1 | network:
    2 |   port_range_start: lots
      :                     ^^|^
      :                       `-- expected an integer from 0 to 65535
      `----
    ");
}

#[test]
fn a_bad_enum_value_lists_the_choices() {
    let env = IsolatedEnv::new().unwrap();
    env.write_user_config("services:\n  mode: pigeon\n")
        .unwrap();
    let r = run_in(&env, &["show-config"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
     x [TMP]/home/.config/terok/config.yml:2:9: services.mode: unknown variant `pigeon`, expected one of socket, tcp
      ,-[[TMP]/home/.config/terok/config.yml:2:9]
    1 | services:
    2 |   mode: pigeon
      :         ^^^|^^
      :            `-- unknown variant `pigeon`
      `----
     help: allowed values here: socket, tcp
    ");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let r = run(&["--config", "/nonexistent/terok.yml", "show-config"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    terok::config::missing

      x config file /nonexistent/terok.yml does not exist (named by --config)
      help: create /nonexistent/terok.yml, fix the path, or use --raw to run without any config
    ");
}

#[test]
fn the_command_tree_mounts_under_another_cli() {
    let outer =
        clap::Command::new("terok").subcommand(terok_executor_cli::command().name("executor"));
    let matches = outer
        .try_get_matches_from(["terok", "executor", "--raw", "show-config", "--json"])
        .unwrap();
    let (name, sub) = matches.subcommand().unwrap();
    assert_eq!(name, "executor");
    assert_eq!(
        terok_executor_cli::run_matches(sub),
        terok_executor_cli::Status::Ok
    );
}

#[test]
fn build_help_lists_the_python_flags() {
    let r = run(&["build", "--help"]);
    assert_eq!(r.code, 0);
    for flag in [
        "--base",
        "--family",
        "--agents",
        "--rebuild",
        "--full-rebuild",
        "--sidecar",
    ] {
        assert!(
            r.stdout.contains(flag),
            "{flag} missing from:\n{}",
            r.stdout
        );
    }
}

#[test]
fn build_rejects_an_unknown_agent_before_touching_podman() {
    let r = run(&["build", "--agents", "claude,nosuch"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x unknown agent in selection `claude,nosuch`: `nosuch`
    help: available: blablador, caddy, claude, codex, copilot, gh, glab, kisski, opencode, openrouter, pi, sonar, toad, vibe
    ");
}

#[test]
fn an_unknown_base_image_says_how_to_set_the_family() {
    let env = IsolatedEnv::new().unwrap();
    // --connection to a name podman does not know keeps this test from touching the local engine.
    let r = run_in(
        &env,
        &[
            "build",
            "--base",
            "alpine:3.20",
            "--agents",
            "claude",
            "--connection",
            "terok-test-none",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot infer the package family of base image `alpine:3.20`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("set `family: deb` or `family: rpm` under `image:`"),
        "{}",
        r.stderr
    );
}

#[test]
fn run_help_lists_the_python_flags() {
    let r = run(&["run", "--help"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @r"
    Run an agent in a new container on a directory or a git URL

    Usage: terok-executor run [OPTIONS] <AGENT> [REPO]

    Arguments:
      <AGENT>
              The agent (see `terok-executor agents`)

      [REPO]
              A directory (mounted at /workspace) or a git URL (cloned inside the container)
              
              [default: .]

    Options:
          --config <PATH>
              Read only this config file instead of the layered /etc/terok and ~/.config/terok files

      -p, --prompt <PROMPT>
              Run headless on this prompt and stream the agent's output

          --interactive
              Start a container to log into (`podman exec -it NAME bash -l`) instead

          --raw
              Ignore every config.yml (built-in defaults only)

      -v, --verbose...
              Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's output

          --web
              Serve Toad in the browser instead: every agent of the image through its ACP server; the
              link (with the task's access token) is printed once the UI answers

          --connection <NAME>
              Use this podman system connection (a remote engine) instead of the local one;
              `CONTAINER_HOST` in the environment works too

          --port <PORT>
              Port on 127.0.0.1 for --web (default: a free one)

          --public-url <URL>
              The address the browser uses for --web, when a proxy or tunnel is in front of the port

      -m, --model <MODEL>
              Model, for agents that can choose one

          --max-turns <N>
              Turn limit (agents without a flag for it are asked in the prompt)

          --timeout <SECONDS>
              Seconds before the agent is stopped (exit status 124); enforced on the host too
              
              [default: 1800]

          --name <NAME>
              Container name (default terok-executor-<task id>)

          --branch <BRANCH>
              Branch to clone or create (git URLs)

          --workspace <DIR>
              Host directory a git URL is cloned into (default: inside the task directory)

          --rm
              Remove the container, its task directory and its tokens when the run ends

          --restricted
              No auto-approve and no sudo inside (no-new-privileges)

          --gpus <SPEC>
              GPUs through CDI: all, nvidia, amd, intel, or vendor:index lists (amd:1,intel)

          --memory <SIZE>
              Memory limit, e.g. 4g

          --cpus <N>
              CPU limit, e.g. 2.0

          --git-identity-from-host
              Commit as the agent with your `git config --global` identity as the human

          --shared-dir <PATH>
              A host directory to share with the task

          --shared-mount <PATH>
              Where --shared-dir is mounted
              
              [default: /shared]

          --timezone <IANA>
              Time zone of the container (default: the host's)

          --base <IMAGE>
              Base image of L0 (default: image.base_image in config.yml, else ubuntu:24.04)

          --family <FAMILY>
              Package family of the base image, when its name does not say

              Possible values:
              - deb: Debian, Ubuntu and derivatives
              - rpm: Fedora, RHEL, UBI and derivatives

      -y, --yes
              Answer yes to preflight questions (build missing images)

          --no-preflight
              Skip the setup-stamp gate and the preflight checks (missing images are still built)

          --output <FORMAT>
              How to print Claude's stream-json: `text` renders readable lines, `raw` passes every line
              through; `auto` renders on a terminal only

              Possible values:
              - auto: Text on a terminal, raw otherwise
              - text: Readable lines
              - raw:  Every line as the agent printed it
              
              [default: auto]

          --credential <PROVIDER>
              Also give the task a phantom token for PROVIDER (e.g. `gh` for a task that opens pull
              requests); repeatable. Only the agent's own provider gets one otherwise

          --no-fail-fast
              Keep waiting for the agent when the model API refuses the stored credential (by default
              the run stops after three refusals in a row, exit status 77)

          --shield <MODE>
              What the container may reach (default: `allowlist`, or `open` when config.yml sets
              `shield.bypass_firewall_no_protection`)

              Possible values:
              - offline:   No network but loopback; the agent reaches its model API through the vault's
                socket
              - allowlist: Only the destinations of the shield profiles; private and metadata addresses
                refused
              - open:      Unfiltered egress (a loud warning at every launch)

          --network <NAME>
              The podman network the container joins (default: podman's own; not with `--shield
              offline`)

          --gate
              Put the repository behind the git gate: the default for a git URL; for a directory, the
              container gets a clone through the gate instead of the directory itself

          --no-gate
              Clone a git URL directly from its remote, without the gate (the shield permitting)

          --gate-mode <MODE>
              What the container's `origin` is with the gate: `gatekeeping` (the gate; pushes wait for
              `gate promote`) or `online` (the real remote; the gate only seeds the clone)

              Possible values:
              - gatekeeping: `origin` is the gate: pushes land in the host's mirror for review
              - online:      `origin` is the real remote; the gate only seeds the clone
              
              [default: gatekeeping]

          --runtime <RUNTIME>
              What the task runs in: `podman` (a container) or `krun` (a KVM microVM, reached over SSH;
              headless and interactive only). Default: config.yml's `container.runtime`, else podman

              Possible values:
              - podman: A container, with podman's configured OCI runtime
              - krun:   A KVM microVM with podman's krun runtime (needs libkrun and /dev/kvm)

          --emit <FORMAT>
              Write the task instead of running it: `kube` prints a ConfigMap, a NetworkPolicy and a Pod
              (the agent with its vault as a sidecar) for `kubectl apply` or `podman kube play`;
              headless runs of a git URL only. Needs --kube-secret

              Possible values:
              - kube: Kubernetes objects (YAML)

          --kube-secret <FILE>
              Where `--emit kube` writes the Secret with the real credentials the Pod's vault serves: a
              new file, readable by you only (an existing file is refused)

      -h, --help
              Print help (see a summary with '-h')

    Exit status: the agent's own (124 when --timeout fired, 130 on Ctrl-C, 77 when the model API kept
    refusing the stored credential), 1 when the launch failed, 3 when setup is needed, 4 when setup last
    ran with a newer version.
    ");
}

#[test]
fn run_needs_a_prompt_or_interactive() {
    let r = run(&["run", "claude", "."]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @r#"
    x Specify --prompt for headless mode, --interactive for a container to log into, or --web for Toad in the browser.
    help: e.g. terok-executor run claude . -p "fix the failing test"
    "#);
    let r = run(&["run", "claude", ".", "-p", "x", "--interactive"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn run_rejects_unknown_agents_and_missing_paths_before_touching_podman() {
    let r = run(&["run", "nosuch", ".", "-p", "x"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"  x unknown agent `nosuch`. Available: blablador, claude, codex, copilot, kisski, opencode, openrouter, pi, vibe");
    // --connection to a name podman does not know keeps this test from touching the engine.
    let r = run(&[
        "run",
        "claude",
        "./no/such/dir",
        "-p",
        "x",
        "--no-preflight",
        "--connection",
        "terok-test-none",
    ]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x Local path not found: ./no/such/dir
    help: give an existing directory, or a git URL such as https://host/org/repo.git
    ");
}

/// `run claude ~` would hand the agent terok's config and state (the vault among them).
#[test]
fn a_workspace_holding_teroks_own_files_is_refused() {
    let env = IsolatedEnv::new().unwrap();
    let r = run_in(
        &env,
        &[
            "run",
            "claude",
            "~",
            "-p",
            "x",
            "--no-preflight",
            "--connection",
            "terok-test-none",
        ],
    );
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x the workspace [TMP]/home overlaps terok's config directory ([TMP]/home/.config/terok): the agent could read or change it
    help: run on the project's own directory, one that holds none of terok's files
    ");
    assert!(
        !env.state_root().join("executor/tasks").exists(),
        "nothing written"
    );
}

/// A launch through the gate that cannot work fails before preflight prepares anything.
#[test]
fn a_gate_that_cannot_work_is_refused_before_anything_is_prepared() {
    let env = IsolatedEnv::new().unwrap();
    env.write_work_file("plain/README.md", "# not a repository\n")
        .unwrap();
    let plain = env.work_dir().join("plain");
    let plain = plain.to_str().unwrap();
    let r = run_in(
        &env,
        &["run", "claude", plain, "--gate", "-p", "x", "--yes"],
    );
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x [TMP]/work/plain is not a git repository, so the gate has nothing to mirror
    help: `git -C [TMP]/work/plain init` and commit first, or run without --gate (the directory is then the workspace)
    ");
    let r = run_in(
        &env,
        &[
            "run",
            "claude",
            plain,
            "--gate",
            "--gate-mode",
            "online",
            "-p",
            "x",
            "--yes",
        ],
    );
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x [TMP]/work/plain is a directory: the gate's online mode needs a git URL (a directory is gated in gatekeeping mode)
    help: drop --gate-mode online (a directory is gated in gatekeeping mode), or give the repository's URL
    ");
    // Nothing but the setup stamp the test host starts with.
    let written: Vec<_> = std::fs::read_dir(env.state_root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != "setup.stamp")
        .collect();
    assert!(written.is_empty(), "nothing written: {written:?}");
    let r = run_in(&env, &["gate", "diff", "nosuch"]);
    assert_eq!(r.code, 1);
    assert_snapshot!(r.stderr, @"
    x `nosuch` is neither a task nor a gate repository
    help: `terok-executor gate list` shows the mirrors and the tasks that use them
    ");
}

#[test]
fn rm_needs_a_name() {
    let r = run(&["rm"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("<NAMES>..."), "{}", r.stderr);
}

#[test]
fn acp_help_says_how_an_editor_connects() {
    let r = run(&["acp", "--help"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @r"
    Serve a running task's agents to an editor (Zed, Toad) over ACP, the Agent Client Protocol.

    The editor sees one agent whose models are every agent of the task as `agent:model`; picking
    one starts that agent's ACP server inside the task container, behind the task's vault, shield
    and gate. Without --stdio, this runs the task's proxy on a Unix socket (its path is printed)
    until the task stops or Ctrl-C. With --stdio, it speaks ACP on stdin/stdout — the command an
    editor starts — and runs the task's proxy in the background when none runs. The task must be
    running: `terok-executor run AGENT --interactive`, or `terok-executor start NAME`.

    Usage: terok-executor acp [OPTIONS] <TASK> [SOCKET]

    Arguments:
      <TASK>
              The task: its container name or task id (see `terok-executor list`)

      [SOCKET]
              The socket, as the Python terok-executor took it (same as --socket)

    Options:
          --config <PATH>
              Read only this config file instead of the layered /etc/terok and ~/.config/terok files

          --socket <PATH>
              The socket (default: acp/<container>.sock under the runtime directory)

          --raw
              Ignore every config.yml (built-in defaults only)

          --stdio
              Speak ACP on stdin/stdout (an editor's agent command, e.g. a Zed custom agent server)

          --probe-timeout <SECONDS>
              Seconds an agent may take to list its models (default: TEROK_ACP_PROBE_TIMEOUT_SECS, else
              30)

      -v, --verbose...
              Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's output

          --connection <NAME>
              Use this podman system connection (a remote engine) instead of the local one;
              `CONTAINER_HOST` in the environment works too

          --no-warm
              Do not keep an agent's ACP server started ahead of the next session: saves that server's
              memory in the container; each session then waits for its agent to start

      -h, --help
              Print help (see a summary with '-h')
    ");
}

#[test]
fn acp_refuses_a_probe_timeout_that_is_not_positive_and_two_sockets() {
    let r = run(&["acp", "task", "--probe-timeout", "0"]);
    assert_eq!(r.code, 2);
    assert_snapshot!(r.stderr, @r"
    error: invalid value '0' for '--probe-timeout <SECONDS>': `0` is not a positive number of seconds

    For more information, try '--help'.
    ");
    let r = run(&["acp", "task", "/tmp/a.sock", "--stdio"]);
    assert_eq!(r.code, 2);
    assert_snapshot!(r.stderr, @r"
    error: the argument '[SOCKET]' cannot be used with '--stdio'

    Usage: terok-executor acp <TASK> <SOCKET>

    For more information, try '--help'.
    ");
}

#[test]
fn run_tool_help_lists_the_python_flags() {
    let r = run(&["run-tool", "--help"]);
    assert_eq!(r.code, 0);
    assert_snapshot!(r.stdout, @r"
    Run a sidecar tool (e.g. coderabbit) once on a directory or a git URL, with its real credential, in
    a container of its own

    Usage: terok-executor run-tool [OPTIONS] <TOOL> [REPO] [-- <TOOL_ARGS>...]

    Arguments:
      <TOOL>
              The tool: a roster entry with a `sidecar:` section (see `terok-executor agents --all`)

      [REPO]
              A directory (mounted at /workspace) or a git URL (cloned inside the container)
              
              [default: .]

      [TOOL_ARGS]...
              Arguments for the tool, after `--`

    Options:
          --config <PATH>
              Read only this config file instead of the layered /etc/terok and ~/.config/terok files

          --timeout <SECONDS>
              Seconds before the tool is stopped (exit status 124); enforced on the host too
              
              [default: 600]

          --name <NAME>
              Container name (default terok-executor-<task id>)

          --raw
              Ignore every config.yml (built-in defaults only)

          --branch <BRANCH>
              Branch to clone or create (git URLs)

      -v, --verbose...
              Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's output

          --connection <NAME>
              Use this podman system connection (a remote engine) instead of the local one;
              `CONTAINER_HOST` in the environment works too

          --timezone <IANA>
              Time zone of the container (default: the host's)

          --base <IMAGE>
              Base image of L0 (default: image.base_image in config.yml, else ubuntu:24.04)

          --family <FAMILY>
              Package family of the base image, when its name does not say

              Possible values:
              - deb: Debian, Ubuntu and derivatives
              - rpm: Fedora, RHEL, UBI and derivatives

      -y, --yes
              Answer yes to preflight questions (build missing images)

          --no-preflight
              Skip the setup-stamp gate and the preflight checks (missing images are still built)

          --shield <MODE>
              What the container may reach (default: `allowlist`, or `open` when config.yml sets
              `shield.bypass_firewall_no_protection`); the tool's API must be allowed

              Possible values:
              - offline:   No network but loopback; the agent reaches its model API through the vault's
                socket
              - allowlist: Only the destinations of the shield profiles; private and metadata addresses
                refused
              - open:      Unfiltered egress (a loud warning at every launch)

          --network <NAME>
              The podman network the container joins (default: podman's own)

          --gate
              Put the repository behind the git gate: the default for a git URL

          --no-gate
              Clone a git URL directly from its remote, without the gate

      -h, --help
              Print help (see a summary with '-h')

    Exit status: the tool's own (124 when --timeout fired, 130 on Ctrl-C), 1 when the launch failed, 3
    when setup is needed, 4 when setup last ran with a newer version.
    Example: terok-executor run-tool coderabbit . -- review --plain
    ");
}

/// A container that would clone an SSH URL itself with no key in the vault: without a terminal
/// to ask, the run stops (setup needed) and names the commands that make or import one; with
/// the key imported, the check passes (the run then goes on to the image preflight).
#[test]
fn an_ssh_clone_without_a_key_says_how_to_make_one() {
    let env = IsolatedEnv::new().unwrap();
    let url = "git@forge.invalid:org/repo.git";
    let r = run_in(&env, &["run", "claude", url, "--no-gate", "-p", "x"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_snapshot!(r.stderr, @r"
    Setup needed: the container clones git@forge.invalid:org/repo.git over SSH, and no SSH key is stored for claude tasks.
    Fix it with one of:
      terok-executor ssh keygen              make a key (then add its public key to the forge)
      terok-executor ssh import FILE         use a key you have
      terok-executor run ... --gate          clone through the gate, with your own git access
    ");
    // Through the gate, the host fetches with the user's own git access: no key needed here.
    let r = run_in(&env, &["run", "claude", url, "-p", "x"]);
    assert!(!r.stderr.contains("SSH key"), "{}", r.stderr);
    let keygen = run_in(&env, &["ssh", "keygen", "--for-agent", "claude"]);
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    assert!(
        keygen.stdout.starts_with("ssh-ed25519 "),
        "{}",
        keygen.stdout
    );
    let r = run_in(&env, &["run", "claude", url, "--no-gate", "-p", "x"]);
    assert!(!r.stderr.contains("no SSH key"), "{}", r.stderr);
}

/// `--emit kube` refuses what no Pod can run, an existing Secret file, and a missing one,
/// with nothing written and nothing on stdout.
#[test]
fn emit_kube_refuses_with_the_remedy_and_writes_nothing() {
    let env = IsolatedEnv::new().unwrap();
    env.write_work_file("project/README.md", "# sample\n")
        .unwrap();
    let secret = env.work_dir().join("secret.yaml");
    let secret_arg = secret.to_str().unwrap();
    let emit = |repo: &str| {
        let args = [
            "run",
            "claude",
            repo,
            "-p",
            "x",
            "--emit",
            "kube",
            "--kube-secret",
        ];
        run_in(&env, &[&args[..], &[secret_arg]].concat())
    };
    let r = emit("project");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_snapshot!(r.stderr, @"
    x this task cannot run as a Kubernetes Pod: the workspace is this host's directory [TMP]/work/project, which a cluster's node cannot see
    help: push the repository where the cluster can clone it and give its git URL
    ");
    assert!(!secret.exists(), "nothing written");

    std::fs::write(&secret, "mine\n").unwrap();
    let r = emit("https://example.com/org/repo.git");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_snapshot!(r.stderr, @"
    x [TMP]/work/secret.yaml exists: refusing to overwrite it with the task's Secret
    help: give --kube-secret a path that does not exist yet (it is written owner-only)
    ");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "mine\n");

    let r = run_in(
        &env,
        &["run", "claude", "project", "-p", "x", "--emit", "kube"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--kube-secret <FILE>"), "{}", r.stderr);
}
