//! What the vault refuses to do with a container's request, whatever the token: methods that
//! have no business carrying a credential (TRACE echoes it back, CONNECT would tunnel it),
//! endpoints of a route that mint, rotate or reveal credentials (the route's `deny` rules), and
//! redirects that leave the route's hosts or lead into this host's or its network's private
//! addresses (relayed to the client instead of followed).

use std::net::IpAddr;

use axum::http::{Method, Uri};
use terok_credentials::routes::Route;

/// Whether the vault answers `method` with 405 instead of forwarding it.
pub fn refused_method(method: &Method) -> bool {
    matches!(*method, Method::TRACE | Method::CONNECT)
}

/// The route's `deny` rule that `method` on `raw_path` falls under, if any. The path is
/// compared the way an upstream would read it: percent-decoded, without empty or `.`
/// segments, with `..` applied.
pub fn denied_by<'r>(route: &'r Route, method: &Method, raw_path: &str) -> Option<&'r str> {
    if route.deny.is_empty() {
        // Most routes (every model provider's) have no rule: no path to decode per request.
        return None;
    }
    let path = normalized_segments(raw_path);
    route.deny.iter().map(String::as_str).find(|rule| {
        let Some((rule_method, rule_path)) = rule.split_once(' ') else {
            return false;
        };
        (rule_method == "*" || rule_method.eq_ignore_ascii_case(method.as_str()))
            && segments_match(rule_path.trim_start_matches('/'), &path)
    })
}

fn normalized_segments(raw_path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for segment in raw_path.split('/') {
        let decoded = percent_decode(segment);
        match decoded.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(decoded),
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(hi)), Some(Some(lo))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn segments_match(pattern: &str, path: &[String]) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut i = 0;
    for (n, want) in pattern.iter().enumerate() {
        if *want == "**" && n + 1 == pattern.len() {
            return true;
        }
        match path.get(i) {
            Some(have) if *want == "*" || *want == have => i += 1,
            _ => return false,
        }
    }
    i == path.len()
}

/// Whether the vault follows a redirect of a request to `from` onto `to` (it never carries the
/// credential along). A redirect within the same origin is followed: it leads nowhere the route
/// does not already go. Elsewhere only over https, to a host of the route (its upstreams and
/// `redirect_hosts`), and only when every address the host resolves to is public.
pub async fn may_follow(route: &Route, from: &Uri, to: &Uri) -> bool {
    if from.scheme() == to.scheme() && from.authority() == to.authority() {
        return true;
    }
    if to.scheme_str() != Some("https") {
        return false;
    }
    let Some(host) = to.host() else {
        return false;
    };
    if !route_hosts(route).any(|allowed| host_allowed(&allowed, host)) {
        return false;
    }
    let port = to.port_u16().unwrap_or(443);
    match tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await {
        Ok(addresses) => {
            let addresses: Vec<_> = addresses.collect();
            !addresses.is_empty() && addresses.iter().all(|a| is_public(a.ip()))
        }
        Err(_) => false,
    }
}

/// The hosts of the route's upstreams, then its `redirect_hosts`.
fn route_hosts(route: &Route) -> impl Iterator<Item = String> + '_ {
    std::iter::once(&route.upstream)
        .chain(route.path_upstreams.values())
        .filter_map(|url| url.parse::<Uri>().ok()?.host().map(str::to_owned))
        .chain(route.redirect_hosts.iter().cloned())
}

fn host_allowed(allowed: &str, host: &str) -> bool {
    match allowed.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
        None => allowed.eq_ignore_ascii_case(host),
    }
}

/// Not this host, not a private, shared, link-local (cloud metadata) or unique-local network,
/// not unspecified, broadcast or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(deny: &[&str]) -> Route {
        Route {
            upstream: "https://gitlab.example".into(),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            redirect_hosts: vec!["*.cdn.example".into()],
            ..Route::default()
        }
    }

    #[test]
    fn deny_rules_match_segments_methods_and_encodings() {
        let r = route(&[
            "POST /api/v4/personal_access_tokens/*/rotate",
            "* /authorizations/**",
        ]);
        let post = Method::POST;
        for path in [
            "/api/v4/personal_access_tokens/self/rotate",
            "/api/v4/personal_access_tokens/42/rotate?x=1",
            "//api/v4/./personal_access_tokens/self/rotate",
            "/api/v4/personal%5Faccess%5Ftokens/self/rotate",
            "/api/v4/x/../personal_access_tokens/self/rotate",
            "/authorizations",
            "/authorizations/clients/abc",
        ] {
            let path = path.split('?').next().unwrap();
            assert!(denied_by(&r, &post, path).is_some(), "{path}");
        }
        for path in [
            "/api/v4/personal_access_tokens/self",
            "/api/v4/personal_access_tokens/self/rotate/more",
            "/api/v4/projects",
            "/authorizationsx",
        ] {
            assert!(denied_by(&r, &post, path).is_none(), "{path}");
        }
        assert!(
            denied_by(
                &r,
                &Method::GET,
                "/api/v4/personal_access_tokens/self/rotate"
            )
            .is_none()
        );
        assert!(denied_by(&r, &Method::GET, "/authorizations").is_some());
        assert!(refused_method(&Method::TRACE) && refused_method(&Method::CONNECT));
        assert!(!refused_method(&Method::POST));
    }

    #[tokio::test]
    async fn redirects_stay_on_the_routes_public_hosts() {
        let r = route(&[]);
        let from: Uri = "https://gitlab.example/api/v4/x".parse().unwrap();
        let to = |u: &str| u.parse::<Uri>().unwrap();
        assert!(may_follow(&r, &from, &to("https://gitlab.example/other")).await);
        for target in [
            "http://127.0.0.1:9/json",
            "http://gitlab.example/plain-http",
            "https://evil.example/x",
            "https://127.0.0.1/x",
            "https://cdn.example.evil/x",
        ] {
            assert!(!may_follow(&r, &from, &to(target)).await, "{target}");
        }
        assert!(host_allowed("*.cdn.example", "a.cdn.example"));
        assert!(!host_allowed("*.cdn.example", "cdn.example"));
        assert!(!host_allowed("*.cdn.example", "acdn.example"));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(is_public("2606:4700::1".parse().unwrap()));
    }
}
