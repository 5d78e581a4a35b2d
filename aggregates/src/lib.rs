//! The registry's domain: commands, events and the aggregates that decide between them.
//!
//! Pure code: no database, no HTTP. Every invariant is checked here, before any event is
//! written; the event store only appends what an aggregate decided.

pub mod bounds;
pub mod consent;
pub mod cycle;
pub mod entitlement;
pub mod error;
pub mod extension;
pub mod extension_registry;
pub mod group;
mod identifiers;
pub mod individual;
pub mod inline_index;
pub mod managed_vocabulary;
pub mod product;
pub mod program;
pub mod program_membership;
pub mod service_point;
pub mod services;
mod transition;
pub mod values;
pub mod vocabulary;
mod wire;

#[cfg(test)]
mod testing;

pub use consent::{
    Access, Actor, Consent, ConsentCommand, ConsentEvent, ConsentRecord, ConsentTerms,
};
pub use cycle::{Cycle, CycleCommand, CycleEvent, CycleState};
pub use entitlement::{Entitlement, EntitlementCommand, EntitlementEvent, EntitlementState};
pub use error::DomainError;
pub use extension::{ExtendedResource, ExtensionData, ExtensionSchemas, SchemaViolation};
pub use extension_registry::{
    searchable_properties, ExtensionCommand, ExtensionDefinition, ExtensionEvent,
    ExtensionRegistration, SchemaCompiler, SearchKind, SearchableProperty, SEARCHABLE,
};
pub use group::{Group, GroupCommand, GroupDetails, GroupEvent, Member, MemberChange, MemberSpec};
pub use identifiers::IdentifierEntry;
pub use individual::{Individual, IndividualCommand, IndividualDetails, IndividualEvent};
pub use inline_index::{IndexChange, InlineIndex};
pub use managed_vocabulary::{
    CodeDefinition, CodeInput, CodeTarget, HeaderInput, ManagedVocabulary, VocabularyCatalog,
    VocabularyCommand, VocabularyEvent, VocabularyHeader, VocabularyState,
};
pub use program::{Program, ProgramCommand, ProgramDetails, ProgramEvent, ProgramStatus};
pub use program_membership::{
    MembershipCommand, MembershipEvent, MembershipStatus, ProgramFacts, ProgramMembership,
};
pub use services::{Clock, RegistryServices, SystemClock};
pub use values::*;
pub use vocabulary::{TargetType, Vocabulary};
