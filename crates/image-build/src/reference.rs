//! Image references taken apart: name and tag.

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
