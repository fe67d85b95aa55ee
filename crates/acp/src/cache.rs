//! The models each agent offers, remembered per image, credential identity and agent: a probe
//! starts the agent's ACP server in the container, so the answer is kept for every later
//! session of the daemon. A failed probe is never remembered.

use std::collections::HashMap;
use std::sync::Mutex;

/// Which models an agent offers depends on its image (the installed version), on whose
/// credential it runs, and on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The image's id.
    pub image: String,
    /// Whose credential the agent runs with (`global` for the one credential set today).
    pub identity: String,
    /// The agent.
    pub agent: String,
}

impl CacheKey {
    /// The key of `agent` on `image` for `identity`.
    pub fn new(image: &str, identity: &str, agent: &str) -> Self {
        Self {
            image: image.to_owned(),
            identity: identity.to_owned(),
            agent: agent.to_owned(),
        }
    }
}

/// A thread-safe map from [`CacheKey`] to the agent's model ids (an empty list is a valid
/// answer: the agent runs but offers no model choice).
#[derive(Debug, Default)]
pub struct ModelCache {
    entries: Mutex<HashMap<CacheKey, Vec<String>>>,
}

impl ModelCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The models remembered for `key`.
    pub fn get(&self, key: &CacheKey) -> Option<Vec<String>> {
        self.lock().get(key).cloned()
    }

    /// Remembers `models` for `key`, replacing what was there.
    pub fn put(&self, key: CacheKey, models: Vec<String>) {
        self.lock().insert(key, models);
    }

    /// Forgets every entry of `identity` (its credential changed); other identities stay.
    pub fn invalidate_identity(&self, identity: &str) {
        self.lock().retain(|key, _| key.identity != identity);
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Vec<String>>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn key(image: &str, identity: &str, agent: &str) -> CacheKey {
        CacheKey::new(image, identity, agent)
    }

    #[test]
    fn a_miss_is_none_and_a_put_is_found() {
        let cache = ModelCache::new();
        assert_eq!(cache.get(&key("img", "global", "claude")), None);
        cache.put(key("img", "global", "claude"), vec!["sonnet".into()]);
        assert_eq!(
            cache.get(&key("img", "global", "claude")),
            Some(vec!["sonnet".to_owned()])
        );
    }

    #[test]
    fn a_put_replaces() {
        let cache = ModelCache::new();
        cache.put(key("img", "global", "claude"), vec!["a".into()]);
        cache.put(key("img", "global", "claude"), vec!["b".into()]);
        assert_eq!(
            cache.get(&key("img", "global", "claude")),
            Some(vec!["b".to_owned()])
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn an_empty_list_is_a_hit() {
        let cache = ModelCache::new();
        cache.put(key("img", "global", "vibe"), Vec::new());
        assert_eq!(cache.get(&key("img", "global", "vibe")), Some(Vec::new()));
    }

    #[test]
    fn invalidating_an_identity_keeps_the_others() {
        let cache = ModelCache::new();
        cache.put(key("img", "alice", "claude"), vec!["a".into()]);
        cache.put(key("img", "alice", "codex"), vec!["b".into()]);
        cache.put(key("img", "bob", "claude"), vec!["c".into()]);
        cache.invalidate_identity("alice");
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.get(&key("img", "bob", "claude")),
            Some(vec!["c".to_owned()])
        );
        assert!(cache.get(&key("img", "alice", "claude")).is_none());
    }

    #[test]
    fn entries_are_per_image() {
        let cache = ModelCache::new();
        cache.put(key("old", "global", "claude"), vec!["a".into()]);
        assert_eq!(cache.get(&key("new", "global", "claude")), None);
    }

    #[test]
    fn threads_share_one_cache() {
        let cache = Arc::new(ModelCache::new());
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for m in 0..50 {
                        cache.put(
                            key("img", "global", &format!("agent{n}")),
                            vec![m.to_string()],
                        );
                        let _ = cache.get(&key("img", "global", "agent0"));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(cache.len(), 8);
        assert!(!cache.is_empty());
        assert_eq!(
            cache.get(&key("img", "global", "agent7")),
            Some(vec!["49".to_owned()])
        );
    }
}
