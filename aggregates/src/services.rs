//! What the aggregates consult while deciding: vocabularies, registered extensions and today's
//! date. Injected so the domain stays pure and its tests deterministic.

use std::sync::Arc;

use chrono::NaiveDate;

use crate::extension::ExtensionSchemas;
use crate::vocabulary::Vocabulary;

pub trait Clock: Send + Sync {
    fn today(&self) -> NaiveDate;
}

/// Today in UTC.
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        chrono::Utc::now().date_naive()
    }
}

#[derive(Clone)]
pub struct RegistryServices {
    pub vocabulary: Arc<dyn Vocabulary>,
    /// What `extension.<uri>` may hold, per registered extension.
    pub extensions: Arc<dyn ExtensionSchemas>,
    pub clock: Arc<dyn Clock>,
}
