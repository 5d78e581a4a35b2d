//! Which events claim or release an identifier. The event store keeps a unique table of live
//! identifiers inside the append transaction from exactly this, so uniqueness across
//! registrants holds under concurrency without the domain touching a database.

use crate::values::Identifier;

pub enum IdentifierChange<'a> {
    Claimed(&'a Identifier),
    Released(&'a Identifier),
}

pub trait ClaimsIdentifiers {
    fn identifier_change(&self) -> Option<IdentifierChange<'_>>;
}
