//! The vocabularies coded values must come from. The domain asks; the server answers from
//! the seeded vocabularies with the operators' recorded changes over them (`managed_vocabulary`).

/// ISO 5218 sex/gender codes.
pub const GENDER: &str = "urn:iso:std:iso:5218";
pub const GROUP_TYPE: &str = "urn:openspp:vocab:group-type";
pub const GROUP_MEMBERSHIP_TYPE: &str = "urn:openspp:vocab:group-membership-type";
/// The vocabulary whose codes name identifier systems (ADR-007): a code's URI is a system.
pub const ID_TYPE: &str = "urn:openspp:vocab:id-type";
/// The role of which a group may have at most one current holder.
pub const HEAD_ROLE: &str = "head";

/// The kind of registrant an identifier system may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Individual,
    Group,
}

pub trait Vocabulary: Send + Sync {
    /// Whether `code` is an active code of the vocabulary `system`.
    fn has_code(&self, system: &str, code: &str) -> bool;
    /// `None` for an unknown identifier system; `Some(false)` for one that exists but is not
    /// meant for this kind of registrant (a household number on a person).
    fn identifier_system_allowed(&self, uri: &str, target: TargetType) -> Option<bool>;
}
