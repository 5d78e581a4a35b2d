//! Read models of the registry and the queries the server runs against them, the event log's
//! readers and its one fold, and the gap-free feed. Every read model is written inside the
//! append statement of the events that change it (`inline.rs`), from the state those events
//! produced, by the same function a rebuild from the log uses (`rows.rs`).

pub mod begin;
pub mod checkpoint;
pub mod consent;
pub mod delivery;
pub mod error;
pub mod events;
pub mod extension;
pub mod feed;
pub mod group;
pub mod household;
pub mod identifier_claims;
pub mod individual;
pub mod inline;
pub mod lane;
pub mod membership;
pub mod membership_index;
pub mod newest;
pub mod product;
pub mod program;
pub mod rebuild;
pub mod rows;
pub mod runner;
pub mod search;
pub mod service_point;
pub mod statement;
pub mod statistics;
pub mod together;
pub mod view;

pub use checkpoint::CheckpointWatch;
pub use error::{ProjectionError, RebuildError, Undecodable};
pub use events::FeedPosition;
pub use events::{Fold, StoredEvent};

/// The name of the registry's feed cursor (`projection_checkpoints`).
pub const REGISTRY_PROJECTION: &str = "registry";
/// Notified after appends commit (by every process, see the server's store); wakes whatever
/// follows the feed.
pub const EVENTS_CHANNEL: &str = "openspp_events";
/// Notified (payload `tx_id:position`) each time the feed follower moves its checkpoint.
pub const CHECKPOINT_CHANNEL: &str = "openspp_checkpoint";
