//! The origin a browser gives a web task's pages, from the task's public address: what the
//! UI's gate compares a request's `Origin` with.

use crate::error::ExecutorError;

/// The origin (`scheme://host[:port]`) a browser gives pages at `public_url`: the UI's gate
/// refuses requests whose `Origin` is another one. Cookies do not tell ports apart, so the page
/// of another web task on this host (its agent controls what that page runs) would otherwise
/// make the browser open this task's WebSocket with this task's cookie.
pub fn origin_of(public_url: &str) -> Result<String, ExecutorError> {
    let invalid = |reason| ExecutorError::PublicUrlInvalid {
        url: public_url.to_owned(),
        reason,
    };
    let lower = public_url.to_ascii_lowercase();
    let (scheme, rest) = if let Some(rest) = lower.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = lower.strip_prefix("https://") {
        ("https", rest)
    } else {
        return Err(invalid("expected an http:// or https:// address"));
    };
    if rest.contains(['?', '#']) {
        return Err(invalid("a query or fragment has no place in it"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces or control characters"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid("user names or passwords have no place in it"));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| invalid("expected host[:port]"))?;
    let default_port = if scheme == "http" { 80 } else { 443 };
    Ok(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host` and its port, when `authority` is a host name, an IPv4 address or a bracketed IPv6
/// one, with an optional port 1–65535.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, after) = authority.split_at(end + 1);
        let ipv6 = &host[1..host.len() - 1];
        if ipv6.is_empty()
            || !ipv6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !name_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => Some(digits.parse::<u16>().ok().filter(|p| *p != 0)?),
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_what_a_browser_sends_for_the_public_address() {
        let origin = |url| origin_of(url).unwrap();
        assert_eq!(origin("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(origin("HTTPS://Box.Example/terok/"), "https://box.example");
        assert_eq!(origin("https://box.example:443/x"), "https://box.example");
        assert_eq!(origin("http://box.example:80"), "http://box.example");
        assert_eq!(
            origin("https://box.example:8443"),
            "https://box.example:8443"
        );
        assert_eq!(origin("http://[::1]:9000/"), "http://[::1]:9000");
        for bad in [
            "ftp://box.example",
            "box.example:8080",
            "http://",
            "http://box.example:0",
            "http://box.example:99999",
            "http://box.example:x",
            "http://user:pw@box.example",
            "http://box.example/?a=b",
            "http://box.example/#top",
            "http://box example",
            "http://box.example\n",
            "http://[]:80",
            "http://[::1",
            "http://[::1]x",
            "http://bad_host",
        ] {
            assert!(
                matches!(origin_of(bad), Err(ExecutorError::PublicUrlInvalid { .. })),
                "{bad} should be refused"
            );
        }
    }
}
