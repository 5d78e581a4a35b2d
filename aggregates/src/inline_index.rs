//! What an event changes in the indexes kept inside the append transaction. The event store
//! maintains them from exactly this, so that rules spanning streams hold under concurrency
//! without the domain touching a database: no two registrants share a live identifier, and a
//! withdrawal is visible to the very next request.

use chrono::NaiveDate;

use crate::consent::ConsentTerms;
use crate::values::Identifier;

pub enum IndexChange<'a> {
    IdentifierClaimed(&'a Identifier),
    IdentifierReleased(&'a Identifier),
    ConsentGiven(&'a ConsentTerms),
    ConsentWithdrawn,
    ConsentRenewed(NaiveDate),
}

pub trait InlineIndex {
    fn index_change(&self) -> Option<IndexChange<'_>>;
}
