//! The host ids a rootful container's users map to: the container's `dev` becomes an
//! unprivileged host user, every other container id lands in terok's subordinate range (see
//! `terok_core::subids`) — so nothing the container writes is owned by host root or by someone
//! else's account.

pub use terok_core::subids::{CONTAINER_IDS, IdRange};

/// The container's `dev` user and group.
pub const DEV_ID: u32 = 1000;

/// Who the container's users are on the host, rootful: `dev` is `dev_uid:dev_gid`, every
/// other container id `n` is `range.start + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootfulIds {
    /// The host uid of `dev`.
    pub dev_uid: u32,
    /// The host gid of `dev`.
    pub dev_gid: u32,
    /// The subordinate range (container id `n` is `start + n`, but for `dev`).
    pub range: IdRange,
}

impl RootfulIds {
    /// The uid map: `(container, host, count)` triples.
    pub fn uid_map(&self) -> [(u32, u32, u32); 3] {
        self.map(self.dev_uid)
    }

    /// The gid map: `(container, host, count)` triples.
    pub fn gid_map(&self) -> [(u32, u32, u32); 3] {
        self.map(self.dev_gid)
    }

    fn map(&self, dev: u32) -> [(u32, u32, u32); 3] {
        let start = self.range.start;
        [
            (0, start, DEV_ID),
            (DEV_ID, dev, 1),
            (DEV_ID + 1, start + DEV_ID + 1, CONTAINER_IDS - DEV_ID - 1),
        ]
    }

    /// The host uid container uid `id` runs as.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        translate(&self.uid_map(), id)
    }

    /// podman's `--uidmap` and `--gidmap` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, map) in [("--uidmap", self.uid_map()), ("--gidmap", self.gid_map())] {
            for (container, host, count) in map {
                args.push(flag.to_owned());
                args.push(format!("{container}:{host}:{count}"));
            }
        }
        args
    }
}

fn translate(map: &[(u32, u32, u32)], id: u32) -> Option<u32> {
    map.iter()
        .find(|(container, _, count)| id >= *container && id - container < *count)
        .map(|(container, host, _)| host + (id - container))
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_core::subids::{account_ids, free_range, reserved_range};

    /// Nothing but `dev` maps onto an account of this host, and nothing maps onto root.
    #[test]
    fn no_container_id_but_dev_maps_onto_an_account_of_this_host() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        let subgid = std::fs::read_to_string("/etc/subgid").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let range = reserved_range(&subuid)
            .unwrap_or_else(|| free_range(&subuid, &subgid, &passwd, &group));
        let accounts: Vec<u32> = account_ids(&passwd).collect();
        let ids = RootfulIds {
            dev_uid: 1000,
            dev_gid: 1000,
            range,
        };
        for id in 0..CONTAINER_IDS {
            let host = ids.host_uid(id).unwrap();
            assert_ne!(host, 0, "container uid {id} is host root");
            if id != DEV_ID {
                assert!(
                    !accounts.contains(&host),
                    "container uid {id} is the host account {host}"
                );
                assert!(range.contains(host));
            }
        }
        assert_eq!(ids.host_uid(DEV_ID), Some(1000));
        assert_eq!(ids.host_uid(CONTAINER_IDS), None);
    }

    #[test]
    fn podman_gets_three_ranges_per_map() {
        let ids = RootfulIds {
            dev_uid: 1001,
            dev_gid: 1002,
            range: IdRange {
                start: 300_000,
                count: CONTAINER_IDS,
            },
        };
        assert_eq!(
            ids.args().join(" "),
            "--uidmap 0:300000:1000 --uidmap 1000:1001:1 --uidmap 1001:301001:64535 \
             --gidmap 0:300000:1000 --gidmap 1000:1002:1 --gidmap 1001:301001:64535"
        );
    }
}
