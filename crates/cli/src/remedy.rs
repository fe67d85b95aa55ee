//! What to do about a failure, in terms of this command line. The library's errors state the
//! condition; here the conditions the user can fix get the verb or flag that fixes them,
//! shown as the error's `help:` line.

use std::fmt;

use miette::Diagnostic;
use terok_executor::errors::{
    AuthError, ConfigEditError, ConfigError, ControlError, ImageBuildError, InstallCause,
};
use terok_executor::{
    ExecutorError, KubeRefusal, Layer, RemoteRefusal, Runtime, TcpRefusal, Unsuited,
};

/// How to move rootless podman from `vfs` to overlay storage.
pub const VFS_STORAGE_FIX: &str = "\
To use overlay (native on Linux 5.13 and later; else install fuse-overlayfs), write
~/.config/containers/storage.conf (as root: /etc/containers/storage.conf):
  [storage]
  driver = \"overlay\"
then run `podman system reset` (it removes every image and container of this user) and
`terok-executor setup`. See the README's rootless section.";

/// `text` with every line indented by `by` spaces.
pub fn indented(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `report` with the command line's remedy attached, when there is one.
pub fn attach(report: miette::Report) -> miette::Report {
    match report.downcast::<ExecutorError>() {
        Ok(err) => match remedy(&err) {
            Some(help) => miette::Report::new(Remedied { inner: err, help }),
            None => miette::Report::new(err),
        },
        Err(report) => report,
    }
}

/// What makes `services.mode: tcp` serve a launch it refused.
fn tcp_remedy(reason: &TcpRefusal) -> String {
    let address = "set `services.address` in config.yml to an address of this host the \
                   engine's containers reach";
    match reason {
        TcpRefusal::Offline => {
            "give the task a network (`--shield allowlist`), or use `services.mode: socket`"
                .to_owned()
        }
        TcpRefusal::NoGateway(_) | TcpRefusal::RootlessNetwork => address.to_owned(),
        TcpRefusal::RootlessOpen => format!("run with `--shield allowlist`, or {address}"),
        _ => address.to_owned(),
    }
}

/// What lets a remote engine run a launch it refused.
fn remote_remedy(reason: &RemoteRefusal) -> String {
    match reason {
        RemoteRefusal::Sockets | RemoteRefusal::NoAddress => {
            "set `services.mode: tcp` and `services.address` (an address of this host the \
             engine's containers reach) in config.yml; see docs/scale.md"
                .to_owned()
        }
        RemoteRefusal::Firewall => {
            "run with `--shield open` on a network whose egress the engine's host restricts \
             (`--network NAME` of an internal podman network there), or on this host's engine"
                .to_owned()
        }
        _ => "run it on this host's engine (without --connection or CONTAINER_HOST)".to_owned(),
    }
}

fn kube_remedy(reason: &KubeRefusal) -> String {
    match reason {
        KubeRefusal::Mode(_) => {
            "give a prompt (`-p PROMPT`): a Pod runs one headless task".to_owned()
        }
        KubeRefusal::LocalWorkspace(_) => {
            "push the repository where the cluster can clone it and give its git URL".to_owned()
        }
        KubeRefusal::Krun => "drop --runtime krun".to_owned(),
        KubeRefusal::LocalUpstream { provider, .. } => format!(
            "point `{provider}`'s upstream at an address the cluster reaches (its roster \
             override in ~/.config/terok/agent/agents), or run the task on this host"
        ),
        KubeRefusal::PasswordInUrl => {
            "give the URL without its password; a private repository needs credentials the \
             cluster provides (an SSH URL and a key of the cluster's, say)"
                .to_owned()
        }
        _ => "run it on this host (without --emit)".to_owned(),
    }
}

/// The remedy for `err`, if the user can fix it with this command line.
fn remedy(err: &ExecutorError) -> Option<String> {
    use ExecutorError as E;
    Some(match err {
        E::LocalPathNotFound(_) => {
            "give an existing directory, or a git URL such as https://host/org/repo.git".to_owned()
        }
        E::WorkspaceHoldsTerokFiles { .. } => {
            "run on the project's own directory, one that holds none of terok's files".to_owned()
        }
        E::AgentNotInImage { agent, .. } => format!(
            "add it: `terok-executor agents set all` or `terok-executor build --agents {agent}`"
        ),
        E::TcpServicesRefused { reason } => tcp_remedy(reason),
        E::RemoteEngineRefused { reason, .. } => remote_remedy(reason),
        E::KubeRefused { reason } => kube_remedy(reason),
        E::RemoveOnExitInteractive => {
            "--rm applies to headless runs; remove an interactive task with \
             `terok-executor rm NAME` when you are done"
                .to_owned()
        }
        E::NoModelFlag { agent } => format!(
            "drop --model; choose {agent}'s model in its own configuration (see `terok-executor agents show {agent}`)"
        ),
        E::VaultRequired | E::Vault(ControlError::NotRunning { .. }) => {
            "start it with `terok-executor vault start`".to_owned()
        }
        E::VaultDidNotStart { log, .. } => format!("see {}", log.display()),
        E::TaskNotFound(_) => "`terok-executor list` shows the tasks".to_owned(),
        E::StopFailed(failure) if failure.work_in_container => format!(
            "try again with `terok-executor stop {0}`, and copy /workspace out of the \
             container on its engine before `terok-executor rm {0}`",
            failure.name
        ),
        E::StopFailed(failure) => format!(
            "try again with `terok-executor stop {0}`, or remove it with `terok-executor rm {0}`",
            failure.name
        ),
        E::GateNotARepository(dir) => format!(
            "`git -C {} init` and commit first, or run without --gate (the directory is then the workspace)",
            dir.display()
        ),
        E::GateOnlineNeedsUrl(_) => {
            "drop --gate-mode online (a directory is gated in gatekeeping mode), or give the repository's URL"
                .to_owned()
        }
        E::GateDidNotStart { log, .. } => format!("see {}", log.display()),
        E::AcpDidNotStart { log, .. } => format!("see {}", log.display()),
        E::Acp(terok_executor::AcpError::NotRunning(name)) => format!(
            "start it with `terok-executor start {name}`; the ACP proxy serves running tasks"
        ),
        E::InvalidProbeTimeout(_) => {
            "set it to a number of seconds, or pass --probe-timeout SECONDS".to_owned()
        }
        E::NotGated(_) | E::UnknownGateTarget(_) => {
            "`terok-executor gate list` shows the mirrors and the tasks that use them".to_owned()
        }
        E::GateBranchNeeded { target, pushed } => match pushed.first() {
            Some(branch) => format!("e.g. `terok-executor gate diff {target} {branch}`"),
            None => "`terok-executor gate list` shows every branch of the mirror".to_owned(),
        },
        E::Gate(terok_executor::errors::GateError::NoGit(_)) => {
            "install git (Debian: apt-get install git), or run with --no-gate".to_owned()
        }
        E::NoConfigFile => "drop --raw, or name the file with --config PATH".to_owned(),
        E::UserSnippetFile { .. } => "fix or remove image.user_snippet_file in config.yml".to_owned(),
        E::AmbiguousSidecar { .. } => "name one: --sidecar=TOOL".to_owned(),
        E::NoLoginCommand { .. } => "store a key: pipe it into --api-key - (or pass --api-key KEY)".to_owned(),
        E::Images(err) => match &**err {
            ImageBuildError::UnknownFamily { .. } => {
                "set `family: deb` or `family: rpm` under `image:` in config.yml, or pass --family deb|rpm"
                    .to_owned()
            }
            ImageBuildError::AgentInstall {
                agent,
                cause,
                layer: Layer::Sidecar,
                ..
            } => sidecar_install_remedy(agent, cause),
            ImageBuildError::AgentInstall { agent, cause, .. } => install_remedy(agent, cause),
            ImageBuildError::UnsuitableBase { unsuited, .. } => unsuitable_remedy(unsuited),
            _ => return None,
        },
        E::Config(ConfigError::MissingExplicit { path, .. }) => format!(
            "create {}, fix the path, or use --raw to run without any config",
            path.display()
        ),
        E::ConfigEdit(ConfigEditError::Unparseable { .. }) => {
            "fix the file by hand (see `terok-executor show-config` for the error)".to_owned()
        }
        E::Routes(_) => "regenerate it with `terok-executor vault routes`".to_owned(),
        E::Auth(AuthError::EmptyKey) => {
            "pipe the key in with --api-key - (or pass --api-key KEY)".to_owned()
        }
        _ => return None,
    })
}

/// What to do when `agent` cannot be installed: build without it, or (for a host that cannot
/// be reached) let the build reach it.
fn install_remedy(agent: &str, cause: &InstallCause) -> String {
    let without = format!(
        "build without it: `terok-executor agents set all,-{agent}` (writes image.agents to \
         config.yml), or `terok-executor build --agents all,-{agent}` for one build"
    );
    match cause {
        InstallCause::Unreachable { host } => format!("{without}; or {}", reach_remedy(host)),
        _ => format!("{without}; if its install snippet is yours, fix it in the roster"),
    }
}

/// What to do when a sidecar tool's image cannot be built: there is nothing to leave out.
fn sidecar_install_remedy(tool: &str, cause: &InstallCause) -> String {
    match cause {
        InstallCause::Unreachable { host } => reach_remedy(host),
        _ => format!(
            "`{tool}` runs only from its sidecar image; `terok-executor build --sidecar={tool} -v` \
             streams the whole build log"
        ),
    }
}

fn reach_remedy(host: &Option<String>) -> String {
    format!(
        "let the build reach {} (a proxy in podman's environment, HTTPS_PROXY) and run it again",
        host.as_deref().unwrap_or("the host")
    )
}

/// What to do when entries cannot work on the base: another base, or build without them.
fn unsuitable_remedy(unsuited: &[Unsuited]) -> String {
    let needs: Vec<String> = [Runtime::NodeJs, Runtime::Python]
        .into_iter()
        .filter_map(|runtime| {
            let newest = unsuited
                .iter()
                .filter(|u| u.runtime == runtime)
                .map(|u| u.needs)
                .max()?;
            Some(format!("{runtime} {newest}"))
        })
        .collect();
    let mut without: Vec<String> = unsuited.iter().map(|u| format!("-{}", u.agent)).collect();
    without.dedup();
    format!(
        "build on a base with {} or newer (--base, or image.base_image in config.yml), or \
         without {}: `terok-executor build --agents all,{}`",
        needs.join(" and "),
        if without.len() == 1 { "it" } else { "them" },
        without.join(",")
    )
}

/// An error with a remedy: the error's own diagnostic, with `help` in place of its help.
#[derive(Debug)]
struct Remedied {
    inner: ExecutorError,
    help: String,
}

impl fmt::Display for Remedied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Remedied {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

impl Diagnostic for Remedied {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.inner.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.inner.labels()
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.inner.related()
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.inner.diagnostic_source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_tool_that_cannot_install_is_not_told_to_leave_itself_out() {
        let unreachable = InstallCause::Unreachable {
            host: Some("cli.coderabbit.ai".into()),
        };
        let tool = sidecar_install_remedy("coderabbit", &unreachable);
        assert_eq!(
            tool,
            "let the build reach cli.coderabbit.ai (a proxy in podman's environment, \
             HTTPS_PROXY) and run it again"
        );
        let agent = install_remedy("glab", &unreachable);
        assert!(agent.starts_with("build without it: `terok-executor agents set all,-glab`"));
        assert!(agent.ends_with(&tool), "{agent}");
    }
}
