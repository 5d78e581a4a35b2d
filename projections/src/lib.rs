//! Read models of the registry, built only from the event feed, and the queries the server
//! runs against them. Every table here can be dropped and rebuilt by replaying the events.

pub mod checkpoint;
pub mod consent;
pub mod extension;
pub mod feed;
mod fold;
pub mod group;
pub mod individual;
pub mod membership;
pub mod program;
pub mod runner;
pub mod search;
pub mod view;

pub use checkpoint::CheckpointWatch;
pub use feed::{FeedPosition, StoredEvent};

/// The name of the projector that maintains the registry read models.
pub const REGISTRY_PROJECTION: &str = "registry";
/// Notified by every append transaction on commit; wakes the projector.
pub const EVENTS_CHANNEL: &str = "openspp_events";
/// Notified (payload `tx_id:position`) each time a projector commits a batch.
pub const CHECKPOINT_CHANNEL: &str = "openspp_checkpoint";
