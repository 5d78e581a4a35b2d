//! The identifier rules both kinds of registrant share: known systems, at most one live
//! identifier per system, and the events that take one identifier list to another.

use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::consent::Access;
use crate::error::DomainError;
use crate::inline_index::IndexChange;
use crate::values::Identifier;
use crate::vocabulary::{TargetType, Vocabulary};

/// The longest identifier value accepted (OpenSPP: 100 characters).
pub(crate) const MAX_VALUE_LEN: usize = 100;

/// An identifier a registrant holds or held; invalidated ones are kept for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifierEntry {
    pub identifier: Identifier,
    pub live: bool,
}

pub(crate) fn validate(
    identifiers: &[Identifier],
    target: TargetType,
    vocabulary: &dyn Vocabulary,
) -> Result<(), DomainError> {
    if identifiers.is_empty() {
        return Err(DomainError::invalid(
            "identifier",
            "at least one identifier is required",
        ));
    }
    bounds::items("identifier", identifiers.len(), bounds::items::IDENTIFIERS)?;
    for (i, identifier) in identifiers.iter().enumerate() {
        let value = identifier.value.trim();
        if value.is_empty() {
            return Err(DomainError::invalid(
                format!("identifier[{i}].value"),
                "must not be empty",
            ));
        }
        // `A1` and `A1 ` would otherwise be two people; refuse rather than silently trim, so
        // the value stored is the value the source system sent.
        if value.len() != identifier.value.len() {
            return Err(DomainError::invalid(
                format!("identifier[{i}].value"),
                "must not start or end with whitespace",
            ));
        }
        bounds::text(&format!("identifier[{i}].value"), value, usize::MAX)?;
        if value.chars().count() > MAX_VALUE_LEN {
            return Err(DomainError::invalid(
                format!("identifier[{i}].value"),
                format!("must be at most {MAX_VALUE_LEN} characters"),
            ));
        }
        let kind = match target {
            TargetType::Individual => "individuals",
            TargetType::Group => "groups",
        };
        match vocabulary.identifier_system_allowed(&identifier.system, target) {
            None => {
                return Err(DomainError::invalid(
                    format!("identifier[{i}].system"),
                    "unknown identifier system",
                ))
            }
            Some(false) => {
                return Err(DomainError::invalid(
                    format!("identifier[{i}].system"),
                    format!("this identifier system is not for {kind}"),
                ))
            }
            Some(true) => {}
        }
        if identifiers[..i]
            .iter()
            .any(|earlier| earlier.system == identifier.system)
        {
            return Err(DomainError::invalid(
                format!("identifier[{i}].system"),
                "only one live identifier per system",
            ));
        }
    }
    Ok(())
}

/// Identifiers are the data controller's to write (README, "Consent"). A client acting under
/// the subjects' consent may change what a consent lets it see, but never which identifiers a
/// registrant holds: removing or replacing one would free it for an impostor, and adding one
/// would tell, by a clash, whether an unconsented person holds it. So a change by such a
/// client whose identifier list differs from the live one is refused, whatever the consent's
/// field list says; clients acting under a legal basis (who may see every registrant) may.
pub(crate) fn check_authority(
    access: &Access,
    entries: &[IdentifierEntry],
    wanted: &[Identifier],
) -> Result<(), DomainError> {
    if !access.actor.needs_consent() {
        return Ok(());
    }
    let (released, claimed) = diff(entries, wanted);
    if released.is_empty() && claimed.is_empty() {
        return Ok(());
    }
    Err(DomainError::forbidden(
        "identifier",
        "only the data controller (a client acting under a legal basis) may add, remove or \
         replace identifiers; send the identifiers as they are",
    ))
}

/// The events of an aggregate that holds identifiers (an individual, a group, a program): one
/// claims an identifier, one invalidates it, and the identifier index follows them in the
/// append transaction. `identifier_events!` implements it for an event enum whose variants are
/// `IdentifierAdded { identifier }` and `IdentifierInvalidated { identifier }`.
pub(crate) trait IdentifierEvents: Sized {
    fn added(identifier: Identifier) -> Self;
    fn invalidated(identifier: Identifier) -> Self;
    /// The identifier this event claims or releases, if any.
    fn identifier_change(&self) -> Option<IndexChange<'_>>;
}

macro_rules! identifier_events {
    ($event:ty) => {
        impl crate::identifiers::IdentifierEvents for $event {
            fn added(identifier: crate::values::Identifier) -> Self {
                Self::IdentifierAdded { identifier }
            }

            fn invalidated(identifier: crate::values::Identifier) -> Self {
                Self::IdentifierInvalidated { identifier }
            }

            fn identifier_change(&self) -> Option<crate::inline_index::IndexChange<'_>> {
                match self {
                    Self::IdentifierAdded { identifier } => Some(
                        crate::inline_index::IndexChange::IdentifierClaimed(identifier),
                    ),
                    Self::IdentifierInvalidated { identifier } => Some(
                        crate::inline_index::IndexChange::IdentifierReleased(identifier),
                    ),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use identifier_events;

/// The events registering `identifiers` makes: one claim each.
pub(crate) fn claims<E: IdentifierEvents>(identifiers: Vec<Identifier>) -> impl Iterator<Item = E> {
    identifiers.into_iter().map(E::added)
}

/// The events that take the identifiers of `entries` to `wanted`: invalidations before
/// additions, so that a system's identifier can be replaced in one request.
pub(crate) fn changes<E: IdentifierEvents>(
    entries: &[IdentifierEntry],
    wanted: &[Identifier],
) -> Vec<E> {
    let (released, claimed) = diff(entries, wanted);
    released
        .into_iter()
        .map(E::invalidated)
        .chain(claims(claimed))
        .collect()
}

/// What to invalidate and what to add to go from the live identifiers to `wanted`.
pub(crate) fn diff(
    entries: &[IdentifierEntry],
    wanted: &[Identifier],
) -> (Vec<Identifier>, Vec<Identifier>) {
    let live: Vec<&Identifier> = entries
        .iter()
        .filter(|e| e.live)
        .map(|e| &e.identifier)
        .collect();
    let released = live
        .iter()
        .filter(|id| !wanted.contains(id))
        .map(|id| (*id).clone())
        .collect();
    let claimed = wanted
        .iter()
        .filter(|id| !live.contains(id))
        .cloned()
        .collect();
    (released, claimed)
}

pub(crate) fn add(entries: &mut Vec<IdentifierEntry>, identifier: Identifier) {
    match entries.iter_mut().find(|e| e.identifier == identifier) {
        Some(entry) => entry.live = true,
        None => entries.push(IdentifierEntry {
            identifier,
            live: true,
        }),
    }
}

pub(crate) fn invalidate(entries: &mut [IdentifierEntry], identifier: &Identifier) {
    if let Some(entry) = entries.iter_mut().find(|e| &e.identifier == identifier) {
        entry.live = false;
    }
}

pub(crate) fn live(entries: &[IdentifierEntry]) -> impl Iterator<Item = &Identifier> {
    entries.iter().filter(|e| e.live).map(|e| &e.identifier)
}
