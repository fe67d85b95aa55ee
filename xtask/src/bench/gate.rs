//! The git gate row of `cargo xtask bench`: a clone of a 50 MB repository through the gate —
//! its per-task front on a Unix socket, reached through socat on loopback as git in a
//! container reaches it — against a direct clone of the same repository over git's own pack
//! protocol (`file://`), in the same run.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use terok_testkit::IsolatedEnv;

use super::table::{Goal, Row, fmt_num, time_command};
use crate::util::run_echo;

/// Size of the repository's content: random bytes, which no pack compresses.
const REPO_BYTES: usize = 50 << 20;
/// Files it is spread over.
const FILES: usize = 50;
/// The task the gate serves.
const TASK: &str = "terok-executor-bench";

/// git with no configuration of the user's, as the test user.
fn git(env: &IsolatedEnv) -> Command {
    let mut cmd = env.command("git");
    cmd.args(["-c", "user.name=Bench", "-c", "user.email=bench@localhost"])
        .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd
}

/// A bare repository of one commit holding [`REPO_BYTES`] of random content.
fn make_remote(env: &IsolatedEnv) -> anyhow::Result<std::path::PathBuf> {
    let seed = env.work_dir().join("seed");
    let remote = env.work_dir().join("remote.git");
    run_echo(git(env).args(["init", "-q", "-b", "main"]).arg(&seed))?;
    let mut random = std::fs::File::open("/dev/urandom")?;
    for i in 0..FILES {
        let mut bytes = vec![0u8; REPO_BYTES / FILES];
        random.read_exact(&mut bytes)?;
        std::fs::write(seed.join(format!("blob-{i:02}.bin")), bytes)?;
    }
    run_echo(git(env).arg("-C").arg(&seed).args(["add", "."]))?;
    run_echo(
        git(env)
            .arg("-C")
            .arg(&seed)
            .args(["commit", "-q", "-m", "data"]),
    )?;
    run_echo(
        git(env)
            .args(["clone", "-q", "--bare"])
            .arg(&seed)
            .arg(&remote),
    )?;
    Ok(remote)
}

/// socat forwarding `port` on loopback to `socket`, as the bridge in a container does.
fn bridge(port: u16, socket: &Path) -> anyhow::Result<Child> {
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("UNIX-CONNECT:{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("socat is needed for the gate row; run `cargo xtask host-setup`")?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("socat did not listen on 127.0.0.1:{port}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn row(runs: usize) -> anyhow::Result<Row> {
    let env = IsolatedEnv::new()?;
    println!("bench: making a 50 MB repository…");
    let remote = make_remote(&env)?;
    let gate_dir = env.state_root().join("sandbox/gate");
    let mirrors = terok_gate::MirrorStore::new(&gate_dir);
    let tokens = terok_gate::TokenStore::new(gate_dir.join("tokens.json"));
    let name = terok_gate::repo_name(&remote.to_string_lossy());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(mirrors.sync(&name, &remote.to_string_lossy()))?;
    let token = tokens.mint(&name, TASK)?;

    let socket = env.root().join("run/gate.sock");
    let listener = runtime.block_on(async { tokio::net::UnixListener::bind(&socket) })?;
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    runtime.spawn(terok_vault::listener::serve(
        listener,
        terok_gate::front(
            mirrors,
            tokens,
            Some(TASK),
            terok_gate::GateLimits::default(),
        )
        .router,
        terok_vault::listener::ListenerLimits::default(),
        stopped,
    ));
    let port = free_port()?;
    let mut socat = bridge(port, &socket)?;

    let mut n = 0usize;
    let mut clone_into = |source: String| {
        n += 1;
        let mut cmd = git(&env);
        cmd.args(["clone", "-q", &source])
            .arg(env.work_dir().join(format!("clone-{n}")));
        cmd
    };
    let direct_url = format!("file://{}", remote.display());
    let gate_url = format!("http://{token}@127.0.0.1:{port}/{name}.git");
    // One of each first: the page cache holds the repository for both.
    time_command(1, || clone_into(direct_url.clone()))?;
    time_command(1, || clone_into(gate_url.clone()))?;
    let direct = time_command(runs, || clone_into(direct_url.clone()))?;
    let gated = time_command(runs, || clone_into(gate_url.clone()))?;
    let _ = socat.kill();
    let _ = socat.wait();
    Ok(Row {
        figure: format!("clone of 50 MB through the gate vs direct (median of {runs})"),
        value: gated / direct,
        unit: "×",
        goal: Goal::AtMost(1.3),
        baseline: format!(
            "direct `file://` clone {} ms; gate {} ms",
            fmt_num(direct),
            fmt_num(gated)
        ),
    })
}
