//! Everything one append writes beside its events, in the same statement: the rows of every
//! read model its streams touch (from their states after it), and the indexes its events
//! change (identifier claims, group memberships). Like esrs' transactional event handlers,
//! each table is written by the module that owns it; this only gathers an append's share.

use openspp_aggregates::{Identifier, IndexChange, InlineIndex};

use crate::error::ProjectionError;
use crate::events::Fold;
use crate::identifier_claims::Claims;
use crate::membership_index::Memberships;
use crate::rows::{ReadModel, Rows};
use crate::statement::Statement;

#[derive(Default)]
pub struct Inline {
    rows: Rows,
    claims: Claims,
    memberships: Memberships,
}

impl Inline {
    /// Records what `event`, appended to stream `aggregate_id`, changes in the indexes.
    pub fn index<E: InlineIndex>(&mut self, aggregate_type: &str, aggregate_id: &str, event: &E) {
        match event.index_change() {
            Some(IndexChange::IdentifierClaimed(identifier)) => {
                self.claims.claim(aggregate_type, aggregate_id, identifier)
            }
            Some(IndexChange::IdentifierReleased(identifier)) => {
                self.claims
                    .release(aggregate_type, aggregate_id, identifier)
            }
            Some(IndexChange::MemberJoined(individual)) => {
                self.memberships.join(aggregate_id, individual)
            }
            Some(IndexChange::MemberLeft(individual)) => {
                self.memberships.leave(aggregate_id, individual)
            }
            // The consent index is a read model of the consent's state (see `consent.rs`).
            None => {}
        }
    }

    /// Records the rows of stream `aggregate_id` as `fold` holds it after the append.
    pub fn project<A: ReadModel>(
        &mut self,
        aggregate_id: &str,
        fold: &Fold<A>,
    ) -> Result<(), ProjectionError> {
        A::project(aggregate_id, fold, &mut self.rows)
    }

    /// An identifier two streams of the append both claim.
    pub fn clash(&self) -> Option<&Identifier> {
        self.claims.clash()
    }

    /// The identifiers the append claims (to name the one another stream holds).
    pub fn claimed(&self) -> Vec<&Identifier> {
        self.claims.claimed()
    }

    pub fn push_into<'a>(&'a self, statement: &mut Statement<'a>) {
        self.claims.push_into(statement);
        self.memberships.push_into(statement);
        self.rows.push_into(statement);
    }
}
