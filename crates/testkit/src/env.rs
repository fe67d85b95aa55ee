//! An isolated HOME / XDG / TEROK_* environment in a temporary directory, for running the CLI
//! and the libraries without reading or writing the real user's files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use terok_core::env::HostEnv;

/// A temporary home with its own XDG directories and terok roots. Dropped → deleted.
pub struct IsolatedEnv {
    dir: tempfile::TempDir,
}

impl IsolatedEnv {
    /// Creates the directory tree.
    pub fn new() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("terok-test-").tempdir()?;
        let env = Self { dir };
        for sub in [
            "home",
            "home/.config",
            "home/.local/share",
            "home/.local/state",
            "run",
            "etc-terok",
            "state",
            "work",
            "etc",
        ] {
            std::fs::create_dir_all(env.dir.path().join(sub))?;
        }
        // XDG_RUNTIME_DIR is the user's own 0700 directory; terok refuses to put keys in one
        // that is open to others.
        std::fs::set_permissions(
            env.dir.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        // The host's account and subordinate-id files, read-only copies: `setup` may reserve
        // an id range in these, never in the real ones.
        for name in ["passwd", "group", "subuid", "subgid"] {
            let real = Path::new("/etc").join(name);
            if real.exists() {
                std::fs::copy(&real, env.host_ids_dir().join(name))?;
            }
        }
        // The default shield profile, without its domains: a launch on a host without the
        // DNS forwarder resolves a profile's domains, and tests send no traffic to this host's
        // name servers. TEST-NET-1 is never contacted.
        let profiles = env.user_config_dir().join("shield/profiles");
        std::fs::create_dir_all(&profiles)?;
        std::fs::write(
            profiles.join("dev-standard.txt"),
            "# a test stand-in: no domain, so nothing is resolved\n192.0.2.1\n",
        )?;
        if !HostEnv::from_process().is_root()
            && std::env::var_os(STORAGE_CONF).is_none()
            && let Some(pinned) = rootless_storage_pin()
        {
            std::fs::write(env.storage_conf(), pinned)?;
        }
        // A host where `setup` completed with this version, as most tests assume; the tests
        // of the setup gate remove or rewrite it.
        terok_core::setup_stamp::record(&env.setup_stamp(), "2026-01-01T00:00:00Z")
            .map_err(std::io::Error::other)?;
        Ok(env)
    }

    /// The setup stamp (`<TEROK_ROOT>/setup.stamp`).
    pub fn setup_stamp(&self) -> PathBuf {
        self.state_root().join("setup.stamp")
    }

    /// Rootless: the podman storage config that keeps this user's real image store (see
    /// [`rootless_storage_pin`]).
    fn storage_conf(&self) -> PathBuf {
        self.dir.path().join("containers-storage.conf")
    }

    /// The root of the temporary tree.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `$HOME`.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// A scratch directory for test inputs (used as the working directory of commands).
    pub fn work_dir(&self) -> PathBuf {
        self.root().join("work")
    }

    /// The user's config directory (`$XDG_CONFIG_HOME/terok`).
    pub fn user_config_dir(&self) -> PathBuf {
        self.home().join(".config/terok")
    }

    /// The system config directory that stands in for `/etc/terok`.
    pub fn system_config_dir(&self) -> PathBuf {
        self.root().join("etc-terok")
    }

    /// Where the host's id files are read and reserved (`TEROK_HOST_IDS_DIR`).
    pub fn host_ids_dir(&self) -> PathBuf {
        self.root().join("etc")
    }

    /// The state root (`TEROK_ROOT`).
    pub fn state_root(&self) -> PathBuf {
        self.root().join("state")
    }

    /// Writes the user's `config.yml`.
    pub fn write_user_config(&self, text: &str) -> std::io::Result<PathBuf> {
        let path = self.user_config_dir().join("config.yml");
        std::fs::create_dir_all(self.user_config_dir())?;
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Writes a file under the scratch directory and returns its path.
    pub fn write_work_file(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let path = self.work_dir().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The variables that point every terok lookup into the temporary tree.
    pub fn vars(&self) -> Vec<(String, OsString)> {
        let r = self.root();
        let mut vars = vec![
            ("HOME".to_owned(), self.home().into_os_string()),
            (
                "XDG_CONFIG_HOME".to_owned(),
                self.home().join(".config").into_os_string(),
            ),
            (
                "XDG_DATA_HOME".to_owned(),
                self.home().join(".local/share").into_os_string(),
            ),
            (
                "XDG_STATE_HOME".to_owned(),
                self.home().join(".local/state").into_os_string(),
            ),
            ("XDG_RUNTIME_DIR".to_owned(), r.join("run").into_os_string()),
            ("TEROK_ROOT".to_owned(), self.state_root().into_os_string()),
            (
                "TEROK_SANDBOX_RUNTIME_DIR".to_owned(),
                r.join("run/terok").into_os_string(),
            ),
            (
                "TEROK_SYSTEM_CONFIG_DIR".to_owned(),
                self.system_config_dir().into_os_string(),
            ),
            (
                "TEROK_HOST_IDS_DIR".to_owned(),
                self.host_ids_dir().into_os_string(),
            ),
            ("NO_COLOR".to_owned(), OsString::from("1")),
            ("TZ".to_owned(), OsString::from("UTC")),
        ];
        if self.storage_conf().exists() {
            vars.push((
                STORAGE_CONF.to_owned(),
                self.storage_conf().into_os_string(),
            ));
        }
        for keep in [
            "PATH",
            "CI",
            "CONTAINER_HOST",
            "CONTAINER_CONNECTION",
            STORAGE_CONF,
        ] {
            if let Some(value) = std::env::var_os(keep) {
                vars.push((keep.to_owned(), value));
            }
        }
        vars
    }

    /// The same environment as a [`HostEnv`], for calling the libraries directly.
    pub fn host_env(&self) -> HostEnv {
        HostEnv::from_vars(self.vars(), terok_core_euid())
    }

    /// A command for `program` with a clean environment made of [`Self::vars`], run from the
    /// scratch directory.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.vars())
            .current_dir(self.work_dir());
        cmd
    }

    /// Replaces every occurrence of the temporary root in `text` with `[TMP]`, so output that
    /// mentions paths can be snapshotted.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root().display().to_string(), "[TMP]")
    }
}

fn terok_core_euid() -> u32 {
    HostEnv::from_process().euid()
}

/// The variable naming podman's storage config.
const STORAGE_CONF: &str = "CONTAINERS_STORAGE_CONF";

/// Rootless podman keeps its images under `$HOME`: with the isolated `HOME` every test would
/// start from an empty store and build every image again. This config points podman at the
/// real user's store (graph root, run root, driver), read once from `podman info`; terok's own
/// state stays isolated. `None` when podman does not answer.
fn rootless_storage_pin() -> Option<&'static str> {
    static PIN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PIN.get_or_init(|| {
        let out = Command::new("podman")
            .args([
                "info",
                "--format",
                "{{.Store.GraphRoot}}\t{{.Store.RunRoot}}\t{{.Store.GraphDriverName}}",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let text = String::from_utf8(out.stdout).ok()?;
        let mut fields = text.trim().split('\t');
        let (graph, run, driver) = (fields.next()?, fields.next()?, fields.next()?);
        Some(format!(
            "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{graph}\"\nrunroot = \"{run}\"\n\
             rootless_storage_path = \"{graph}\"\n"
        ))
    })
    .as_deref()
}
