//! The vault rows of `cargo xtask bench`: what the broker adds to a request, measured against
//! the same mock upstream reached directly, in the same run (sequential latency p50/p99, the
//! first request after 100 ms idle, throughput at concurrency 32 with wrk, SSE event delay).

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

const SEQUENTIAL: usize = 2000;
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

async fn sequential(url: &str, token: Option<&str>) -> anyhow::Result<Vec<Duration>> {
    static BODY: [u8; BODY_BYTES] = [b'x'; BODY_BYTES];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    for _ in 0..200 {
        timed_post(&client, url, token, &BODY).await?;
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        samples.push(timed_post(&client, url, token, &BODY).await?);
    }
    samples.sort();
    Ok(samples)
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

/// Requests per second and errors from wrk at concurrency 32 for 10 s (keep-alive, 1 KiB POSTs).
fn wrk(url: &str, token: Option<&str>, dir: &Path) -> anyhow::Result<(f64, u64)> {
    let script = dir.join("post.lua");
    let header = token
        .map(|t| format!("wrk.headers[\"x-api-key\"] = \"{t}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {BODY_BYTES})\n{header}"),
    )?;
    let out = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "-s"])
        .arg(&script)
        .arg(format!("{url}/v1/messages"))
        .output()
        .context("wrk is not installed; run `cargo xtask host-setup`")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let mut errors = 0;
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.trim().strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok((rps, errors))
}

/// The vault rows.
pub fn rows(binary: &Path) -> anyhow::Result<Vec<Row>> {
    terok_vault::tls::install_crypto_provider();
    let setup = setup(binary)?;
    let direct = setup.upstream.url();
    let via = setup.vault_url.clone();
    let token = setup.token.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    let (direct_seq, vault_seq) = runtime.block_on(async {
        let d = sequential(&format!("{direct}/v1/messages"), None).await?;
        let v = sequential(&format!("{via}/v1/messages"), Some(&token)).await?;
        anyhow::Ok((d, v))
    })?;
    let (direct_idle, vault_idle) = runtime.block_on(async {
        let d = after_idle(&format!("{direct}/v1/messages"), None).await?;
        let v = after_idle(&format!("{via}/v1/messages"), Some(&token)).await?;
        anyhow::Ok((d, v))
    })?;
    let (direct_sse, vault_sse) = runtime.block_on(async {
        let d = sse_delay(&direct, None).await?;
        let v = sse_delay(&via, Some(&token)).await?;
        anyhow::Ok((d, v))
    })?;
    let (direct_rps, direct_errors) = wrk(&direct, None, setup.env.root())?;
    let (vault_rps, vault_errors) = wrk(&via, Some(&token), setup.env.root())?;
    let (d50, d99) = (percentile(&direct_seq, 50.0), percentile(&direct_seq, 99.0));
    let (v50, v99) = (percentile(&vault_seq, 50.0), percentile(&vault_seq, 99.0));
    Ok(vec![
        Row {
            figure: format!("vault: added latency p50 ({SEQUENTIAL} sequential 1 KiB POSTs)"),
            value: v50 - d50,
            unit: "ms",
            goal: Goal::AtMost(0.060),
            baseline: format!("direct p50 {} ms", fmt_num(d50)),
        },
        Row {
            figure: "vault: added latency p99".to_owned(),
            value: v99 - d99,
            unit: "ms",
            goal: Goal::AtMost(0.250),
            baseline: format!("direct p99 {} ms", fmt_num(d99)),
        },
        Row {
            figure: "vault: added latency after 100 ms idle (median of 30)".to_owned(),
            value: vault_idle - direct_idle,
            unit: "ms",
            goal: Goal::AtMost(0.3),
            baseline: format!("direct {} ms", fmt_num(direct_idle)),
        },
        Row {
            figure: format!("vault: req/s at concurrency 32, 10 s ({vault_errors} errors)"),
            value: vault_rps,
            unit: "req/s",
            goal: Goal::AtLeast(27_000.0),
            baseline: format!(
                "direct {} req/s ({direct_errors} errors)",
                fmt_num(direct_rps)
            ),
        },
        Row {
            figure: "vault: added delay per SSE event".to_owned(),
            value: vault_sse - direct_sse,
            unit: "ms",
            goal: Goal::AtMost(0.1),
            baseline: format!("direct {} ms", fmt_num(direct_sse)),
        },
    ])
}
