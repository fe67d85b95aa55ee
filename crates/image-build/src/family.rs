//! Package-family detection from the base image name (docs/compatibility.md#6.1).

use terok_core::config::PackageFamily;

use crate::error::ImageBuildError;
use crate::reference::split_reference;

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
