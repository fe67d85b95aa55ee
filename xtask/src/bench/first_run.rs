//! The first-run row of `cargo xtask bench --only first-run`: `run` where podman holds no terok
//! image yet (the base image only), rootless versus rootful, as a ratio. Each side gets a podman
//! store of its own that starts empty — rootful a temporary graph root, rootless the
//! unprivileged CI account with a fresh home — so the ratio compares the storage setups
//! host-setup makes, not caches. Minutes per side: the images are built, agents installed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;
use terok_testkit::agents::{LAUNCH_TEST_CONFIG, SCRIPTED_AGENT, install_scripted_agent};
use terok_testkit::base_image::BASE_IMAGE;

use super::table::{Goal, Row, fmt_num};
use crate::rootless::{CI_ACCOUNT, ensure_ci_account, overlay_storage_conf};
use crate::util::{is_root, run_echo};

/// Who runs the first `run`.
#[derive(Clone, Copy)]
enum Side {
    Rootful,
    Rootless,
}

pub fn row(binary: &Path) -> anyhow::Result<Row> {
    if !is_root() {
        bail!(
            "the first-run row needs root: it compares rootful podman with an unprivileged account"
        );
    }
    terok_testkit::base_image::ensure_base_image(&mut |line| println!("bench: {line}"))?;
    for change in ensure_ci_account()? {
        println!("bench: {change}");
    }
    let archive = base_image_archive()?;
    let rootful = first_run(binary, Side::Rootful, &archive);
    let rootless = rootful
        .as_ref()
        .ok()
        .map(|_| first_run(binary, Side::Rootless, &archive));
    let _ = std::fs::remove_file(&archive);
    let rootful = rootful?.as_secs_f64();
    let rootless = rootless.context("not measured")??.as_secs_f64();
    Ok(Row {
        figure: "first `run` with no terok image yet: rootless ÷ rootful".to_owned(),
        value: rootless / rootful,
        unit: "×",
        goal: Goal::AtMost(1.5),
        baseline: format!(
            "rootful {} s, rootless {} s",
            fmt_num(rootful),
            fmt_num(rootless)
        ),
    })
}

/// The base image saved where both sides can load it from.
fn base_image_archive() -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(format!(
        "/var/tmp/terok-bench-base-{}.tar",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    run_echo(
        Command::new("podman")
            .args(["save", "--quiet", "-o"])
            .arg(&path)
            .arg(BASE_IMAGE),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    Ok(path)
}

/// Times `run` of the stand-in agent on `side`, from a store holding only the base image: it
/// builds the images, starts the vault and runs the agent once.
fn first_run(binary: &Path, side: Side, archive: &Path) -> anyhow::Result<Duration> {
    let env = IsolatedEnv::new()?;
    env.write_user_config(LAUNCH_TEST_CONFIG)?;
    install_scripted_agent(&env)?;
    std::fs::create_dir_all(env.work_dir().join("project"))?;
    let store = Store::new(&env, side)?;
    run_echo(&mut store.command(&env, "podman", &["load", "--quiet", "-i"], Some(archive)))?;
    let key = [
        "auth",
        "claude",
        "--api-key",
        "sk-ant-api03-bench-not-a-real-key",
    ];
    let stored = store
        .command(&env, binary, &key, None)
        .stdout(Stdio::null())
        .status()?;
    if !stored.success() {
        bail!("cannot store the bench credential");
    }
    let run = [
        "run",
        SCRIPTED_AGENT,
        "project",
        "--yes",
        "--rm",
        "-p",
        "echo first-run",
    ];
    println!(
        "bench: first `run` {} (builds every image; minutes)…",
        side.name()
    );
    let started = Instant::now();
    let result = run_echo(&mut store.command(&env, binary, &run, None));
    let took = started.elapsed();
    let _ = store
        .command(&env, binary, &["vault", "stop"], None)
        .output();
    store.remove(&env);
    result.map(|()| took)
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Rootful => "rootful",
            Self::Rootless => "rootless",
        }
    }
}

/// An empty podman store for one side.
struct Store {
    side: Side,
    /// Rootful: the storage config naming the temporary graph root.
    conf: Option<PathBuf>,
}

impl Store {
    fn new(env: &IsolatedEnv, side: Side) -> anyhow::Result<Self> {
        match side {
            Side::Rootful => {
                let dir = env.root().join("podman-store");
                std::fs::create_dir_all(&dir)?;
                let conf = dir.join("storage.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                        dir.display()
                    ),
                )?;
                Ok(Self {
                    side,
                    conf: Some(conf),
                })
            }
            Side::Rootless => {
                // The account's store lives under its (isolated, fresh) home, configured as
                // host-setup configures a user's.
                let containers = env.home().join(".config/containers");
                std::fs::create_dir_all(&containers)?;
                let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
                std::fs::write(
                    containers.join("storage.conf"),
                    overlay_storage_conf(kernel.trim()),
                )?;
                run_echo(
                    Command::new("chown")
                        .args(["-R", &format!("{CI_ACCOUNT}:{CI_ACCOUNT}")])
                        .arg(env.root()),
                )?;
                Ok(Self { side, conf: None })
            }
        }
    }

    /// `program args [path]` on this side, in `env`.
    fn command(
        &self,
        env: &IsolatedEnv,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        path: Option<&Path>,
    ) -> Command {
        let mut cmd = match self.side {
            Side::Rootful => {
                let mut cmd = env.command(program);
                if let Some(conf) = &self.conf {
                    cmd.env("CONTAINERS_STORAGE_CONF", conf);
                }
                cmd
            }
            Side::Rootless => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", CI_ACCOUNT, "--", "env", "-i"]);
                for (name, value) in env.vars() {
                    let mut pair = std::ffi::OsString::from(format!("{name}="));
                    pair.push(value);
                    cmd.arg(pair);
                }
                cmd.arg(program).current_dir(env.work_dir());
                cmd
            }
        };
        cmd.args(args);
        if let Some(path) = path {
            cmd.arg(path);
        }
        cmd
    }

    /// Empties the store (its layers may be mounted, so podman removes them first).
    fn remove(&self, env: &IsolatedEnv) {
        let _ = self
            .command(env, "podman", &["system", "reset", "--force"], None)
            .stdin(Stdio::null())
            .output();
    }
}
