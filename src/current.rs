//! A value that is replaced whole, never changed in place: the vocabularies and extensions a
//! server holds, which `catalog_sync` reloads when an operator changes them.

use std::sync::{Arc, RwLock};

/// A catalog as of its last load: readers take the current one whole (an `Arc`, cheap to
/// clone), and a reload swaps in the next; nobody ever sees a half-updated catalog.
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    pub fn get(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, value: T) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(value);
    }
}
