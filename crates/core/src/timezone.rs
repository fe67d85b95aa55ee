//! Detects the host's IANA timezone (docs/compatibility.md#9.2) so containers can be given the
//! same `TZ`.

use std::path::Path;

use crate::env::HostEnv;

/// The host timezone: `$TZ`, else `<root>/etc/timezone`, else the zone `<root>/etc/localtime`
/// links to. `root` is `/` on a real host; tests pass a fake tree. `None` when nothing says.
pub fn detect_host_timezone(env: &HostEnv, root: &Path) -> Option<String> {
    if let Some(tz) = env.var_str("TZ").map(str::trim).filter(|t| !t.is_empty()) {
        // A leading ':' is POSIX for "a file path follows"; glibc accepts the name without it.
        return Some(tz.trim_start_matches(':').to_owned());
    }
    if let Ok(text) = std::fs::read_to_string(root.join("etc/timezone")) {
        let name = text.trim();
        if !name.is_empty() {
            return Some(name.to_owned());
        }
    }
    let target = std::fs::read_link(root.join("etc/localtime")).ok()?;
    let target = target.to_string_lossy();
    let (_, zone) = target.split_once("/zoneinfo/")?;
    let zone = zone.trim_matches('/');
    (!zone.is_empty()).then(|| zone.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_env() -> HostEnv {
        HostEnv::from_vars::<&str, &str>([], 1000)
    }

    #[test]
    fn tz_variable_wins() {
        let dir = tempfile::tempdir().unwrap();
        let env = HostEnv::from_vars([("TZ", ":Europe/Prague")], 1000);
        assert_eq!(
            detect_host_timezone(&env, dir.path()).as_deref(),
            Some("Europe/Prague")
        );
    }

    #[test]
    fn etc_timezone_is_next() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/timezone"), "America/New_York\n").unwrap();
        assert_eq!(
            detect_host_timezone(&empty_env(), dir.path()).as_deref(),
            Some("America/New_York")
        );
    }

    #[test]
    fn localtime_symlink_is_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/timezone"), "  \n").unwrap();
        std::os::unix::fs::symlink(
            "/usr/share/zoneinfo/Asia/Tokyo",
            dir.path().join("etc/localtime"),
        )
        .unwrap();
        assert_eq!(
            detect_host_timezone(&empty_env(), dir.path()).as_deref(),
            Some("Asia/Tokyo")
        );
    }

    #[test]
    fn nothing_known_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_host_timezone(&empty_env(), dir.path()), None);
    }
}
