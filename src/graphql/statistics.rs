//! `statistics` (CONTRACT §7): the statistics engine (`crate::statistics`) as GraphQL serves it,
//! under the scope `statistics:read`. Counts of registrants, or of their program memberships,
//! by gender, age band, group type, program and membership status, small cells suppressed.

use async_graphql::{Context, Enum, InputObject, SimpleObject};

use crate::auth::Action;
use crate::graphql::context::{call, gql, open};
use crate::statistics::{self as engine, Dimension as Column, Target as Counted};

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Dimension {
    /// ISO 5218 code.
    Gender,
    /// `0-4`, `5-17`, `18-59`, `60+`.
    AgeBand,
    /// The program's identifier (`system|value`); counts memberships.
    Program,
    /// Counts memberships.
    MembershipStatus,
    /// A group's type (`household`, …); with `target: GROUP`.
    GroupType,
}

impl From<Dimension> for Column {
    fn from(d: Dimension) -> Self {
        match d {
            Dimension::Gender => Self::Gender,
            Dimension::AgeBand => Self::AgeBand,
            Dimension::Program => Self::Program,
            Dimension::MembershipStatus => Self::MembershipStatus,
            Dimension::GroupType => Self::GroupType,
        }
    }
}

/// Which registrants are counted.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Target {
    #[default]
    Individual,
    Group,
}

#[derive(InputObject, Default)]
pub struct StatisticsFilter {
    /// `system|value` (or `Program/system|value`): count the program's memberships.
    pub program: Option<String>,
    /// ISO 5218 code.
    pub gender: Option<String>,
    pub membership_status: Option<String>,
}

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct Cell {
    /// The cell's dimension values, in `dimensions` order.
    pub key: Vec<String>,
    /// `null` when suppressed.
    pub count: Option<i64>,
    pub suppressed: bool,
}

#[derive(SimpleObject)]
pub struct Statistics {
    /// `null` when the total itself is below the minimum cell size.
    pub total: Option<i64>,
    pub min_cell_size: i64,
    pub cells: Vec<Cell>,
}

/// `statistics(dimensions:, filter:, target:)`.
pub async fn compute(
    ctx: &Context<'_>,
    dimensions: Vec<Dimension>,
    filter: Option<StatisticsFilter>,
    target: Option<Target>,
) -> async_graphql::Result<Statistics> {
    let call = call(ctx);
    open(call, "statistics", Action::Read)?;
    let filter = filter.unwrap_or_default();
    let request = engine::Request {
        target: match target.unwrap_or_default() {
            Target::Individual => Counted::Individuals,
            Target::Group => Counted::Groups,
        },
        dimensions: dimensions.into_iter().map(Into::into).collect(),
        program: filter.program,
        gender: filter.gender,
        membership_status: filter.membership_status,
    };
    let table = engine::compute(call, request, "dimensions")
        .await
        .map_err(gql)?;
    Ok(Statistics {
        total: table.total,
        min_cell_size: table.min_cell_size,
        cells: table
            .cells
            .into_iter()
            .map(|c| Cell {
                key: c.key,
                count: c.count,
                suppressed: c.suppressed,
            })
            .collect(),
    })
}
