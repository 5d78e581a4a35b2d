//! The vocabularies coded values must come from. The domain asks; the server answers from
//! the seeded vocabularies with the operators' recorded changes over them (`managed_vocabulary`).

use serde::{Deserialize, Serialize};

/// ISO 5218 sex/gender codes.
pub const GENDER: &str = "urn:iso:std:iso:5218";
pub const GROUP_TYPE: &str = "urn:openspp:vocab:group-type";
pub const GROUP_MEMBERSHIP_TYPE: &str = "urn:openspp:vocab:group-membership-type";
/// The vocabulary whose codes name identifier systems (ADR-007): a code's URI is a system.
pub const ID_TYPE: &str = "urn:openspp:vocab:id-type";
/// The role of which a group may have at most one current holder.
pub const HEAD_ROLE: &str = "head";

/// A kind of registrant: who a program serves, what a membership's beneficiary is, and what an
/// identifier system may be used for. One type, so a program's target and a beneficiary's kind
/// compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Individual,
    Group,
}

crate::wire_names!(TargetType { Individual => "individual", Group => "group" });

impl TargetType {
    /// The resource a registrant of this kind is: how references name it (`Individual/…`).
    pub fn resource(self) -> &'static str {
        match self {
            Self::Individual => "Individual",
            Self::Group => "Group",
        }
    }

    /// The kind of registrant the resource `name` is, if it is one.
    pub fn of_resource(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.resource() == name)
    }
}

pub trait Vocabulary: Send + Sync {
    /// Whether `code` is an active code of the vocabulary `system`.
    fn has_code(&self, system: &str, code: &str) -> bool;
    /// `None` for an unknown identifier system; `Some(false)` for one that exists but is not
    /// meant for this kind of registrant (a household number on a person).
    fn identifier_system_allowed(&self, uri: &str, target: TargetType) -> Option<bool>;
}
