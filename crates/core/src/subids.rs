//! The host's subordinate ids (`/etc/subuid`, `/etc/subgid`) and accounts (`/etc/passwd`,
//! `/etc/group`): the range rootful containers' users live in, reserved under terok's name so
//! that `useradd` never hands it to an account.

use std::path::Path;

/// Ids a container uses (0–65535): the size of terok's range.
pub const CONTAINER_IDS: u32 = 65_536;
/// The name of terok's entry in `/etc/subuid` and `/etc/subgid`.
pub const RESERVATION_NAME: &str = "terok";
/// Where a subordinate range may start (below are accounts and `useradd`'s own first range).
const FIRST_START: u32 = 100_000;

/// A range of host ids, `start .. start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

impl IdRange {
    /// Whether `id` lies in the range.
    pub fn contains(&self, id: u32) -> bool {
        id >= self.start && u64::from(id) < u64::from(self.start) + u64::from(self.count)
    }

    fn overlaps(&self, other: &IdRange) -> bool {
        let end = u64::from(self.start) + u64::from(self.count);
        let other_end = u64::from(other.start) + u64::from(other.count);
        u64::from(self.start) < other_end && u64::from(other.start) < end
    }
}

/// The `terok` entry of `/etc/subuid`-style text (`name:start:count` lines), when it has room
/// for a whole container.
pub fn reserved_range(subid: &str) -> Option<IdRange> {
    subid_entries(subid)
        .find(|(name, range)| *name == RESERVATION_NAME && range.count >= CONTAINER_IDS)
        .map(|(_, range)| range)
}

/// The first range of [`CONTAINER_IDS`] ids from 100000 on (in steps of 65536) that overlaps
/// no entry of `subuid` or `subgid` and no id of an account in `passwd` or group in `group`.
pub fn free_range(subuid: &str, subgid: &str, passwd: &str, group: &str) -> IdRange {
    let taken: Vec<IdRange> = subid_entries(subuid)
        .chain(subid_entries(subgid))
        .map(|(_, range)| range)
        .chain(
            account_ids(passwd)
                .chain(account_ids(group))
                .map(|id| IdRange {
                    start: id,
                    count: 1,
                }),
        )
        .collect();
    let mut start = FIRST_START;
    loop {
        let candidate = IdRange {
            start,
            count: CONTAINER_IDS,
        };
        if !taken.iter().any(|t| t.overlaps(&candidate)) || start > u32::MAX - 2 * CONTAINER_IDS {
            return candidate;
        }
        start += CONTAINER_IDS;
    }
}

/// The `/etc/subuid` and `/etc/subgid` line that reserves `range` for terok.
pub fn reservation_line(range: IdRange) -> String {
    format!("{RESERVATION_NAME}:{}:{}\n", range.start, range.count)
}

/// The uids (third field) of `/etc/passwd`-style text, or the gids of `/etc/group`.
pub fn account_ids(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(':').nth(2)?.trim().parse().ok())
}

fn subid_entries(text: &str) -> impl Iterator<Item = (&str, IdRange)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let name = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some((name, IdRange { start, count }))
        })
}

/// The range terok's container ids live in, and whether `/etc/subuid` reserves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdReservation {
    /// The range.
    pub range: IdRange,
    /// Whether `subuid` and `subgid` hold it under terok's name (otherwise it is merely free
    /// today, and an account or range added later could take it).
    pub reserved: bool,
}

/// The host's id files, as text (missing files are empty).
#[derive(Debug, Clone, Default)]
struct IdFiles {
    subuid: String,
    subgid: String,
    passwd: String,
    group: String,
}

impl IdFiles {
    fn read(dir: &Path) -> Self {
        let read = |name: &str| fs_err::read_to_string(dir.join(name)).unwrap_or_default();
        Self {
            subuid: read("subuid"),
            subgid: read("subgid"),
            passwd: read("passwd"),
            group: read("group"),
        }
    }
}

/// The range in `dir`'s `subuid`/`subgid` (`/etc`), or the first free one.
pub fn id_reservation(dir: &Path) -> IdReservation {
    let files = IdFiles::read(dir);
    match (reserved_range(&files.subuid), reserved_range(&files.subgid)) {
        (Some(uids), Some(gids)) if uids == gids => IdReservation {
            range: uids,
            reserved: true,
        },
        _ => IdReservation {
            range: free_range(&files.subuid, &files.subgid, &files.passwd, &files.group),
            reserved: false,
        },
    }
}

/// Reserves `range` for terok in `dir`'s `subuid` and `subgid`, keeping what they hold.
pub fn reserve_ids(dir: &Path, range: IdRange) -> Result<(), crate::secure_fs::SecureFsError> {
    for name in ["subuid", "subgid"] {
        let path = dir.join(name);
        let mut text = fs_err::read_to_string(&path).unwrap_or_default();
        if reserved_range(&text).is_some() {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&reservation_line(range));
        crate::secure_fs::write_atomic(&path, text.as_bytes(), 0o644)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "alice:100000:65536\nbob:165536:65536\n";

    #[test]
    fn the_reserved_range_is_terok_s_entry_when_it_is_large_enough() {
        assert_eq!(reserved_range(SUBUID), None);
        let text = format!("{SUBUID}terok:300000:65536\n");
        assert_eq!(
            reserved_range(&text),
            Some(IdRange {
                start: 300_000,
                count: 65_536
            })
        );
        assert_eq!(reserved_range("terok:300000:1000\n"), None);
    }

    #[test]
    fn a_free_range_avoids_other_ranges_and_accounts() {
        let passwd = "root:x:0:0::/root:/bin/sh\nodd:x:231073:231073::/:/bin/sh\n";
        let range = free_range(SUBUID, "", passwd, "");
        // 100000 and 165536 are taken by alice and bob, 231072 holds an account.
        assert_eq!(range.start, 296_608);
    }

    #[test]
    fn a_reservation_is_added_once_and_keeps_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("subuid"), "alice:100000:65536").unwrap();
        fs_err::write(dir.path().join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let found = id_reservation(dir.path());
        assert!(!found.reserved);
        assert_eq!(found.range.start, 165_536);
        reserve_ids(dir.path(), found.range).unwrap();
        reserve_ids(dir.path(), found.range).unwrap();
        assert_eq!(
            fs_err::read_to_string(dir.path().join("subuid")).unwrap(),
            "alice:100000:65536\nterok:165536:65536\n"
        );
        assert_eq!(
            fs_err::read_to_string(dir.path().join("subgid")).unwrap(),
            "terok:165536:65536\n"
        );
        let again = id_reservation(dir.path());
        assert!(again.reserved);
        assert_eq!(again.range, found.range);
    }
}
