//! The task's DNS forwarder: a dnsmasq the hook starts in the container's network namespace,
//! listening on the container's `127.0.0.1:53`, forwarding to the container's own name
//! servers, and adding every address it answers for a profile's domain to the firewall's
//! `learned_v4`/`learned_v6` sets as it answers. A name that moves to new addresses is allowed
//! at its new addresses as soon as the container resolves it — the profiles' domains stay
//! current without re-resolving anything on the host.
//!
//! dnsmasq runs on the host (the agent cannot reach its process), with no new privileges
//! (no setuid program can raise it) and a capability bounding set of what it needs; it drops to
//! `nobody` keeping only what adding set elements needs, and is stopped by the hook's
//! `poststop` stage or at the next start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use terok_core::secure_fs;

use crate::error::ShieldError;
use crate::ruleset::TABLE;
use crate::state::ShieldDir;
use crate::tools;

/// The program's name.
const DNSMASQ: &str = "dnsmasq";
/// The only capabilities dnsmasq may ever hold: to bind port 53, become `nobody`, hand its pid
/// file to `nobody`, and add set elements.
const SANDBOX_CAPABILITIES: &str =
    "--bounding-set=-all,+net_bind_service,+setuid,+setgid,+chown,+net_admin";
const CONF: &str = "dnsmasq.conf";
const PID: &str = "dnsmasq.pid";

/// Whether this host's dnsmasq can add answers to nftables sets (`nftset` among its compile
/// options).
pub fn available() -> bool {
    let Some(program) = tools::find(DNSMASQ) else {
        return false;
    };
    tools::command(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && has_nftset(&String::from_utf8_lossy(&out.stdout)))
}

/// Whether `dnsmasq --version` output lists `nftset` (not `no-nftset`) as compiled in.
fn has_nftset(version: &str) -> bool {
    version
        .lines()
        .filter(|line| line.starts_with("Compile time options:"))
        .any(|line| line.split_whitespace().any(|option| option == "nftset"))
}

/// The dnsmasq configuration: `servers` upstream, `domains` (and their subdomains) learned.
pub fn config(domains: &[String], servers: &[IpAddr], pid_file: &Path) -> String {
    let mut out = String::from(
        "# written by terok-shield for one task container\n\
         no-resolv\nno-hosts\nno-poll\nlisten-address=127.0.0.1\nbind-interfaces\nport=53\n\
         cache-size=1000\n\
         # answers in private ranges are dropped, not learned (DNS rebinding)\n\
         stop-dns-rebind\n",
    );
    out.push_str(&format!("pid-file={}\n", pid_file.display()));
    for server in servers {
        out.push_str(&format!("server={server}\n"));
    }
    if !domains.is_empty() {
        out.push_str(&format!(
            "nftset=/{}/4#inet#{TABLE}#learned_v4,6#inet#{TABLE}#learned_v6\n",
            domains.join("/")
        ));
    }
    out
}

/// The forwarder's files in `dir`.
fn pid_file(dir: &ShieldDir) -> PathBuf {
    dir.path().join(PID)
}

/// Starts the forwarder in the network namespace `netns` (a `/proc/PID/ns/net` path) after
/// stopping one an earlier start left, and points the container's resolv.conf (`resolv_conf`,
/// the file podman mounts) at it.
pub fn start(
    dir: &ShieldDir,
    netns: &str,
    domains: &[String],
    servers: &[IpAddr],
    resolv_conf: &Path,
) -> Result<(), ShieldError> {
    stop(dir);
    let failed = |detail: String| ShieldError::Firewall {
        step: "starting the DNS forwarder".into(),
        detail,
    };
    let conf = dir.path().join(CONF);
    secure_fs::write_atomic(
        &conf,
        config(domains, servers, &pid_file(dir)).as_bytes(),
        0o600,
    )
    .map_err(|e| failed(e.to_string()))?;
    let mut command = tools::command(tools::path_of("nsenter"));
    command
        .arg(format!("--net={netns}"))
        .arg("--")
        // dnsmasq reads what the agent sends: should it ever run the agent's code, that code
        // keeps no more than dnsmasq needs and can gain nothing by running a setuid program.
        .arg(tools::path_of("setpriv"))
        .args(["--no-new-privs", SANDBOX_CAPABILITIES, "--"])
        .arg(tools::path_of(DNSMASQ))
        .arg(conf_arg(&conf))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // dnsmasq forks into the background once it listens; its first process's exit says
    // whether it came up.
    let out = command
        .output()
        .map_err(|e| failed(format!("cannot run nsenter and dnsmasq: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            terok_core::text::printable(String::from_utf8_lossy(&out.stderr).trim()).into_owned(),
        ));
    }
    point_at_forwarder(resolv_conf).map_err(failed)
}

/// dnsmasq's option naming its configuration file (its argument is optional, so it is joined).
fn conf_arg(conf: &Path) -> String {
    format!("--conf-file={}", conf.display())
}

/// Rewrites the container's resolv.conf in place (the file is bind-mounted, so its inode must
/// stay): `nameserver 127.0.0.1`, with the search and options lines kept.
fn point_at_forwarder(resolv_conf: &Path) -> Result<(), String> {
    use std::io::Write;
    let old = secure_fs::read_nofollow(resolv_conf).map_err(|e| e.to_string())?;
    let mut new = String::from("nameserver 127.0.0.1\n");
    for line in String::from_utf8_lossy(&old)
        .lines()
        .filter(|l| !l.trim_start().starts_with("nameserver"))
    {
        new.push_str(line);
        new.push('\n');
    }
    let mut file = secure_fs::open_truncate_existing(resolv_conf).map_err(|e| e.to_string())?;
    file.write_all(new.as_bytes()).map_err(|e| e.to_string())
}

/// Stops the forwarder of `dir`, if one runs (the pid file must name a dnsmasq started with
/// this directory's configuration, so a reused process id is left alone).
pub fn stop(dir: &ShieldDir) {
    let pid_path = pid_file(dir);
    let Ok(text) = fs_err::read_to_string(&pid_path) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let conf = dir.path().join(CONF);
    let ours = fs_err::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.first()
            .is_some_and(|a| a.ends_with(DNSMASQ.as_bytes()))
            && args.iter().any(|a| *a == conf_arg(&conf).as_bytes())
    });
    if ours {
        let _ = tools::command(tools::path_of("kill"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
    let _ = fs_err::remove_file(pid_path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_forwards_upstream_and_learns_the_profiles_domains() {
        let text = config(
            &["pypi.org".into(), "files.pythonhosted.org".into()],
            &["10.0.2.3".parse().unwrap()],
            Path::new("/t/shield/dnsmasq.pid"),
        );
        assert!(text.contains("listen-address=127.0.0.1\n"), "{text}");
        assert!(text.contains("server=10.0.2.3\n"), "{text}");
        assert!(text.contains("no-resolv\n"), "{text}");
        assert!(
            text.contains("nftset=/pypi.org/files.pythonhosted.org/4#inet#terok_shield#learned_v4,6#inet#terok_shield#learned_v6\n"),
            "{text}"
        );
    }

    #[test]
    fn nftset_support_is_read_from_the_compile_options() {
        let with =
            "Dnsmasq version 2.90\nCompile time options: IPv6 GNU-getopt ipset nftset auth\n";
        let without = "Dnsmasq version 2.85\nCompile time options: IPv6 ipset no-nftset auth\n";
        assert!(has_nftset(with));
        assert!(!has_nftset(without));
    }

    #[test]
    fn resolv_conf_points_at_the_forwarder_and_keeps_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolv.conf");
        std::fs::write(&file, "search lan\nnameserver 10.0.2.3\noptions ndots:1\n").unwrap();
        let inode = std::fs::metadata(&file).unwrap().ino();
        point_at_forwarder(&file).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "nameserver 127.0.0.1\nsearch lan\noptions ndots:1\n"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
    }
}
