//! Changing and reading a running task's firewall: the `nft` script that replaces the allow and
//! deny sets in one transaction (the DNS servers and the remembered denials stay), and what
//! `nft -j list table inet terok_shield` says about the sets.

use crate::profile::Network;
use crate::ruleset::{Policy, TABLE};

/// The script that makes the loaded sets those of `policy`, atomically.
pub fn sets_script(policy: &Policy) -> String {
    let mut out = String::new();
    for (name, v6, networks) in [
        ("allow_v4", false, &policy.allowed),
        ("allow_v6", true, &policy.allowed),
        ("deny_v4", false, &policy.denied),
        ("deny_v6", true, &policy.denied),
    ] {
        out.push_str(&format!("flush set inet {TABLE} {name}\n"));
        let elements: Vec<String> = networks
            .iter()
            .filter(|n| n.addr.is_ipv6() == v6)
            .map(element_text)
            .collect();
        if !elements.is_empty() {
            out.push_str(&format!(
                "add element inet {TABLE} {name} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
    out
}

/// A block as a set element: a bare address for one host.
fn element_text(network: &Network) -> String {
    let full = if network.addr.is_ipv4() { 32 } else { 128 };
    if network.prefix == full {
        network.addr.to_string()
    } else {
        network.to_string()
    }
}

/// A refused connection attempt the firewall remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Where it went.
    pub address: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The destination port.
    pub port: u16,
    /// Seconds until it is forgotten.
    pub expires_secs: Option<u64>,
}

/// What the loaded firewall holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSets {
    /// The allowed blocks.
    pub allowed: Vec<String>,
    /// The denied blocks.
    pub denied: Vec<String>,
    /// The DNS servers.
    pub resolvers: Vec<String>,
    /// Addresses the DNS forwarder learned for the profiles' domains.
    pub learned: Vec<String>,
    /// Recently refused attempts.
    pub denials: Vec<Denial>,
}

/// Reads the sets out of `nft -j list table inet terok_shield` output.
pub fn parse_sets(listing: &str) -> Option<LiveSets> {
    let json: serde_json::Value = serde_json::from_str(listing).ok()?;
    let mut live = LiveSets::default();
    for item in json["nftables"].as_array()? {
        let set = &item["set"];
        if set["table"] != TABLE {
            continue;
        }
        let elements = set["elem"].as_array().cloned().unwrap_or_default();
        match set["name"].as_str().unwrap_or_default() {
            "allow_v4" | "allow_v6" => live.allowed.extend(elements.iter().filter_map(block)),
            "deny_v4" | "deny_v6" => live.denied.extend(elements.iter().filter_map(block)),
            "dns_v4" | "dns_v6" => live.resolvers.extend(elements.iter().filter_map(block)),
            "learned_v4" | "learned_v6" => live.learned.extend(elements.iter().filter_map(block)),
            "denied_v4" | "denied_v6" => live.denials.extend(elements.iter().filter_map(denial)),
            _ => {}
        }
    }
    Some(live)
}

/// An address, `{"prefix": {"addr", "len"}}` or `{"range": [a, b]}` element as text.
fn block(element: &serde_json::Value) -> Option<String> {
    if let Some(text) = element.as_str() {
        return Some(text.to_owned());
    }
    if let Some(prefix) = element.get("prefix") {
        return Some(format!("{}/{}", prefix["addr"].as_str()?, prefix["len"]));
    }
    let range = element.get("range")?.as_array()?;
    Some(format!(
        "{}-{}",
        range.first()?.as_str()?,
        range.get(1)?.as_str()?
    ))
}

/// A `denied_*` element: `{"elem": {"val": {"concat": [addr, proto, port]}, "expires": s}}`.
fn denial(element: &serde_json::Value) -> Option<Denial> {
    let (value, expires) = match element.get("elem") {
        Some(elem) => (&elem["val"], elem["expires"].as_u64()),
        None => (element, None),
    };
    let parts = value["concat"].as_array()?;
    Some(Denial {
        address: parts.first()?.as_str()?.to_owned(),
        protocol: parts.get(1)?.as_str()?.to_owned(),
        port: u16::try_from(parts.get(2)?.as_u64()?).ok()?,
        expires_secs: expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_script_replaces_each_set_whole() {
        let policy = Policy {
            allowed: vec![
                Network::parse("10.89.0.7").unwrap(),
                Network::parse("2001:db8::/32").unwrap(),
            ],
            denied: vec![Network::parse("10.89.0.8").unwrap()],
            ..Policy::default()
        };
        let script = sets_script(&policy);
        assert!(script.contains("flush set inet terok_shield allow_v4\nadd element inet terok_shield allow_v4 { 10.89.0.7 }"), "{script}");
        assert!(script.contains("allow_v6 { 2001:db8::/32 }"), "{script}");
        assert!(script.contains("deny_v4 { 10.89.0.8 }"), "{script}");
        assert!(
            script.contains("flush set inet terok_shield deny_v6\n"),
            "{script}"
        );
    }

    #[test]
    fn a_listing_gives_its_sets_and_denials() {
        let listing = r#"{"nftables":[{"metainfo":{}},
          {"set":{"family":"inet","name":"allow_v4","table":"terok_shield","elem":["10.89.0.7",{"prefix":{"addr":"10.1.0.0","len":16}}]}},
          {"set":{"family":"inet","name":"dns_v4","table":"terok_shield","elem":["10.0.2.3"]}},
          {"set":{"family":"inet","name":"denied_v4","table":"terok_shield","elem":[{"elem":{"val":{"concat":["10.89.0.9","tcp",8080]},"timeout":3600,"expires":3598}}]}}]}"#;
        let live = parse_sets(listing).unwrap();
        assert_eq!(live.allowed, ["10.89.0.7", "10.1.0.0/16"]);
        assert_eq!(live.resolvers, ["10.0.2.3"]);
        assert_eq!(
            live.denials,
            [Denial {
                address: "10.89.0.9".into(),
                protocol: "tcp".into(),
                port: 8080,
                expires_secs: Some(3598)
            }]
        );
    }
}
