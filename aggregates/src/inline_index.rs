//! What an event changes in the indexes kept inside the append transaction. The event store
//! maintains them from exactly this, so that rules spanning streams hold under concurrency
//! without the domain touching a database: no two registrants share a live identifier, and a
//! member leaving a household (whose consent then no longer covers them) is visible to the very
//! next request. (The consent index is a read model of each consent's whole state, written in
//! the same statement, so a consent's events change nothing here.)

use crate::values::Identifier;

pub enum IndexChange<'a> {
    IdentifierClaimed(&'a Identifier),
    IdentifierReleased(&'a Identifier),
    /// An individual (by stream) became a current member of the group being appended to.
    MemberJoined(&'a str),
    /// An individual's current membership of that group ended.
    MemberLeft(&'a str),
}

pub trait InlineIndex {
    fn index_change(&self) -> Option<IndexChange<'_>>;
}
