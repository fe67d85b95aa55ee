//! The nftables ruleset of a task: outgoing traffic is dropped unless it is loopback, part of
//! a connection already made, DNS to the task's resolver, or to an allowed address — and
//! private, link-local and metadata addresses are refused even when a name resolves to one.
//! What is refused is refused at once (TCP reset, ICMP admin-prohibited), so the agent sees an
//! error instead of a connect that hangs. Incoming: loopback and replies only.

use std::net::{IpAddr, SocketAddr};

use crate::error::ShieldError;
use crate::profile::{Destination, Network, Profile};

/// The nftables table terok owns in a container's network namespace.
pub const TABLE: &str = "terok_shield";

/// IPv4 blocks never reached unless allowed by address: private (RFC 1918), shared (CGNAT),
/// link-local (with the cloud metadata service at 169.254.169.254), "this network", IETF
/// protocol assignments, multicast and reserved.
pub const BLOCKED_V4: [&str; 9] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IPv6 blocks never reached unless allowed by address: unique-local (with cloud metadata
/// services such as fd00:ec2::254), link-local and the old site-local, multicast, and the
/// forms that carry an IPv4 address (mapped, NAT64, 6to4), which could lead to a private one.
pub const BLOCKED_V6: [&str; 8] = [
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "2002::/16",
];

/// Whether `addr` is in one of the blocks a name may never lead to.
pub fn is_blocked(addr: IpAddr) -> bool {
    let blocks: &[&str] = if addr.is_ipv4() {
        &BLOCKED_V4
    } else {
        &BLOCKED_V6
    };
    blocks
        .iter()
        .filter_map(|b| Network::parse(b))
        .any(|block| Network::new(addr, block.prefix) == Some(block))
}

/// What one task may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Address blocks the task may connect to.
    pub allowed: Vec<Network>,
    /// Address blocks refused even when allowed (a live `deny`).
    pub denied: Vec<Network>,
    /// DNS servers the task may ask. The launch hook adds those of the container's
    /// `/etc/resolv.conf`, which only podman knows when the container is created.
    pub resolvers: Vec<IpAddr>,
    /// Whether refused connections are logged and remembered for `shield status`.
    pub audit: bool,
    /// TCP ports of the container that accept new connections from outside (a web task's
    /// published UI port); every other inbound connection is dropped.
    pub ingress_ports: Vec<u16>,
    /// Host services the task reaches over TCP (its vault listener under `services.mode:
    /// tcp`): exactly these address and port pairs, private or not.
    pub host_services: Vec<SocketAddr>,
}

impl Policy {
    /// The policy of `profiles`, each domain turned into its addresses by `resolve`.
    pub fn from_profiles(
        profiles: &[Profile],
        resolve: &mut dyn FnMut(&str) -> Vec<IpAddr>,
    ) -> Self {
        let mut allowed = Vec::new();
        for destination in profiles.iter().flat_map(|p| &p.destinations) {
            match destination {
                Destination::Network(network) => allowed.push(*network),
                // A name is never a way into a private, link-local or metadata range.
                Destination::Domain(domain) => allowed.extend(
                    resolve(domain)
                        .into_iter()
                        .filter(|addr| !is_blocked(*addr))
                        .map(Network::host),
                ),
            }
        }
        allowed.sort();
        allowed.dedup();
        Self {
            allowed,
            denied: Vec::new(),
            resolvers: Vec::new(),
            audit: true,
            ingress_ports: Vec::new(),
            host_services: Vec::new(),
        }
    }
}

/// Seconds a refused destination stays in the `denied_v4`/`denied_v6` sets `shield status`
/// reads.
pub const DENIAL_MEMORY_SECS: u32 = 3600;

/// The ruleset of `policy`, as `nft -f` reads it. It first deletes an earlier version of the
/// table, so loading it again replaces the rules in one transaction.
pub fn ruleset(policy: &Policy) -> String {
    let (allow_v4, allow_v6) = split(&policy.allowed);
    let (deny_v4, deny_v6) = split(&policy.denied);
    let resolvers: Vec<Network> = policy
        .resolvers
        .iter()
        .copied()
        .map(Network::host)
        .collect();
    let (dns_v4, dns_v6) = split(&resolvers);
    let mut out = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    out.push_str(&set("dns_v4", "ipv4_addr", &dns_v4));
    out.push_str(&set("dns_v6", "ipv6_addr", &dns_v6));
    out.push_str(&set("allow_v4", "ipv4_addr", &allow_v4));
    out.push_str(&set("allow_v6", "ipv6_addr", &allow_v6));
    out.push_str(&set("deny_v4", "ipv4_addr", &deny_v4));
    out.push_str(&set("deny_v6", "ipv6_addr", &deny_v6));
    // Filled by the DNS forwarder with the addresses it answers for the profiles' domains.
    out.push_str("  set learned_v4 {\n    type ipv4_addr\n  }\n");
    out.push_str("  set learned_v6 {\n    type ipv6_addr\n  }\n");
    if policy.audit {
        for (name, kind) in [("denied_v4", "ipv4_addr"), ("denied_v6", "ipv6_addr")] {
            out.push_str(&format!(
                "  set {name} {{\n    type {kind} . inet_proto . inet_service\n    \
                 flags dynamic,timeout\n    timeout {DENIAL_MEMORY_SECS}s\n    size 4096\n  }}\n"
            ));
        }
    }
    let blocked_v4 = BLOCKED_V4.join(", ");
    let blocked_v6 = BLOCKED_V6.join(", ");
    out.push_str(concat!(
        "  chain output {\n    type filter hook output priority 0; policy drop;\n",
        "    oifname \"lo\" accept\n",
        // A live deny ends connections already made, too.
        "    ip daddr @deny_v4 goto refuse\n    ip6 daddr @deny_v6 goto refuse\n",
        "    ct state established,related accept\n",
        "    ip daddr @dns_v4 udp dport 53 accept\n    ip daddr @dns_v4 tcp dport 53 accept\n",
        "    ip6 daddr @dns_v6 udp dport 53 accept\n    ip6 daddr @dns_v6 tcp dport 53 accept\n",
    ));
    // One port of one host address each; every other port of those addresses is refused
    // before any allowed block could cover them (rootless, `10.0.2.2` is this host's whole
    // loopback).
    for service in &policy.host_services {
        let family = if service.is_ipv4() { "ip" } else { "ip6" };
        out.push_str(&format!(
            "    {family} daddr {} tcp dport {} accept\n",
            service.ip(),
            service.port()
        ));
    }
    let mut hosts: Vec<IpAddr> = policy.host_services.iter().map(SocketAddr::ip).collect();
    hosts.sort();
    hosts.dedup();
    for host in hosts {
        let family = if host.is_ipv4() { "ip" } else { "ip6" };
        out.push_str(&format!("    {family} daddr {host} goto refuse\n"));
    }
    out.push_str("    ip daddr @allow_v4 accept\n    ip6 daddr @allow_v6 accept\n");
    // What a name resolved to is never a private, link-local or metadata address.
    out.push_str(&format!(
        "    ip daddr {{ {blocked_v4} }} goto refuse\n    ip6 daddr {{ {blocked_v6} }} goto refuse\n"
    ));
    out.push_str(concat!(
        "    ip daddr @learned_v4 accept\n    ip6 daddr @learned_v6 accept\n",
        "    goto refuse\n  }\n",
        "  chain refuse {\n",
    ));
    if policy.audit {
        out.push_str(concat!(
            "    meta l4proto { tcp, udp } update @denied_v4 { ip daddr . meta l4proto . th dport }\n",
            "    meta l4proto { tcp, udp } update @denied_v6 { ip6 daddr . meta l4proto . th dport }\n",
            "    limit rate 5/second log prefix \"terok-shield deny: \" level info\n",
        ));
    }
    out.push_str(&format!(
        "    ip daddr {{ {blocked_v4} }} reject with icmp type admin-prohibited\n"
    ));
    out.push_str(&format!(
        "    ip6 daddr {{ {blocked_v6} }} reject with icmpv6 type admin-prohibited\n"
    ));
    out.push_str(concat!(
        "    meta l4proto tcp reject with tcp reset\n",
        "    reject with icmpx type admin-prohibited\n",
        "  }\n",
        "  chain input {\n    type filter hook input priority 0; policy drop;\n",
        "    iifname \"lo\" accept\n    ct state established,related accept\n",
    ));
    if !policy.ingress_ports.is_empty() {
        let ports: Vec<String> = policy.ingress_ports.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "    tcp dport {{ {} }} ct state new accept\n",
            ports.join(", ")
        ));
    }
    out.push_str("  }\n}\n");
    out
}

/// The `nft` script line that adds `addresses` to the DNS sets (what the launch hook appends
/// once it knows the container's resolvers); empty when there are none.
pub fn add_resolvers(addresses: &[IpAddr]) -> String {
    let networks: Vec<Network> = addresses.iter().copied().map(Network::host).collect();
    let (v4, v6) = split(&networks);
    let mut out = String::new();
    for (name, elements) in [("dns_v4", v4), ("dns_v6", v6)] {
        if !elements.is_empty() {
            out.push_str(&format!(
                "add element inet {TABLE} {name} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
    out
}

/// The IPv4 and IPv6 blocks of `networks`, as nftables writes them.
fn split(networks: &[Network]) -> (Vec<String>, Vec<String>) {
    let text = |n: &Network| {
        let full = if n.addr.is_ipv4() { 32 } else { 128 };
        if n.prefix == full {
            n.addr.to_string()
        } else {
            n.to_string()
        }
    };
    let v4 = networks.iter().filter(|n| n.addr.is_ipv4()).map(text);
    let v6 = networks.iter().filter(|n| n.addr.is_ipv6()).map(text);
    (v4.collect(), v6.collect())
}

/// A named set of address blocks (an empty set has no `elements` line: nftables refuses one).
fn set(name: &str, kind: &str, elements: &[String]) -> String {
    let mut out = format!("  set {name} {{\n    type {kind}\n    flags interval\n");
    if !elements.is_empty() {
        out.push_str(&format!("    elements = {{ {} }}\n", elements.join(", ")));
    }
    out.push_str("  }\n");
    out
}

/// Checks `nft -j list ruleset` output from a container's network namespace: terok's table is
/// there with both chains hooked and dropping by default — what the launch must see before
/// the agent starts.
pub fn verify_listing(listing: &str) -> Result<(), ShieldError> {
    let json: serde_json::Value = serde_json::from_str(listing)
        .map_err(|e| ShieldError::NotLoaded(format!("the listing is not JSON: {e}")))?;
    let items = json["nftables"]
        .as_array()
        .ok_or_else(|| ShieldError::NotLoaded("the listing has no `nftables` array".into()))?;
    let ours = |item: &serde_json::Value, kind: &str| {
        let value = &item[kind];
        value["family"] == "inet"
            && (value["name"] == TABLE && kind == "table" || value["table"] == TABLE)
    };
    if !items.iter().any(|item| ours(item, "table")) {
        return Err(ShieldError::NotLoaded(format!("no table inet {TABLE}")));
    }
    for hook in ["output", "input"] {
        let chain = items
            .iter()
            .filter(|item| ours(item, "chain"))
            .map(|item| &item["chain"])
            .find(|chain| chain["hook"] == hook);
        match chain {
            Some(chain) if chain["policy"] == "drop" => {}
            Some(chain) => {
                return Err(ShieldError::NotLoaded(format!(
                    "the {hook} chain's policy is {}, not drop",
                    chain["policy"]
                )));
            }
            None => {
                return Err(ShieldError::NotLoaded(format!(
                    "no chain on the {hook} hook"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let profile = Profile::parse("t", "t.txt", "pypi.org\n10.89.0.7\n2001:db8::/32\n").unwrap();
        let mut policy = Policy::from_profiles(&[profile], &mut |domain| {
            assert_eq!(domain, "pypi.org");
            vec!["151.101.0.223".parse().unwrap()]
        });
        policy.resolvers = vec!["10.89.0.1".parse().unwrap()];
        policy
    }

    #[test]
    fn a_host_service_opens_its_one_port_of_its_one_address() {
        let closed = ruleset(&policy());
        assert!(!closed.contains("10.88.0.1"), "{closed}");
        let mut tcp = policy();
        tcp.host_services = vec!["10.88.0.1:18703".parse().unwrap()];
        let text = ruleset(&tcp);
        let output = &text[text.find("chain output").unwrap()..text.find("chain refuse").unwrap()];
        let rule = "    ip daddr 10.88.0.1 tcp dport 18703 accept\n";
        let rest = "    ip daddr 10.88.0.1 goto refuse\n";
        assert_eq!(output.matches("10.88.0.1").count(), 2, "{output}");
        // After a live deny; the address's other ports refused before an allowed block
        // (`10.0.0.0/8` in a profile) or the private ranges could decide.
        let at = output.find(rule).unwrap();
        assert!(at > output.find("@deny_v4").unwrap(), "{output}");
        assert!(at < output.find(rest).unwrap(), "{output}");
        assert!(
            output.find(rest).unwrap() < output.find("@allow_v4 accept").unwrap(),
            "{output}"
        );
    }

    #[test]
    fn only_a_web_tasks_ui_port_takes_new_inbound_connections() {
        let closed = ruleset(&policy());
        let input = &closed[closed.find("chain input").unwrap()..];
        assert!(!input.contains("dport"), "{input}");
        let mut web = policy();
        web.ingress_ports = vec![8080];
        let text = ruleset(&web);
        let input = &text[text.find("chain input").unwrap()..];
        assert!(
            input.contains("tcp dport { 8080 } ct state new accept"),
            "{input}"
        );
        // The output chain is the same: an open UI port opens no way out.
        let output =
            |t: &str| t[t.find("chain output").unwrap()..t.find("chain input").unwrap()].to_owned();
        assert_eq!(output(&closed), output(&text));
    }

    #[test]
    fn the_ruleset_allows_the_policy_and_refuses_private_ranges_by_default() {
        let text = ruleset(&policy());
        assert!(
            text.contains("elements = { 10.89.0.7, 151.101.0.223 }"),
            "{text}"
        );
        assert!(text.contains("elements = { 2001:db8::/32 }"), "{text}");
        assert!(
            text.contains("ip daddr @dns_v4 udp dport 53 accept"),
            "{text}"
        );
        let dns = &text[text.find("set dns_v4").unwrap()..];
        assert!(
            dns[..dns.find('}').unwrap()].contains("10.89.0.1"),
            "{text}"
        );
        assert!(text.contains("policy drop;"), "{text}");
        for block in BLOCKED_V4.iter().chain(&BLOCKED_V6) {
            assert!(text.contains(block), "{block}");
        }
        // An allowed private address comes before the private reject.
        let allow = text.find("ip daddr @allow_v4 accept").unwrap();
        let private = text.find("10.0.0.0/8").unwrap();
        assert!(allow < private);
        // What is refused is remembered for `shield status`, unless audit is off.
        assert!(text.contains("update @denied_v4"), "{text}");
        let mut quiet = policy();
        quiet.audit = false;
        assert!(!ruleset(&quiet).contains("denied_v4"));
        // Empty sets carry no elements line.
        let deny_v4 = &text[text.find("set deny_v4").unwrap()..];
        assert!(!deny_v4[..deny_v4.find('}').unwrap()].contains("elements"));
    }

    #[test]
    fn names_never_lead_into_private_ranges_and_denials_end_open_connections() {
        let profile = Profile::parse("t", "t.txt", "lab.example.org\n10.89.0.7\n").unwrap();
        let policy = Policy::from_profiles(&[profile], &mut |_| {
            vec![
                "169.254.169.254".parse().unwrap(),
                "198.18.0.9".parse().unwrap(),
            ]
        });
        // The metadata address a name resolved to is dropped; a literal private one stays.
        assert_eq!(
            policy.allowed,
            [
                Network::parse("10.89.0.7").unwrap(),
                Network::parse("198.18.0.9").unwrap()
            ]
        );
        let text = ruleset(&policy);
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        assert!(at("ip daddr @deny_v4 goto refuse") < at("ct state established"));
        assert!(at("ip daddr @allow_v4 accept") < at("10.0.0.0/8, 100.64.0.0/10"));
        assert!(at("10.0.0.0/8, 100.64.0.0/10") < at("ip daddr @learned_v4 accept"));
        assert!(is_blocked("fd00:ec2::254".parse().unwrap()));
        assert!(!is_blocked("151.101.0.223".parse().unwrap()));
    }

    #[test]
    fn a_listing_without_the_table_or_with_an_accepting_chain_is_refused() {
        assert!(verify_listing(r#"{"nftables":[{"metainfo":{}}]}"#).is_err());
        let accepting = r#"{"nftables":[
            {"table":{"family":"inet","name":"terok_shield","handle":1}},
            {"chain":{"family":"inet","table":"terok_shield","name":"output","hook":"output","policy":"accept"}},
            {"chain":{"family":"inet","table":"terok_shield","name":"input","hook":"input","policy":"drop"}}]}"#;
        let err = verify_listing(accepting).unwrap_err();
        assert!(err.to_string().contains("output chain's policy"), "{err}");
        let good = accepting.replace("\"accept\"", "\"drop\"");
        verify_listing(&good).unwrap();
    }
}
