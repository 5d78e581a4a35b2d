//! What authentication keeps in memory so that a request costs no database round trip: API
//! clients by id, and tokens whose signature and claims were already verified.
//!
//! Both are copies of shared truth, so they follow DESIGN's rule for such caches: every change
//! is announced in the transaction that makes it (triggers on `api_clients` and
//! `signing_keys`), and `changes::follow` applies each announcement before it confirms a CLI
//! command's ping, so a change takes effect on the next request after the command returns.
//! While this process is not listening (starting, or after losing the connection), it cannot
//! know what it missed: the caches are then neither read nor filled, and every request reads the
//! database, until the listener is back and the caches have been emptied.
//!
//! Filling races with invalidation: a request may read a client just before a change commits
//! and try to store it just after the announcement was applied. Each cache therefore has an
//! epoch, bumped under the same lock by every invalidation; a value is stored only if the epoch
//! is still the one read before the database was.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::auth::token::Claims;

/// A client as the request path needs it (`api_clients`, without the secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRecord {
    pub organization: String,
    pub organization_type: String,
    pub scopes: Vec<String>,
    pub allowed_programs: Vec<String>,
    pub field_filter: Vec<String>,
    pub require_consent: bool,
    pub legal_basis: Option<String>,
    pub rate_limit_per_minute: i32,
    pub rate_limit_per_day: i32,
    pub active: bool,
    pub secret_version: i32,
}

/// A token that verified: its claims, the key that signed it, and until when (Unix seconds,
/// leeway included) it stays valid.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: Claims,
    pub kid: String,
    pub valid_until: u64,
}

/// Entries a cache holds before it starts over (tokens are ~0.5 kB; clients are few).
const CAPACITY: usize = 10_000;

/// A map with an invalidation epoch (see the module comment).
pub struct EpochCache<V> {
    inner: RwLock<Inner<V>>,
}

struct Inner<V> {
    epoch: u64,
    map: HashMap<String, V>,
}

impl<V: Clone> Default for EpochCache<V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner {
                epoch: 0,
                map: HashMap::new(),
            }),
        }
    }
}

impl<V: Clone> EpochCache<V> {
    pub fn get(&self, key: &str) -> Option<V> {
        self.inner.read().expect("cache lock").map.get(key).cloned()
    }

    /// Read before the database is, and handed back to `insert`.
    pub fn epoch(&self) -> u64 {
        self.inner.read().expect("cache lock").epoch
    }

    /// Stores `value` unless something was invalidated since `epoch` was read.
    pub fn insert(&self, epoch: u64, key: &str, value: V) {
        let mut inner = self.inner.write().expect("cache lock");
        if inner.epoch != epoch {
            return;
        }
        if inner.map.len() >= CAPACITY {
            inner.map.clear();
        }
        inner.map.insert(key.to_owned(), value);
    }

    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.write().expect("cache lock");
        inner.epoch += 1;
        inner.map.remove(key);
    }

    pub fn clear(&self) {
        let mut inner = self.inner.write().expect("cache lock");
        inner.epoch += 1;
        inner.map.clear();
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("cache lock").map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caches and whether they may be used now.
#[derive(Default)]
pub struct AuthCaches {
    live: AtomicBool,
    /// `None` = no such client (a validly signed token can name one only if it was deleted).
    pub clients: EpochCache<Option<Arc<ClientRecord>>>,
    pub tokens: EpochCache<Arc<VerifiedToken>>,
}

impl AuthCaches {
    /// Whether every change is being heard, so cached entries can be trusted.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The listener is gone: stop trusting (and filling) the caches.
    pub fn go_stale(&self) {
        self.live.store(false, Ordering::Release);
        self.clients.clear();
        self.tokens.clear();
    }

    /// The listener is back: whatever was missed is forgotten before the caches are used again.
    pub fn go_live(&self) {
        self.clients.clear();
        self.tokens.clear();
        self.live.store(true, Ordering::Release);
    }

    pub fn client_changed(&self, client_id: &str) {
        self.clients.remove(client_id);
    }

    /// A key was added or retired: tokens verified under the old key set are verified again.
    pub fn keys_changed(&self) {
        self.tokens.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_between_read_and_store_wins() {
        let cache: EpochCache<u32> = EpochCache::default();
        let epoch = cache.epoch();
        cache.remove("a");
        cache.insert(epoch, "a", 1);
        assert_eq!(
            cache.get("a"),
            None,
            "a value read before the change is not kept"
        );
        let epoch = cache.epoch();
        cache.insert(epoch, "a", 2);
        assert_eq!(cache.get("a"), Some(2));
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn stale_caches_are_emptied_both_ways() {
        let caches = AuthCaches::default();
        assert!(!caches.live(), "not trusted before the listener is up");
        caches.go_live();
        let epoch = caches.clients.epoch();
        caches.clients.insert(epoch, "c", None);
        caches.go_stale();
        assert!(!caches.live());
        assert!(caches.clients.is_empty());
        caches.clients.insert(epoch, "c", None);
        assert!(
            caches.clients.is_empty(),
            "a fill begun before the loss is dropped"
        );
    }
}
