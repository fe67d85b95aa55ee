//! The vault rows of `cargo xtask bench`: what the broker adds to a request, measured against
//! the same mock upstream reached directly, in the same run, with the daemon pinned to one
//! core and wrk, the mock upstream and this process on the other: wrk's p50/p99 over one
//! keep-alive connection, the daemon's CPU per request (the scheduler's accounting of its
//! threads), the first request after 100 ms idle, SSE event delay, and throughput at
//! concurrency 32 with the daemon's share of its core. The floor rows put each figure in
//! proportion: the same requests through socat, a relay that does nothing to the bytes,
//! pinned to the daemon's core.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use terok_testkit::IsolatedEnv;
use terok_testkit::upstream::MockUpstream;
use terok_vault::control::{ControlRequest, ControlResponse, call};

use super::table::{Goal, Row, fmt_num};
use crate::util::run_echo;

const BODY_BYTES: usize = 1024;

/// A vault daemon in an isolated environment, routing `claude` to a mock upstream.
struct Setup {
    env: IsolatedEnv,
    binary: std::path::PathBuf,
    upstream: MockUpstream,
    vault_url: String,
    token: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self
            .env
            .command(&self.binary)
            .args(["vault", "stop"])
            .output();
    }
}

fn setup(binary: &Path) -> anyhow::Result<Setup> {
    let env = IsolatedEnv::new()?;
    let upstream = MockUpstream::start_quiet()?;
    let agents = env.user_config_dir().join("agent/agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(
        agents.join("claude.yaml"),
        format!("vault:\n  upstream: {}\n", upstream.url()),
    )?;
    run_echo(env.command(binary).args([
        "auth",
        "claude",
        "--api-key",
        "sk-ant-bench-not-a-real-key",
    ]))?;
    run_echo(env.command(binary).args(["vault", "start"]))?;
    let paths = terok_vault::VaultPaths::from_terok(&terok_core::TerokPaths::resolve(
        &env.host_env(),
        None,
    )?);
    let runtime = tokio::runtime::Runtime::new()?;
    let opened = runtime.block_on(call(
        &paths.control_socket(),
        &ControlRequest::OpenTcp {
            container: "terok-bench".into(),
            providers: vec!["claude".into()],
            scope: "standalone".into(),
            bind: None,
            ports: None,
        },
    ))?;
    let ControlResponse::Opened(opened) = opened else {
        bail!("the vault did not open a TCP listener: {opened:?}");
    };
    let port = opened.port.context("no port in the answer")?;
    let token = opened.tokens.get("claude").cloned().context("no token")?;
    Ok(Setup {
        env,
        binary: binary.to_path_buf(),
        upstream,
        vault_url: format!("http://127.0.0.1:{port}"),
        token,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn timed_post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &'static [u8],
) -> anyhow::Result<Duration> {
    let mut request = client.post(url).body(body);
    if let Some(token) = token {
        request = request.header("x-api-key", token);
    }
    let started = Instant::now();
    let response = request.send().await?;
    let status = response.status();
    response.bytes().await?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok(started.elapsed())
}

async fn after_idle(url: &str, token: Option<&str>) -> anyhow::Result<f64> {
    static BODY: [u8; BODY_BYTES] = [b'x'; BODY_BYTES];
    let client = reqwest::Client::new();
    timed_post(&client, url, token, &BODY).await?;
    let mut samples = Vec::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples.push(timed_post(&client, url, token, &BODY).await?);
    }
    samples.sort();
    Ok(percentile(&samples, 50.0))
}

/// Mean delay (ms) between an SSE event being sent upstream and arriving here.
async fn sse_delay(url: &str, token: Option<&str>) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let mut total = 0.0;
    let mut count = 0.0;
    for _ in 0..5 {
        let mut request = client.get(format!("{url}/sse?events=40&delay_ms=10&ts=1"));
        if let Some(token) = token {
            request = request.header("x-api-key", token);
        }
        let mut stream = request.send().await?.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_micros() as f64;
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(sent) = event.split("\"sent_us\":").nth(1).and_then(|r| {
                    r.trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse::<f64>()
                        .ok()
                }) {
                    total += (now_us - sent) / 1000.0;
                    count += 1.0;
                }
            }
        }
    }
    if count == 0.0 {
        bail!("no timed SSE events arrived from {url}");
    }
    Ok(total / count)
}

/// What one wrk run measured.
struct WrkRun {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

impl WrkRun {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// wrk against `url` with `connections` keep-alive connections from one thread for
/// `seconds`, each request a 1 KiB POST.
fn wrk(
    url: &str,
    token: Option<&str>,
    dir: &Path,
    connections: usize,
    seconds: u32,
) -> anyhow::Result<WrkRun> {
    let script = dir.join("post.lua");
    let header = token
        .map(|t| format!("wrk.headers[\"x-api-key\"] = \"{t}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {BODY_BYTES})\n{header}"),
    )?;
    let out = Command::new("wrk")
        .args(["-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("{url}/v1/messages"))
        .output()
        .context("wrk is not installed; run `cargo xtask host-setup`")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))
}

/// The figures in wrk's `--latency` output.
fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        seconds: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("50%") {
            run.p50_ms = wrk_duration_ms(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("99%") {
            run.p99_ms = wrk_duration_ms(rest.trim())?;
        } else if let Some((count, rest)) = line.split_once(" requests in ") {
            run.requests = count.trim().parse().ok()?;
            run.seconds = wrk_duration_ms(rest.split(',').next()?.trim())? / 1000.0;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += rest.trim().parse::<u64>().ok()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            run.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (run.requests > 0 && run.seconds > 0.0 && run.p50_ms.is_finite() && run.p99_ms.is_finite())
        .then_some(run)
}

/// A wrk duration (`92.00us`, `1.20ms`, `10.00s`, `1.00m`) in milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(value * scale)
}

/// Binds every thread of process `pid`, and the threads it starts later, to CPU `core`.
fn pin(pid: u32, core: usize) -> anyhow::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output()
        .context("taskset (util-linux) is needed to pin the processes")?;
    if !out.status.success() {
        bail!(
            "taskset -p {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// This process bound to one core until dropped, when its former affinity comes back (the
/// bench groups after this one run unpinned).
struct PinnedSelf {
    mask: String,
}

impl PinnedSelf {
    fn to(core: usize) -> anyhow::Result<Self> {
        let pid = std::process::id().to_string();
        let out = Command::new("taskset").args(["-p", &pid]).output()?;
        // "pid 123's current affinity mask: 3"
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mask = text
            .split_whitespace()
            .last()
            .filter(|m| m.chars().all(|c| c.is_ascii_hexdigit()))
            .with_context(|| format!("no affinity mask in `taskset -p`: {text}"))?
            .to_owned();
        pin(std::process::id(), core)?;
        Ok(Self { mask })
    }
}

impl Drop for PinnedSelf {
    fn drop(&mut self) {
        let _ = Command::new("taskset")
            .args(["-a", "-p", &self.mask, &std::process::id().to_string()])
            .output();
    }
}

/// CPU a path's process(es) used: the total, and how it splits between user space (the
/// relay's own work) and the kernel (system calls and the loopback network stack, which any
/// relay pays).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Cpu {
    total: Duration,
    user: Duration,
    system: Duration,
}

impl Cpu {
    /// What was used between `before` and `self`.
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            total: self.total.saturating_sub(before.total),
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }

    /// From clock ticks alone (the total at their 10 ms resolution).
    fn from_ticks(ticks: StatTicks) -> Cpu {
        let user = ticks_to_duration(ticks.user);
        let system = ticks_to_duration(ticks.system);
        Cpu {
            total: user + system,
            user,
            system,
        }
    }
}

/// Clock ticks are `USER_HZ`, 100 per second on Linux whatever the kernel's own tick.
fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// CPU process `pid` has used so far, over all its threads: the total at nanosecond
/// resolution (the scheduler's own accounting), the split from `/proc/<pid>/stat`'s ticks.
fn cpu_time(pid: u32) -> anyhow::Result<Cpu> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_ticks(&stat).context("a short /proc/<pid>/stat")?;
    Ok(Cpu {
        total: Duration::from_nanos(total),
        ..Cpu::from_ticks(ticks)
    })
}

/// socat relaying a loopback port to `upstream_port`, forking one process per connection: the
/// same two TCP hops a request through the vault makes, with nothing done to the bytes — the
/// floor of what any relay costs on this machine. Killed when dropped.
struct FloorRelay {
    child: std::process::Child,
    port: u16,
}

impl FloorRelay {
    fn start(upstream_port: u16) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("TCP:127.0.0.1:{upstream_port},nodelay"))
            .spawn()
            .context("socat is needed for the relay floor (cargo xtask host-setup installs it)")?;
        let relay = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("socat did not listen on port {port} within 5 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(relay)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// CPU time of socat and its connection processes, read once every connection process
    /// has exited and been reaped (a live one's CPU is not counted yet; socat lingers 0.5 s
    /// after a connection's end).
    fn cpu_time(&self) -> anyhow::Result<Cpu> {
        let pid = self.child.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&children)?.trim().is_empty() {
            if Instant::now() > deadline {
                bail!("socat's connection processes did not end within 5 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let ticks = stat_ticks(&stat).context("a short /proc/<pid>/stat")?;
        Ok(Cpu::from_ticks(ticks))
    }
}

/// A process's CPU and that of its reaped children, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTicks {
    /// utime + cutime.
    user: u64,
    /// stime + cstime.
    system: u64,
}

/// The CPU ticks of a `/proc/<pid>/stat` line.
fn stat_ticks(stat: &str) -> Option<StatTicks> {
    // The fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 of the whole line, the 12th after the name (state is the 1st); then
    // stime, cutime, cstime.
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(StatTicks {
        user: tick(11)? + tick(13)?,
        system: tick(12)? + tick(14)?,
    })
}

impl Drop for FloorRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's pid, from its pidfile.
fn daemon_pid(setup: &Setup) -> anyhow::Result<u32> {
    let paths = terok_vault::VaultPaths::from_terok(&terok_core::TerokPaths::resolve(
        &setup.env.host_env(),
        None,
    )?);
    let text = std::fs::read_to_string(paths.pidfile())?;
    text.trim()
        .parse()
        .with_context(|| format!("no pid in {}", paths.pidfile().display()))
}

/// The core the daemon runs on; the client, wrk and the mock upstream share the other one.
const DAEMON_CORE: usize = 0;
const CLIENT_CORE: usize = 1;
/// How long each wrk run lasts.
const WRK_SECONDS: u32 = 10;

/// Everything measured along one path to the mock upstream: directly, through the vault, or
/// through the floor relay.
struct PathRun {
    /// One keep-alive connection.
    seq: WrkRun,
    /// CPU of the measured process(es) during `seq`.
    seq_cpu: Cpu,
    /// 32 keep-alive connections.
    c32: WrkRun,
    /// CPU of the measured process(es) during `c32`.
    c32_cpu: Cpu,
    /// The median request after 100 ms idle (ms).
    idle_ms: f64,
    /// The mean delay of an SSE event (ms).
    sse_ms: f64,
}

impl PathRun {
    fn cpu_per_request_us(cpu: Duration, run: &WrkRun) -> f64 {
        cpu.as_secs_f64() * 1e6 / run.requests as f64
    }

    fn seq_cpu_us(&self) -> f64 {
        Self::cpu_per_request_us(self.seq_cpu.total, &self.seq)
    }

    /// A sequential request's CPU in user space and in the kernel, for a baseline.
    fn seq_split(&self) -> String {
        format!(
            "user {} µs, kernel {} µs",
            fmt_num(Self::cpu_per_request_us(self.seq_cpu.user, &self.seq)),
            fmt_num(Self::cpu_per_request_us(self.seq_cpu.system, &self.seq))
        )
    }

    fn c32_cpu_us(&self) -> f64 {
        Self::cpu_per_request_us(self.c32_cpu.total, &self.c32)
    }

    fn c32_core_share(&self) -> f64 {
        self.c32_cpu.total.as_secs_f64() / self.c32.seconds
    }
}

/// Where one path's requests go and how its CPU is read.
struct Via<'a> {
    url: &'a str,
    token: Option<&'a str>,
    cpu: &'a dyn Fn() -> anyhow::Result<Cpu>,
}

/// Every figure along each of `vias`, one path after the other. Not figure by figure: the
/// daemon revokes the tokens of containers that are not running once they are a minute old
/// (the bench's container never runs), so the vault's figures are taken first, within that
/// minute.
fn measure_all(
    vias: &[Via<'_>],
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Vec<PathRun>> {
    vias.iter().map(|via| measure(via, dir, runtime)).collect()
}

/// Every figure along `via`.
fn measure(
    via: &Via<'_>,
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<PathRun> {
    let with_cpu = |connections: usize| -> anyhow::Result<(WrkRun, Cpu)> {
        let before = (via.cpu)()?;
        let run = wrk(via.url, via.token, dir, connections, WRK_SECONDS)?;
        Ok((run, (via.cpu)()?.since(before)))
    };
    let (seq, seq_cpu) = with_cpu(1)?;
    let (c32, c32_cpu) = with_cpu(32)?;
    let url = format!("{}/v1/messages", via.url);
    let idle_ms = runtime
        .block_on(after_idle(&url, via.token))
        .with_context(|| format!("the request after idle to {url}"))?;
    let sse_ms = runtime
        .block_on(sse_delay(via.url, via.token))
        .with_context(|| format!("the SSE stream from {}", via.url))?;
    Ok(PathRun {
        seq,
        seq_cpu,
        c32,
        c32_cpu,
        idle_ms,
        sse_ms,
    })
}

/// The vault rows: the daemon pinned to one core, everything else on the other, each figure
/// next to the same measurement made directly against the mock upstream — and then the same
/// figures through the floor relay, pinned where the daemon is, against the same goals.
pub fn rows(binary: &Path) -> anyhow::Result<Vec<Row>> {
    terok_vault::tls::install_crypto_provider();
    // Before any thread starts: the mock upstream's and the client's threads inherit it.
    let _pinned = PinnedSelf::to(CLIENT_CORE)?;
    let setup = setup(binary)?;
    let daemon = daemon_pid(&setup)?;
    pin(daemon, DAEMON_CORE)?;
    let dir = setup.env.root();
    let me = std::process::id();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let relay = FloorRelay::start(setup.upstream.port())?;
    pin(relay.child.id(), DAEMON_CORE)?;
    let direct_url = setup.upstream.url();
    let floor_url = relay.url();
    let vias = [
        Via {
            url: &setup.vault_url,
            token: Some(&setup.token),
            cpu: &|| cpu_time(daemon),
        },
        Via {
            url: &direct_url,
            token: None,
            cpu: &|| cpu_time(me),
        },
        Via {
            url: &floor_url,
            token: None,
            cpu: &|| relay.cpu_time(),
        },
    ];
    let [vault, direct, floor]: [PathRun; 3] = measure_all(&vias, dir, &runtime)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("one run per path"))?;
    drop(relay);
    let errors = vault.seq.errors + vault.c32.errors;
    let mut rows = vault_rows(&direct, &vault, errors);
    rows.extend(floor_rows(&direct, &floor, &vault));
    Ok(rows)
}

/// How much more than the direct figure a relayed one is, as a multiple of the direct one.
fn added(relayed: f64, direct: f64) -> f64 {
    (relayed - direct) / direct
}

/// The vault's figures against their goals.
fn vault_rows(direct: &PathRun, vault: &PathRun, errors: u64) -> Vec<Row> {
    vec![
        Row {
            figure: format!(
                "vault: added p50, 1 keep-alive connection, 1 KiB POSTs ({} requests, \
                 {errors} errors)",
                vault.seq.requests
            ),
            value: added(vault.seq.p50_ms, direct.seq.p50_ms),
            unit: "× direct",
            goal: Goal::AtMost(1.0),
            baseline: format!(
                "direct p50 {} ms, via the vault {} ms",
                fmt_num(direct.seq.p50_ms),
                fmt_num(vault.seq.p50_ms)
            ),
        },
        Row {
            figure: "vault: added p99, 1 connection".to_owned(),
            value: added(vault.seq.p99_ms, direct.seq.p99_ms),
            unit: "× direct",
            goal: Goal::AtMost(2.0),
            baseline: format!(
                "direct p99 {} ms, via the vault {} ms",
                fmt_num(direct.seq.p99_ms),
                fmt_num(vault.seq.p99_ms)
            ),
        },
        Row {
            figure: "vault: daemon CPU per sequential request".to_owned(),
            value: vault.seq_cpu_us(),
            unit: "µs",
            goal: Goal::AtMost(25.0),
            baseline: format!(
                "{}; mock upstream {} µs",
                vault.seq_split(),
                fmt_num(direct.seq_cpu_us())
            ),
        },
        Row {
            figure: "vault: added latency after 100 ms idle (median of 30)".to_owned(),
            value: added(vault.idle_ms, direct.idle_ms),
            unit: "× direct",
            goal: Goal::AtMost(2.0),
            baseline: format!(
                "direct {} ms, via the vault {} ms",
                fmt_num(direct.idle_ms),
                fmt_num(vault.idle_ms)
            ),
        },
        Row {
            figure: "vault: added delay per SSE event".to_owned(),
            value: vault.sse_ms - direct.sse_ms,
            unit: "ms",
            goal: Goal::AtMost(0.05),
            baseline: format!("direct {} ms", fmt_num(direct.sse_ms)),
        },
        Row {
            figure: format!("vault: req/s at concurrency 32, {WRK_SECONDS} s"),
            value: vault.c32.rps() / direct.c32.rps(),
            unit: "× direct",
            goal: Goal::AtLeast(0.9),
            baseline: format!(
                "direct {} req/s ({} errors), via the vault {} req/s",
                fmt_num(direct.c32.rps()),
                direct.c32.errors,
                fmt_num(vault.c32.rps())
            ),
        },
        Row {
            figure: "vault: daemon's share of its core at concurrency 32".to_owned(),
            value: vault.c32_core_share(),
            unit: "core",
            goal: Goal::AtMost(0.9),
            baseline: format!("{} µs CPU per request", fmt_num(vault.c32_cpu_us())),
        },
    ]
}

/// The same figures through socat on the daemon's core, against the same goals: what any
/// relay costs on this machine. The baselines give the vault as a multiple of the floor,
/// which stays steady while the machine's noise moves both.
fn floor_rows(direct: &PathRun, floor: &PathRun, vault: &PathRun) -> Vec<Row> {
    // A ratio of two small differences: meaningless when socat added nothing measurable.
    let times = |vault: f64, floor: f64| {
        if floor > 0.0 && floor.is_finite() {
            format!("the vault {} × socat", fmt_num(vault / floor))
        } else {
            "socat added nothing measurable".to_owned()
        }
    };
    let vault_p50 = added(vault.seq.p50_ms, direct.seq.p50_ms);
    let floor_p50 = added(floor.seq.p50_ms, direct.seq.p50_ms);
    let vault_p99 = added(vault.seq.p99_ms, direct.seq.p99_ms);
    let floor_p99 = added(floor.seq.p99_ms, direct.seq.p99_ms);
    let vault_idle = added(vault.idle_ms, direct.idle_ms);
    let floor_idle = added(floor.idle_ms, direct.idle_ms);
    vec![
        Row {
            figure: "floor: added p50 through socat on the daemon's core (two hops, no HTTP)"
                .to_owned(),
            value: floor_p50,
            unit: "× direct",
            goal: Goal::AtMost(1.0),
            baseline: format!(
                "via socat {} ms ({} requests, {} errors); {}",
                fmt_num(floor.seq.p50_ms),
                floor.seq.requests,
                floor.seq.errors,
                times(vault_p50, floor_p50)
            ),
        },
        Row {
            figure: "floor: added p99 through socat".to_owned(),
            value: floor_p99,
            unit: "× direct",
            goal: Goal::AtMost(2.0),
            baseline: format!(
                "via socat {} ms; {}",
                fmt_num(floor.seq.p99_ms),
                times(vault_p99, floor_p99)
            ),
        },
        Row {
            figure: "floor: socat's CPU per sequential request".to_owned(),
            value: floor.seq_cpu_us(),
            unit: "µs",
            goal: Goal::AtMost(25.0),
            baseline: format!(
                "{}; {}",
                floor.seq_split(),
                times(vault.seq_cpu_us(), floor.seq_cpu_us())
            ),
        },
        Row {
            figure: "floor: added latency after 100 ms idle through socat".to_owned(),
            value: floor_idle,
            unit: "× direct",
            goal: Goal::AtMost(2.0),
            baseline: format!(
                "via socat {} ms; {}",
                fmt_num(floor.idle_ms),
                times(vault_idle, floor_idle)
            ),
        },
        Row {
            figure: "floor: added delay per SSE event through socat".to_owned(),
            value: floor.sse_ms - direct.sse_ms,
            unit: "ms",
            goal: Goal::AtMost(0.05),
            baseline: format!("via socat {} ms", fmt_num(floor.sse_ms)),
        },
        Row {
            figure: "floor: req/s through socat at concurrency 32".to_owned(),
            value: floor.c32.rps() / direct.c32.rps(),
            unit: "× direct",
            goal: Goal::AtLeast(0.9),
            baseline: format!(
                "via socat {} req/s ({} errors); {}",
                fmt_num(floor.c32.rps()),
                floor.c32.errors,
                times(vault.c32.rps(), floor.c32.rps())
            ),
        },
        Row {
            figure: "floor: socat's share of its core at concurrency 32".to_owned(),
            value: floor.c32_core_share(),
            unit: "core",
            goal: Goal::AtMost(0.9),
            baseline: format!(
                "{} µs CPU per request; {}",
                fmt_num(floor.c32_cpu_us()),
                times(vault.c32_cpu_us(), floor.c32_cpu_us())
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latency_output_is_read() {
        let text = "Running 10s test @ http://127.0.0.1:1/v1/messages
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    95.12us   20.00us   1.20ms   90.00%
  Latency Distribution
     50%   92.00us
     75%  102.00us
     90%  117.00us
     99%    1.21ms
  104000 requests in 10.00s, 12.34MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  10400.00
";
        let run = parse_wrk(text).unwrap();
        assert_eq!(run.requests, 104_000);
        assert!((run.seconds - 10.0).abs() < 1e-9);
        assert!((run.p50_ms - 0.092).abs() < 1e-9);
        assert!((run.p99_ms - 1.21).abs() < 1e-9);
        assert_eq!(run.errors, 3);
        assert!((run.rps() - 10_400.0).abs() < 1e-6);
        assert!(parse_wrk("nothing useful").is_none());
    }

    #[test]
    fn a_relays_cpu_includes_its_reaped_children() {
        let stat = "4242 (socat (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 20 11 20 0 1 0";
        let ticks = stat_ticks(stat).unwrap();
        assert_eq!(
            ticks,
            StatTicks {
                user: 7 + 20,
                system: 3 + 11
            }
        );
        let cpu = Cpu::from_ticks(ticks);
        assert_eq!(cpu.user, Duration::from_millis(270));
        assert_eq!(cpu.total, Duration::from_millis(410));
        assert_eq!(stat_ticks("4242 (socat) S 1 2 3"), None);
        assert_eq!(stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn cpu_used_between_two_readings_never_goes_below_zero() {
        let at = |ms: u64| Cpu {
            total: Duration::from_millis(ms),
            user: Duration::from_millis(ms / 2),
            system: Duration::from_millis(ms / 2),
        };
        assert_eq!(at(300).since(at(100)), at(200));
        assert_eq!(at(100).since(at(300)), Cpu::default());
    }
}
