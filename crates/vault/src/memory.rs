//! Giving memory back after a burst of connections: glibc's allocator keeps the pages that a
//! thousand closed connections freed in the middle of its heap, so without this a daemon's
//! resident memory stays at the high-water mark of its busiest moment.
//!
//! Every connection a listener serves is counted here; when the open connections fall well
//! below their peak, a background task asks the allocator to return its free pages
//! (`malloc_trim`), once the wave of closing connections has passed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How far the open connections must fall below their peak before memory is given back: a
/// handful of agents' connections coming and going never costs a release.
const RELEASE_AFTER_FALL: usize = 64;

/// A release waits until no connection has closed for this long, so that one release covers
/// the whole wave of closing connections and its memory is free by then...
const SETTLE: Duration = Duration::from_millis(300);

/// ...but no longer than this after the fall, so connections coming and going all the time
/// do not put it off for ever.
const MOST_WAIT: Duration = Duration::from_secs(5);

/// Open connections of this process, and their peak since memory was last given back.
pub(crate) struct ConnectionGauge {
    open: AtomicUsize,
    peak: AtomicUsize,
    fallen: Notify,
}

/// Every listener of this process counts its connections here.
pub(crate) static CONNECTIONS: ConnectionGauge = ConnectionGauge::new();

impl ConnectionGauge {
    const fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            fallen: Notify::const_new(),
        }
    }

    /// Counts a connection until the returned guard drops.
    pub(crate) fn opened(&'static self) -> OpenConnection {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        OpenConnection(self)
    }

    fn closed(&self) {
        let now = self.open.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        if self.peak.load(Ordering::Relaxed) >= now + RELEASE_AFTER_FALL {
            self.fallen.notify_one();
        }
    }

    /// Whether the connections fell far below their peak; the peak starts again from now.
    fn take_fall(&self) -> bool {
        let now = self.open.load(Ordering::Relaxed);
        let peak = self.peak.swap(now, Ordering::Relaxed);
        peak >= now + RELEASE_AFTER_FALL
    }
}

/// One counted connection: dropping it counts the connection closed.
pub(crate) struct OpenConnection(&'static ConnectionGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// Runs for the life of the daemon: after every burst of connections has closed, hands the
/// allocator's free pages back to the system (on a blocking thread: the allocator locks its
/// arenas while it walks them).
pub(crate) async fn release_after_bursts() {
    loop {
        CONNECTIONS.fallen.notified().await;
        settle().await;
        if CONNECTIONS.take_fall() {
            let released = tokio::task::spawn_blocking(release_free_pages).await;
            tracing::debug!(
                ?released,
                "gave free memory back after a burst of connections"
            );
        }
    }
}

/// Waits until connections stop closing (see [`SETTLE`] and [`MOST_WAIT`]).
async fn settle() {
    let most = tokio::time::sleep(MOST_WAIT);
    tokio::pin!(most);
    loop {
        tokio::select! {
            _ = &mut most => return,
            _ = tokio::time::sleep(SETTLE) => return,
            _ = CONNECTIONS.fallen.notified() => {}
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "the workspace's one foreign call (docs/decisions.md, 'One unsafe declaration')"
)]
mod glibc {
    unsafe extern "C" {
        /// glibc's `malloc_trim(3)`: returns the whole free pages of every arena to the
        /// system. It takes no pointer and locks each arena while it walks it, so it is safe
        /// to call from any thread at any time.
        pub safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
}

/// Returns the allocator's free pages to the system; whether any were returned. Only glibc's
/// allocator keeps them: elsewhere there is nothing to do.
pub fn release_free_pages() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return glibc::malloc_trim(0) == 1;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    return false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> &'static ConnectionGauge {
        Box::leak(Box::new(ConnectionGauge::new()))
    }

    #[test]
    fn a_few_connections_coming_and_going_release_nothing() {
        let gauge = gauge();
        for _ in 0..1_000 {
            let open: Vec<_> = (0..RELEASE_AFTER_FALL - 1)
                .map(|_| gauge.opened())
                .collect();
            drop(open);
        }
        assert!(!gauge.take_fall());
    }

    #[test]
    fn a_burst_that_closed_releases_once() {
        let gauge = gauge();
        let steady: Vec<_> = (0..10).map(|_| gauge.opened()).collect();
        let burst: Vec<_> = (0..1_000).map(|_| gauge.opened()).collect();
        drop(burst);
        assert!(gauge.take_fall(), "a thousand closed connections");
        assert!(
            !gauge.take_fall(),
            "the peak starts again from the ten left open"
        );
        drop(steady);
    }

    #[test]
    fn a_burst_still_open_releases_nothing() {
        let gauge = gauge();
        let burst: Vec<_> = (0..1_000).map(|_| gauge.opened()).collect();
        assert!(!gauge.take_fall());
        drop(burst);
    }

    #[test]
    fn freed_pages_go_back_to_the_system() {
        // Three of every four page-sized blocks freed: whole free pages in the middle of the
        // heap, below the live fourth blocks, which only a trim returns.
        let mut blocks: Vec<Option<Vec<u8>>> = (0..20_000).map(|_| Some(vec![1u8; 4000])).collect();
        for (n, block) in blocks.iter_mut().enumerate() {
            if n % 4 != 3 {
                *block = None;
            }
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(release_free_pages());
        drop(blocks);
    }
}
