//! The generated ruleset as the kernel takes it: loaded with the real `nft` into a network
//! namespace of its own (never the host's), listed back and verified. No packet is sent.

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::Write;
use std::process::{Command, Stdio};

use terok_shield::{
    BLOCKED_V4, BLOCKED_V6, Network, Policy, add_resolvers, ruleset, verify_listing,
};

/// Loads `script` into a fresh network namespace and returns `nft -j list ruleset` from it;
/// `None` when this process may not make one (not root), which CI never is.
fn load_in_own_netns(script: &str) -> Option<Result<String, String>> {
    if !terok_core::env::HostEnv::from_process().is_root() {
        assert!(
            !terok_core::env::HostEnv::from_process().is_ci(),
            "the nftables tests need root in CI"
        );
        // A skipped test must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: loading an nftables ruleset needs root ***\n"
        );
        return None;
    }
    let mut child = Command::new("unshare")
        .args(["--net", "sh", "-c", "nft -f - && nft -j list ruleset"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare and nft are installed (cargo xtask host-setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// An address block as the kernel lists it: a prefix, or a range of the first and last
/// address (adjacent blocks are merged into one).
#[derive(Debug, Clone, Copy)]
enum Listed {
    Prefix(Network),
    Range(std::net::IpAddr, std::net::IpAddr),
}

impl Listed {
    /// Whether every address of `block` is in this one.
    fn covers(&self, block: &Network) -> bool {
        match *self {
            Listed::Prefix(listed) => {
                listed.prefix <= block.prefix
                    && Network::new(block.addr, listed.prefix) == Some(listed)
            }
            Listed::Range(first, last) => {
                let bits = if block.addr.is_ipv4() { 32 } else { 128 };
                let as_u128 = |a: std::net::IpAddr| match a {
                    std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
                    std::net::IpAddr::V6(v6) => u128::from(v6),
                };
                let start = as_u128(block.addr);
                let span = if block.prefix == 0 {
                    u128::MAX
                } else {
                    (1u128 << (bits - u32::from(block.prefix))) - 1
                };
                first.is_ipv4() == block.addr.is_ipv4()
                    && as_u128(first) <= start
                    && start.saturating_add(span) <= as_u128(last)
            }
        }
    }
}

/// Every prefix and range in a listing.
fn blocks(value: &serde_json::Value, out: &mut Vec<Listed>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(prefix) = map.get("prefix")
                && let (Some(addr), Some(len)) = (prefix["addr"].as_str(), prefix["len"].as_u64())
            {
                out.extend(Network::new(addr.parse().unwrap(), len as u8).map(Listed::Prefix));
            }
            if let Some(range) = map.get("range").and_then(|r| r.as_array())
                && let (Some(first), Some(last)) = (range[0].as_str(), range[1].as_str())
            {
                out.push(Listed::Range(first.parse().unwrap(), last.parse().unwrap()));
            }
            map.values().for_each(|v| blocks(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| blocks(v, out)),
        _ => {}
    }
}

fn policy() -> Policy {
    Policy {
        allowed: vec![
            Network::parse("10.89.0.7").unwrap(),
            Network::parse("151.101.0.0/16").unwrap(),
            Network::parse("2001:db8::/32").unwrap(),
        ],
        denied: vec![Network::parse("151.101.64.0/18").unwrap()],
        resolvers: vec!["10.89.0.1".parse().unwrap()],
        audit: true,
        // A web task's UI port: real nft must take the inbound rule too.
        ingress_ports: vec![8080],
        // A TCP vault listener: real nft must take the host-service rule too.
        host_services: vec!["10.88.0.1:18703".parse().unwrap()],
    }
}

#[test]
fn the_kernel_takes_the_ruleset_and_it_verifies() {
    let Some(loaded) = load_in_own_netns(&ruleset(&policy())) else {
        return;
    };
    let listing = loaded.unwrap();
    verify_listing(&listing).unwrap();
    // Private, link-local and metadata ranges are refused — read from the rules, not tried.
    // The kernel may merge adjacent blocks (224.0.0.0/4 and 240.0.0.0/4 become 224.0.0.0/3).
    let mut listed = Vec::new();
    blocks(&serde_json::from_str(&listing).unwrap(), &mut listed);
    for block in BLOCKED_V4.iter().chain(&BLOCKED_V6) {
        let block = Network::parse(block).unwrap();
        assert!(
            listed.iter().any(|l| l.covers(&block)),
            "{block} is not refused: {listing}"
        );
    }
    assert!(listing.contains("10.89.0.7"), "{listing}");
    // The launch hook's resolvers join the DNS set in the same transaction.
    let with_dns = ruleset(&policy()) + &add_resolvers(&["10.0.2.3".parse().unwrap()]);
    let listing = load_in_own_netns(&with_dns).unwrap().unwrap();
    assert!(listing.contains("10.0.2.3"), "{listing}");
    // Loading again replaces the table in one go (a live allow or deny).
    let script = ruleset(&policy()).repeat(2);
    let again = load_in_own_netns(&script).unwrap().unwrap();
    verify_listing(&again).unwrap();
}

#[test]
fn an_empty_policy_loads_and_a_corrupted_ruleset_is_refused() {
    let Some(loaded) = load_in_own_netns(&ruleset(&Policy::default())) else {
        return;
    };
    verify_listing(&loaded.unwrap()).unwrap();
    let corrupted = ruleset(&policy()).replace("policy drop;", "policy dropp;");
    let err = load_in_own_netns(&corrupted).unwrap().unwrap_err();
    assert!(err.contains("dropp"), "{err}");
}
