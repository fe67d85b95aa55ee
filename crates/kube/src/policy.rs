//! The egress NetworkPolicy: default deny, then the cluster's DNS and each destination the
//! task needs. A NetworkPolicy selects Pods, not containers, and addresses, not names: what
//! the vault sidecar must reach (the providers' upstreams) the agent's container can reach
//! too — with a phantom token only — and a destination known by name is allowed on its port
//! at every public address (docs/scale.md §4).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pod::metadata;
use crate::{POD_LABEL, TaskPod};

/// Addresses that are never "public": a name is not allowed to lead into them (private,
/// shared, loopback, link-local, benchmarking, documentation, IETF and multicast/reserved
/// blocks; for IPv6 also the translation prefixes that lead into IPv4's).
const NOT_PUBLIC_V4: [&str; 13] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
];
const NOT_PUBLIC_V6: [&str; 12] = [
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Where the Pod's traffic may go besides the cluster's DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Egress {
    /// Only these destinations (the shield's `offline` and `allowlist`).
    Listed(Vec<Destination>),
    /// Anywhere (the shield's `open`).
    Open,
}

impl Default for Egress {
    fn default() -> Self {
        Self::Listed(Vec::new())
    }
}

/// One destination the Pod may reach.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    /// An address or prefix (`198.51.100.7/32`, `2001:db8::/32`), on `port` or every port.
    Block {
        /// CIDR.
        cidr: String,
        /// TCP port, or every port.
        port: Option<u16>,
    },
    /// A name: its TCP port at every public address.
    Named {
        /// The name (kept in an annotation, for a CNI that enforces names).
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// The annotation listing the names behind `Named` destinations.
pub const NAMES_ANNOTATION: &str = "terok.dev/egress-names";

/// The NetworkPolicy of `task`.
pub(crate) fn network_policy(task: &TaskPod) -> NetworkPolicy {
    let mut metadata = metadata(task, format!("{}-egress", task.name));
    let destinations: &[Destination] = match &task.egress {
        Egress::Listed(destinations) => destinations,
        Egress::Open => &[],
    };
    let names: Vec<String> = destinations
        .iter()
        .filter_map(|d| match d {
            Destination::Named { host, port } => Some(format!("{host}:{port}")),
            Destination::Block { .. } => None,
        })
        .collect();
    if !names.is_empty() {
        metadata.annotations = Some(BTreeMap::from([(
            NAMES_ANNOTATION.to_owned(),
            names.join(","),
        )]));
    }
    let egress = match task.egress {
        Egress::Open => vec![NetworkPolicyEgressRule::default()],
        Egress::Listed(_) => {
            let mut rules = vec![dns_rule()];
            rules.extend(destinations.iter().map(rule));
            rules
        }
    };
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(POD_LABEL.to_owned(), task.name.clone())])),
                match_expressions: None,
            }),
            // No ingress rule: nothing in the cluster connects to the task.
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            egress: Some(egress),
            ingress: None,
        }),
    }
}

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some("TCP".to_owned()),
        port: Some(IntOrString::Int(i32::from(port))),
        end_port: None,
    }
}

/// Port 53 (UDP and TCP) of the cluster's DNS Pods, in `kube-system` only (a Pod labelled
/// like them elsewhere is not the cluster's DNS).
fn dns_rule() -> NetworkPolicyEgressRule {
    let dns_pods = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "k8s-app".to_owned(),
            "kube-dns".to_owned(),
        )])),
        match_expressions: None,
    };
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "kube-system".to_owned(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(dns_pods),
            ip_block: None,
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|protocol| NetworkPolicyPort {
                    protocol: Some(protocol.to_owned()),
                    port: Some(IntOrString::Int(53)),
                    end_port: None,
                })
                .collect(),
        ),
    }
}

fn block(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(except.iter().map(|e| (*e).to_owned()).collect())
                .filter(|e: &Vec<String>| !e.is_empty()),
        }),
        namespace_selector: None,
        pod_selector: None,
    }
}

fn rule(destination: &Destination) -> NetworkPolicyEgressRule {
    match destination {
        Destination::Block { cidr, port } => NetworkPolicyEgressRule {
            to: Some(vec![block(cidr, &[])]),
            ports: port.map(|p| vec![tcp(p)]),
        },
        Destination::Named { port, .. } => NetworkPolicyEgressRule {
            to: Some(vec![
                block("0.0.0.0/0", &NOT_PUBLIC_V4),
                block("::/0", &NOT_PUBLIC_V6),
            ]),
            ports: Some(vec![tcp(*port)]),
        },
    }
}
