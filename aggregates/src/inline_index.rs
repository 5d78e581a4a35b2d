//! What an event changes in the indexes kept inside the append transaction. The event store
//! maintains them from exactly this, so that rules spanning streams hold under concurrency
//! without the domain touching a database: no two registrants share a live identifier, a
//! withdrawal is visible to the very next request, and so is a member leaving a household (whose
//! consent then no longer covers them).

use chrono::NaiveDate;

use crate::consent::ConsentTerms;
use crate::values::Identifier;

pub enum IndexChange<'a> {
    IdentifierClaimed(&'a Identifier),
    IdentifierReleased(&'a Identifier),
    ConsentGiven(&'a ConsentTerms),
    ConsentWithdrawn,
    ConsentRenewed(NaiveDate),
    /// An individual (by stream) became a current member of the group being appended to.
    MemberJoined(&'a str),
    /// An individual's current membership of that group ended.
    MemberLeft(&'a str),
}

pub trait InlineIndex {
    fn index_change(&self) -> Option<IndexChange<'_>>;
}
