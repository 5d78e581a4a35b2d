//! The write side: load a stream, let the aggregate decide, append its events atomically with
//! everything that must never be stale (identifier claims, hash chain), and tell the projector.
//!
//! cqrs-es supplies the `Aggregate`/`EventSink` contract; this module owns the append
//! transaction because postgres-es offers no hook into it (stack.md §2.10) and has no global
//! position, expected version or retry.

pub mod claims;
mod executor;
pub mod hash_chain;
pub mod history;
pub mod metadata;
pub mod verify;

pub use executor::{Committed, EventStore, StoreError};
pub use metadata::CommandMetadata;
pub use openspp_projections::EVENTS_CHANNEL;
