//! Which agent's install a failing L1 build was in, and why it failed. The L1 Dockerfile
//! marks each agent's steps with `ARG TEROK_INSTALLING=<agent>` (and ends them with an empty
//! one), which podman prints as a step of its own; the watch follows the build's log.

use std::collections::VecDeque;

/// The build arg whose step names the agent whose install steps follow.
pub const INSTALLING_ARG: &str = "TEROK_INSTALLING";
/// How many lines of a failing install are kept.
const TAIL_LINES: usize = 12;

/// Why an agent's install failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallCause {
    /// A host it downloads from could not be reached: its name did not resolve, or the
    /// connection was refused or timed out (a vendor host this network does not reach).
    Unreachable {
        /// The host, when the install's output names it.
        host: Option<String>,
    },
    /// The install failed otherwise: its snippet, or the package, is broken here.
    Failed,
}

/// Follows a build's log lines.
#[derive(Debug, Default)]
pub(crate) struct InstallWatch {
    agent: Option<String>,
    step: Option<String>,
    tail: VecDeque<String>,
}

/// The agent whose install a failed build was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedInstall {
    pub agent: String,
    pub step: Option<String>,
    pub cause: InstallCause,
    pub tail: Vec<String>,
}

impl InstallWatch {
    /// Takes one line of the build's log.
    pub fn see(&mut self, line: &str) {
        if let Some((_, _, text)) = parse_step(line) {
            if let Some(agent) = text
                .strip_prefix("ARG ")
                .and_then(|arg| arg.strip_prefix(INSTALLING_ARG))
                .and_then(|rest| rest.strip_prefix('='))
            {
                self.agent = (!agent.is_empty()).then(|| agent.to_owned());
                self.step = None;
                self.tail.clear();
                return;
            }
            self.step = Some(text);
        }
        // podman's layer ids (`--> 3f2a…`, `COMMIT …`) say nothing of the failure.
        if line.starts_with("--> ") || line.starts_with("COMMIT ") {
            return;
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }

    /// The agent whose install the build was in when it failed, if any.
    pub fn failed_install(self) -> Option<FailedInstall> {
        let agent = self.agent?;
        let tail: Vec<String> = self.tail.into_iter().collect();
        Some(FailedInstall {
            agent,
            step: self.step,
            cause: cause_of(&tail),
            tail,
        })
    }
}

/// `STEP 3/15: RUN …` → `(3, 15, "RUN …")`.
pub(crate) fn parse_step(line: &str) -> Option<(u32, u32, String)> {
    let rest = line.strip_prefix("STEP ")?;
    let (numbers, text) = rest.split_once(": ")?;
    let (current, total) = numbers.split_once('/')?;
    Some((current.parse().ok()?, total.parse().ok()?, text.to_owned()))
}

/// Why an install whose output ended in `lines` failed: what curl, apt, npm and pip print
/// when a host cannot be reached, else a plain failure.
pub(crate) fn cause_of(lines: &[String]) -> InstallCause {
    const HOST_BEFORE: [(&str, &str); 7] = [
        ("Could not resolve host: ", ""),
        ("Failed to connect to ", " port"),
        ("Temporary failure resolving '", "'"),
        ("Could not connect to ", ":"),
        ("getaddrinfo ENOTFOUND ", ""),
        ("getaddrinfo EAI_AGAIN ", ""),
        ("host='", "'"),
    ];
    const WITHOUT_HOST: [&str; 7] = [
        "Network is unreachable",
        "Connection timed out",
        "Connection refused",
        "ETIMEDOUT",
        "ECONNREFUSED",
        // uv (reqwest): `cause: failed to lookup address information: …`
        "failed to lookup address information",
        "error resolving DNS",
    ];
    // The step's own command (echoed by `STEP …` and podman's `Error: building at STEP …`)
    // is what ran, not what it printed.
    let output = lines
        .iter()
        .rev()
        .filter(|line| !line.starts_with("STEP ") && !line.starts_with("Error: building at STEP"));
    for line in output {
        for (before, after) in HOST_BEFORE {
            if let Some(rest) = line.split_once(before).map(|(_, rest)| rest) {
                let host = if after.is_empty() {
                    rest.split_whitespace().next().unwrap_or(rest)
                } else {
                    rest.split_once(after).map_or(rest, |(host, _)| host)
                };
                let host = host.trim_end_matches(['.', ',', ')', '\'', '"', ':']);
                return InstallCause::Unreachable {
                    host: (!host.is_empty()).then(|| host.to_owned()),
                };
            }
        }
        if WITHOUT_HOST.iter().any(|needle| line.contains(needle)) {
            return InstallCause::Unreachable {
                host: host_of_last_url(lines),
            };
        }
    }
    InstallCause::Failed
}

/// The host of the last `http(s)://` URL the output names (what uv and npm were fetching
/// when they say only that a connection failed).
fn host_of_last_url(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .rev()
        .filter(|line| !line.starts_with("STEP ") && !line.starts_with("Error: building at STEP"))
        .find_map(|line| {
            let (_, rest) = line
                .split_once("https://")
                .or_else(|| line.split_once("http://"))?;
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            let host = &rest[..end];
            host.contains('.').then(|| host.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn an_unreachable_host_is_told_from_a_broken_install() {
        let cases = [
            (
                "E: Unable to locate package glab\ncurl: (6) Could not resolve host: gitlab.com",
                Some("gitlab.com"),
            ),
            (
                "curl: (7) Failed to connect to gitlab.com port 443 after 3 ms: Couldn't connect",
                Some("gitlab.com"),
            ),
            (
                "W: Failed to fetch http://deb.debian.org/x  Temporary failure resolving 'deb.debian.org'",
                Some("deb.debian.org"),
            ),
            (
                "npm error request to https://registry.npmjs.org/x failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org",
                Some("registry.npmjs.org"),
            ),
            (
                "WARNING: Retrying ... NewConnectionError(... Failed to establish a new connection: [Errno -3]) host='pypi.org', port=443",
                Some("pypi.org"),
            ),
        ];
        for (text, host) in cases {
            assert_eq!(
                cause_of(&lines(text)),
                InstallCause::Unreachable {
                    host: host.map(str::to_owned)
                },
                "{text}"
            );
        }
        assert_eq!(
            cause_of(&lines("npm error code ETIMEDOUT")),
            InstallCause::Unreachable { host: None }
        );
        // uv fetching a Python build it needs, as it prints on a network without GitHub.
        let uv = "error: Request failed after 3 retries in 51.2s\n  \
            cause: Failed to download `https://github.com/astral-sh/python-build-standalone/releases/download/20261110/cpython-3.14.10-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz`\n  \
            cause: client error (Connect)\n  cause: dns error\n  cause: error resolving DNS\n  \
            cause: failed to lookup address information: Name or service not known";
        assert_eq!(
            cause_of(&lines(uv)),
            InstallCause::Unreachable {
                host: Some("github.com".to_owned())
            }
        );
        assert_eq!(
            cause_of(&lines("E: Unable to locate package glab\nexit status 100")),
            InstallCause::Failed
        );
    }

    #[test]
    fn the_agent_is_the_one_whose_steps_the_build_was_in() {
        let mut watch = InstallWatch::default();
        for line in [
            "STEP 9/30: ARG TEROK_INSTALLING=claude",
            "STEP 10/30: RUN npm install -g @anthropic-ai/claude-code",
            "added 3 packages",
            "STEP 11/30: ARG TEROK_INSTALLING=glab",
            "STEP 12/30: RUN apt-get update && (apt-get install -y glab || install-glab-release.sh deb)",
            "E: Unable to locate package glab",
            "curl: (6) Could not resolve host: gitlab.com",
            "--> 3f2a9c1d0e",
            "Error: building at STEP \"RUN echo 'Could not resolve host: nowhere.example'\": exit status 6",
        ] {
            watch.see(line);
        }
        let failed = watch.failed_install().unwrap();
        assert_eq!(failed.agent, "glab");
        assert!(failed.step.unwrap().starts_with("RUN apt-get update"));
        assert_eq!(
            failed.cause,
            InstallCause::Unreachable {
                host: Some("gitlab.com".into())
            }
        );
        assert_eq!(failed.tail.len(), 4, "no layer id: {:?}", failed.tail);

        // Past the agents' steps, a failure is nobody's install.
        let mut watch = InstallWatch::default();
        for line in [
            "STEP 11/30: ARG TEROK_INSTALLING=glab",
            "STEP 12/30: RUN true",
            "STEP 13/30: ARG TEROK_INSTALLING=",
            "STEP 14/30: RUN false",
        ] {
            watch.see(line);
        }
        assert_eq!(watch.failed_install(), None);
    }
}
