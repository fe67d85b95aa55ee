//! Package-family detection from the base image name (docs/compatibility.md#6.1).

use terok_core::config::PackageFamily;

use crate::error::ImageBuildError;

/// Splits an image reference into `(name, tag)`: a digest is dropped, and the tag is the text
/// after the last `:` only when that `:` comes after the last `/` (so a registry port is not a
/// tag: `localhost:5000/ubuntu:24.04` → `localhost:5000/ubuntu`, `24.04`).
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&without_digest[..at], Some(&without_digest[at + 1..]))
        }
        None => (without_digest, None),
    }
}

/// The package family of `base`: `override_family` if given, else by name.
pub fn detect_family(
    base: &str,
    override_family: Option<PackageFamily>,
) -> Result<PackageFamily, ImageBuildError> {
    if let Some(family) = override_family {
        return Ok(family);
    }
    let base = base.trim();
    let (name, tag) = split_reference(base);
    let name = name.to_ascii_lowercase();
    let is = |prefix: &str| name == prefix || name.starts_with(&format!("{prefix}/"));
    let by_tag = || {
        let tag = tag.unwrap_or_default().to_ascii_lowercase();
        let ubi = tag
            .match_indices("ubi")
            .any(|(i, _)| tag[i + 3..].starts_with(|c: char| c.is_ascii_digit()));
        if ubi {
            PackageFamily::Rpm
        } else {
            PackageFamily::Deb
        }
    };
    if is("registry.fedoraproject.org/fedora") || is("quay.io/podman") {
        return Ok(PackageFamily::Rpm);
    }
    if is("nvcr.io/nvidia") || is("nvidia") {
        return Ok(by_tag());
    }
    // The last path component decides for everything else, so `localhost/debian:bookworm`,
    // `docker.io/library/ubuntu` and `my.registry:5000/mirror/fedora` are recognised too.
    let last = name.rsplit('/').next().unwrap_or(&name);
    match last {
        "ubuntu" | "debian" => Ok(PackageFamily::Deb),
        "fedora" | "centos" | "rockylinux" | "almalinux" | "ubi8" | "ubi9" | "ubi10" => {
            Ok(PackageFamily::Rpm)
        }
        _ => Err(ImageBuildError::UnknownFamily {
            base: base.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_without_mistaking_ports_for_tags() {
        assert_eq!(split_reference("ubuntu:24.04"), ("ubuntu", Some("24.04")));
        assert_eq!(
            split_reference("localhost:5000/ubuntu:24.04"),
            ("localhost:5000/ubuntu", Some("24.04"))
        );
        assert_eq!(
            split_reference("localhost:5000/ubuntu"),
            ("localhost:5000/ubuntu", None)
        );
        assert_eq!(split_reference("ubuntu@sha256:abc"), ("ubuntu", None));
        assert_eq!(
            split_reference("fedora:44@sha256:abc"),
            ("fedora", Some("44"))
        );
    }
}
