//! `cargo xtask ci`: what CI checks, in the order that fails fastest.

use std::process::Command;

use crate::util::{is_ci, on_path, run_echo, workspace_root};

pub fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    let cargo = || {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&root);
        cmd
    };
    step("format");
    run_echo(cargo().args(["fmt", "--all", "--check"]))?;
    step("clippy");
    run_echo(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("layers");
    crate::layers::run()?;
    step("cargo-deny");
    run_echo(cargo().args([
        "deny",
        "--workspace",
        "check",
        "bans",
        "licenses",
        "sources",
    ]))?;
    if terok_testkit::podman::podman_works() {
        // bookworm for most podman tests; sid for the agents' end-to-end tests (Pi needs
        // Node.js 22, Vibe Python 3.12).
        step("base images: bookworm, sid");
        crate::base_image::run(&["bookworm".to_owned(), "sid".to_owned()])?;
    } else if is_ci() {
        anyhow::bail!("podman is not available but CI is set: run `cargo xtask host-setup` first");
    } else {
        println!("NOTE: podman is not available; the podman-backed tests will be SKIPPED loudly.");
    }
    step("tests");
    if on_path("cargo-nextest") {
        run_echo(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]))?;
    } else {
        run_echo(cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"]))?;
    }
    if is_ci() && crate::util::is_root() {
        // The same machine as an unprivileged user: rootless podman, keep-id, the vault's
        // sockets for the container's uid, the runtime directory.
        step("rootless tests");
        rootless_tests()?;
    }
    if is_ci() {
        // A short run of every fuzz target from its seeds (the long runs are
        // `cargo xtask fuzz --seconds 600`, docs/fuzzing.md).
        step("fuzz: 30 s per target");
        crate::fuzz::run(crate::fuzz::FuzzArgs {
            seconds: 30,
            only: Vec::new(),
        })?;
    }
    if terok_testkit::podman::podman_works() {
        // A slice of the image matrix (the whole of it is `cargo xtask images`; it takes long).
        step("images: bookworm × claude, codex");
        crate::images::run(crate::images::ImagesArgs {
            bases: vec!["bookworm".to_owned()],
            agents: vec!["claude".to_owned(), "codex".to_owned()],
            json: false,
            write_docs: false,
            strict: true,
        })?;
    }
    step("examples");
    // An orchestrator's first read (crates/executor/examples): it must keep building.
    run_echo(cargo().args(["build", "--workspace", "--examples", "--locked"]))?;
    step("doc tests");
    run_echo(cargo().args(["test", "--workspace", "--locked", "--doc"]))?;
    println!("\nci: all checks passed");
    Ok(())
}

/// The rootless tests, as the unprivileged CI account.
pub fn rootless_tests() -> anyhow::Result<()> {
    if !crate::util::is_root() {
        anyhow::bail!(
            "run the rootless tests as root: they switch to the {} account",
            crate::rootless::CI_ACCOUNT
        );
    }
    let root = workspace_root();
    let cargo = || {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&root);
        cmd
    };
    crate::rootless::run_ci_tests(&root, &cargo)
}

fn step(name: &str) {
    println!("\n==> {name}");
}
