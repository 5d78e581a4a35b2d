//! The application layer: what every surface (REST now; GraphQL, `$batch` and DCI next) does with a
//! resource, written once, below HTTP.
//!
//! A request becomes a [`Call`] (who is asking, from where, and the access-log entry it builds).
//! A [`Resource`] says only what differs per resource: how a subject is located and who may see
//! it, how it is rendered, and which other subjects a rendering names. The operations — read,
//! `_at`, history, one version, `$verify`, the end of every search, and commands with their
//! answers — are generic over it, and each checks its scope itself, so a handler cannot forget.
//!
//! Dependencies point one way: `http/` → `resource/` → `store/`, `projections/`, `aggregates/`.

mod answer;
mod audit;
mod beneficiary;
mod call;
mod cascade;
mod catalogue;
pub mod clash_alert;
mod export;
mod extended;
mod grant;
pub mod history;
mod locate;
mod ops;
pub mod patch;
mod registrant;
mod together;
mod traits;
mod write;

pub use answer::{show, Answer};
pub use audit::{Audit, Interaction};
pub use beneficiary::{named, Beneficiary};
pub use call::Call;
pub use cascade::change_cycle;
pub use catalogue::{create_whole, replace_whole, Catalogued};
pub use export::{export, Exported};
pub use extended::{open_registration, open_replacement};
pub use grant::{grants_for, identity_only, shown, today, Grant};
pub use locate::{
    access_to, by_identifier, find_subject, key_in, locate_beneficiarys, locate_registrant,
    locate_registrant_to_render, not_personal, referenced, Subject,
};
pub use ops::{
    advanced_search, answer_extensions, at, history, page, read, search, verify, vread, Searchable,
};
pub use registrant::{merge_patch, register, replace, Registrant};
pub use together::execute_together;
pub use traits::{
    beneficiary_mentioned, note_found, note_returned, reference_of, Located, Resource, Snapshot,
    Write,
};
pub use write::{
    commit, commit_afresh, committed_answer, create, domain_error, execute, open_update,
    store_error,
};
