//! The rows a stream's state puts in the read models. `ReadModel::project` is the ONE function
//! from a folded stream to its rows: the append writes them in its own statement (so every
//! read model reflects a write once it commits, in every process), and the rebuild writes them
//! from the whole log, so a rebuild is byte-identical to what the appends wrote.

use cqrs_es::Aggregate;
use openspp_aggregates::{
    Consent, Cycle, Entitlement, Group, Individual, Program, ProgramMembership,
};

use crate::error::{ProjectionError, Undecodable};
use crate::events::{Fold, StoredEvent};
use crate::statement::Statement;
use crate::{consent, delivery, group, individual, membership, product, program, service_point};
use openspp_aggregates::product::Product;
use openspp_aggregates::service_point::ServicePoint;

/// An aggregate whose state is shown through read models.
pub trait ReadModel: Aggregate {
    /// Adds the rows of stream `aggregate_id` as `fold` now holds it.
    fn project(
        aggregate_id: &str,
        fold: &Fold<Self>,
        rows: &mut Rows,
    ) -> Result<(), ProjectionError>;
}

/// Each read model's module says what rows a stream puts in it (`line`); this is where they
/// are collected, so the modules know nothing of one another or of `Rows`.
macro_rules! read_model {
    ($aggregate:ty, $module:ident, $rows:ident) => {
        impl ReadModel for $aggregate {
            fn project(
                aggregate_id: &str,
                fold: &Fold<Self>,
                rows: &mut Rows,
            ) -> Result<(), ProjectionError> {
                rows.$rows.push($module::line(aggregate_id, fold)?);
                Ok(())
            }
        }
    };
}

read_model!(Individual, individual, individuals);
read_model!(Group, group, groups);
read_model!(Program, program, programs);
read_model!(ProgramMembership, membership, memberships);

impl ReadModel for Cycle {
    fn project(
        aggregate_id: &str,
        fold: &Fold<Self>,
        rows: &mut Rows,
    ) -> Result<(), ProjectionError> {
        rows.cycles.push(delivery::cycle_line(aggregate_id, fold)?);
        Ok(())
    }
}

/// An entitlement's row also changes its cycle's statistics (`delivery.rs`).
impl ReadModel for Entitlement {
    fn project(
        aggregate_id: &str,
        fold: &Fold<Self>,
        rows: &mut Rows,
    ) -> Result<(), ProjectionError> {
        rows.entitlements
            .push(delivery::entitlement_line(aggregate_id, fold)?);
        Ok(())
    }
}

read_model!(ServicePoint, service_point, service_points);
read_model!(Product, product, products);

/// A consent not given yet has no row.
impl ReadModel for Consent {
    fn project(
        aggregate_id: &str,
        fold: &Fold<Self>,
        rows: &mut Rows,
    ) -> Result<(), ProjectionError> {
        rows.consents.extend(consent::line(aggregate_id, fold)?);
        Ok(())
    }
}

/// Operator-managed vocabularies and registered extensions have no read model: their streams
/// are in the log (history, verification), and every server folds them into its catalogs.
impl ReadModel for openspp_aggregates::managed_vocabulary::ManagedVocabulary {
    fn project(_: &str, _: &Fold<Self>, _: &mut Rows) -> Result<(), ProjectionError> {
        Ok(())
    }
}

impl ReadModel for openspp_aggregates::extension_registry::ExtensionRegistration {
    fn project(_: &str, _: &Fold<Self>, _: &mut Rows) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// The tables `ReadModel::project` writes, all rebuilt from the log by a rebuild.
pub const TABLES: [&str; 12] = [
    "individual_view",
    "group_view",
    "group_members_view",
    "program_view",
    "membership_view",
    "consent_index",
    "cycle_view",
    "entitlement_view",
    "cycle_beneficiaries",
    "cycle_statistics",
    "service_point_view",
    "product_view",
];

/// Gives the planner fresh statistics for `TABLES` and for the `also` tables, after they
/// changed wholesale (a rebuild, a bulk import). Until a table is analysed PostgreSQL plans for
/// the rows it last counted (none, on a fresh registry), autovacuum may be off or minutes
/// behind, and a server's connections keep the plans they prepare meanwhile.
pub async fn refresh_statistics(pool: &sqlx::PgPool, also: &[&str]) -> sqlx::Result<()> {
    let tables = also.iter().chain(&TABLES).copied().collect::<Vec<_>>();
    sqlx::query(&format!("ANALYZE {}", tables.join(", ")))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Rows of any number of streams, by table, each stream at most once.
#[derive(Default)]
pub struct Rows {
    pub(crate) individuals: Vec<individual::Line>,
    pub(crate) groups: Vec<group::Line>,
    pub(crate) programs: Vec<program::Line>,
    pub(crate) memberships: Vec<membership::Line>,
    pub(crate) consents: Vec<consent::Line>,
    pub(crate) cycles: Vec<delivery::CycleLine>,
    pub(crate) entitlements: Vec<delivery::EntitlementLine>,
    pub(crate) service_points: Vec<service_point::Line>,
    pub(crate) products: Vec<product::Line>,
}

impl Rows {
    /// How many streams' rows are held.
    pub fn len(&self) -> usize {
        self.individuals.len()
            + self.groups.len()
            + self.programs.len()
            + self.memberships.len()
            + self.consents.len()
            + self.cycles.len()
            + self.entitlements.len()
            + self.service_points.len()
            + self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one upsert per table that has rows.
    pub fn push_into<'a>(&'a self, statement: &mut Statement<'a>) {
        individual::push_upsert(statement, &self.individuals);
        group::push_upsert(statement, &self.groups);
        program::push_upsert(statement, &self.programs);
        membership::push_upsert(statement, &self.memberships);
        consent::push_upsert(statement, &self.consents);
        delivery::push_cycle_upsert(statement, &self.cycles);
        delivery::push_entitlement_upsert(statement, &self.entitlements);
        service_point::push_upsert(statement, &self.service_points);
        product::push_upsert(statement, &self.products);
    }
}

/// Folds one stream of some aggregate type from its stored events, for a rebuild that reads
/// the log stream after stream without knowing the types in advance.
pub(crate) trait StreamFold: Send {
    fn apply(&mut self, event: &StoredEvent) -> Result<(), Undecodable>;
    fn project(&self, aggregate_id: &str, rows: &mut Rows) -> Result<(), ProjectionError>;
}

impl<A: ReadModel> StreamFold for Fold<A> {
    fn apply(&mut self, event: &StoredEvent) -> Result<(), Undecodable> {
        Fold::apply(self, event)
    }

    fn project(&self, aggregate_id: &str, rows: &mut Rows) -> Result<(), ProjectionError> {
        A::project(aggregate_id, self, rows)
    }
}

/// An empty fold for streams of `aggregate_type`, if that type has read models.
pub(crate) fn fold_for(aggregate_type: &str) -> Option<Box<dyn StreamFold>> {
    fn of<A: ReadModel + 'static>() -> Option<Box<dyn StreamFold>> {
        Some(Box::new(Fold::<A>::default()))
    }
    match aggregate_type {
        t if t == Individual::TYPE => of::<Individual>(),
        t if t == Group::TYPE => of::<Group>(),
        t if t == Program::TYPE => of::<Program>(),
        t if t == ProgramMembership::TYPE => of::<ProgramMembership>(),
        t if t == Consent::TYPE => of::<Consent>(),
        t if t == Cycle::TYPE => of::<Cycle>(),
        t if t == Entitlement::TYPE => of::<Entitlement>(),
        t if t == ServicePoint::TYPE => of::<ServicePoint>(),
        t if t == Product::TYPE => of::<Product>(),
        _ => None,
    }
}
