//! The statistics engine (CONTRACT §7) every surface asks — GraphQL's `statistics` and OpenSPP's
//! `POST /aggregation/compute` — so both count the same subjects and hide the same cells:
//! registrants (individuals or groups), or their program memberships, by gender, age band,
//! group type, program and membership status, with small-cell suppression.
//!
//! A cell under the minimum size (`OPENSPP_MIN_CELL_SIZE`, default 5) is suppressed, and then
//! complementary cells are, until no line of the table (the cells that differ in one dimension
//! only, whose sum another query — a margin — can give) and not the whole table (whose sum is
//! the total) holds exactly one suppressed cell: one suppressed cell in a line could be
//! recovered by subtracting the others from its margin. A consent-bound client counts only
//! subjects whose consent covers it for `analytics` or `research`: a registrant under a scope
//! on its record for one of them, a membership under a scope on `program_membership` for one
//! of them (and, when the count reads the registrant's gender, birth date or group type, a
//! scope on the record too), through the one consent filter of every search.
//!
//! The caller opens the access (its scope: `statistics` for GraphQL, `aggregation` for REST);
//! no subject is returned, so the access names none.

use std::collections::HashMap;
use std::sync::OnceLock;

use openspp_aggregates::Identifier;
use openspp_projections::membership::references;
use openspp_projections::statistics::{self, CountQuery, Counted};

pub use openspp_projections::statistics::{Dimension, Target};

use crate::api::reference::parse_identifier;
use crate::error::ApiError;
use crate::resource::{today, Call};
use crate::store::claims::resolve_program;

/// At most this many dimensions in one table (OpenSPP's `MAX_GROUP_BY_DIMENSIONS`).
pub const MAX_DIMENSIONS: usize = 3;

/// The smallest count shown.
pub fn min_cell_size() -> i64 {
    static SIZE: OnceLock<i64> = OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("OPENSPP_MIN_CELL_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &i64| *n >= 1)
            .unwrap_or(5)
    })
}

/// What to count: which registrants, broken down by what, among which.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub target: Target,
    pub dimensions: Vec<Dimension>,
    /// `system|value` (or `Program/system|value`): count the program's memberships.
    pub program: Option<String>,
    /// ISO 5218 code (or `system|code`).
    pub gender: Option<String>,
    pub membership_status: Option<String>,
}

/// One cell: its dimension values in the request's order, as REST codes them; its count,
/// `None` when suppressed.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub key: Vec<String>,
    pub count: Option<i64>,
    pub suppressed: bool,
}

/// A counted table.
#[derive(Clone, Debug)]
pub struct Table {
    /// `None` when the total itself is below the minimum cell size (and not zero).
    pub total: Option<i64>,
    pub min_cell_size: i64,
    pub cells: Vec<Cell>,
}

/// Suppresses cells below `min`, then complementary cells until no line along any of the
/// `dimensions` dimensions (and not the whole table) holds exactly one suppressed cell. Each
/// complementary choice is the smallest shown cell of the line, so as little as possible is
/// hidden.
pub fn suppress(counts: Vec<(Vec<String>, i64)>, dimensions: usize, min: i64) -> Vec<Cell> {
    let mut cells: Vec<(Vec<String>, i64, bool)> = counts
        .into_iter()
        .map(|(key, count)| {
            let small = count < min;
            (key, count, small)
        })
        .collect();
    // Lines along each dimension: the cells sharing every other dimension's value. With no
    // dimension the only "line" is the whole table (its sum is the total).
    let mut lines: Vec<Vec<usize>> = Vec::new();
    for along in 0..dimensions.max(1) {
        let mut by_rest: HashMap<Vec<&str>, Vec<usize>> = HashMap::new();
        for (index, (key, ..)) in cells.iter().enumerate() {
            let rest: Vec<&str> = key
                .iter()
                .enumerate()
                .filter(|(d, _)| *d != along)
                .map(|(_, v)| v.as_str())
                .collect();
            by_rest.entry(rest).or_default().push(index);
        }
        lines.extend(by_rest.into_values());
    }
    lines.push((0..cells.len()).collect());
    loop {
        let mut changed = false;
        for line in &lines {
            let hidden = line.iter().filter(|&&i| cells[i].2).count();
            if hidden != 1 {
                continue;
            }
            if let Some(&smallest) = line
                .iter()
                .filter(|&&i| !cells[i].2)
                .min_by_key(|&&i| (cells[i].1, cells[i].0.clone()))
            {
                cells[smallest].2 = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut cells: Vec<Cell> = cells
        .into_iter()
        .map(|(key, count, suppressed)| Cell {
            key,
            count: (!suppressed).then_some(count),
            suppressed,
        })
        .collect();
    cells.sort_by(|a, b| a.key.cmp(&b.key));
    cells
}

/// Counts `request` for the caller: within its allowed programs, only subjects it may count,
/// small cells suppressed. `field` names the request's dimensions in a refusal (`dimensions`,
/// `group_by`).
pub async fn compute(call: &Call, request: Request, field: &str) -> Result<Table, ApiError> {
    let Request {
        target,
        dimensions,
        program,
        gender,
        membership_status,
    } = request;
    let mut unique = dimensions.clone();
    unique.sort_by_key(|d| *d as u8);
    unique.dedup();
    if unique.len() != dimensions.len() || dimensions.len() > MAX_DIMENSIONS {
        return Err(ApiError::bad_request(
            Some(field),
            "at most three dimensions, each once",
        ));
    }
    if let Some(other) = dimensions.iter().find(|d| !d.applies_to(target)) {
        return Err(ApiError::bad_request(
            Some(field),
            format!(
                "{} does not apply to {}",
                name(*other),
                match target {
                    Target::Individuals => "individuals",
                    Target::Groups => "groups",
                }
            ),
        ));
    }
    let pool = &call.state.pool;
    let principal = &call.principal;
    let mut programs =
        (!principal.allowed_programs.is_empty()).then(|| principal.allowed_programs.clone());
    if let Some(program) = &program {
        let key = program.strip_prefix("Program/").unwrap_or(program);
        let identifier: Identifier = parse_identifier(key, "filter.program")?;
        let stream = resolve_program(pool, identifier).await?.unwrap_or_default();
        programs = Some(match programs {
            Some(allowed) if !allowed.contains(&stream) => Vec::new(),
            _ => vec![stream],
        });
    }
    // The registrants' fields the count reads: a client's field filter that hides one refuses
    // the count; a consent that hides one leaves its subject out.
    let (resource_type, reads) = read_fields(target, &dimensions, gender.is_some());
    let named: Vec<(String, String)> = reads
        .iter()
        .map(|(parameter, field)| (parameter.to_string(), field.to_string()))
        .collect();
    principal.may_search_on(resource_type, &named)?;
    let query = CountQuery {
        target,
        fields: reads.iter().map(|(_, f)| f.to_string()).collect(),
        dimensions: dimensions.clone(),
        programs,
        gender: gender.map(|g| g.rsplit('|').next().unwrap_or_default().to_owned()),
        membership_status,
        counted: if principal.require_consent {
            Counted::ConsentedForAnalytics {
                organization: principal.organization.clone(),
                organization_type: principal.organization_type.clone(),
            }
        } else {
            Counted::All
        },
        today: today(),
    };
    let mut counts = statistics::count(pool, &query).await?;
    // Programs are counted by stream and shown by identifier.
    if let Some(position) = dimensions.iter().position(|d| *d == Dimension::Program) {
        let streams: Vec<String> = counts.iter().map(|(k, _)| k[position].clone()).collect();
        let keys = references(pool, &streams).await?;
        counts.retain_mut(|(key, _)| match keys.get(&key[position]) {
            Some(identifier) => {
                key[position] = identifier.clone();
                true
            }
            None => false,
        });
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let min = min_cell_size();
    Ok(Table {
        total: (total == 0 || total >= min).then_some(total),
        min_cell_size: min,
        cells: suppress(counts, dimensions.len(), min),
    })
}

/// The consent resource type of `target`, and the fields of its registrants a count by
/// `dimensions` (and a gender filter) reads, each with what names it in the request.
fn read_fields(
    target: Target,
    dimensions: &[Dimension],
    by_gender: bool,
) -> (&'static str, Vec<(&'static str, &'static str)>) {
    let mut fields = Vec::new();
    for dimension in dimensions {
        match dimension {
            Dimension::Gender => fields.push((name(*dimension), "gender")),
            Dimension::AgeBand => fields.push((name(*dimension), "birthDate")),
            Dimension::GroupType => fields.push((name(*dimension), "groupType")),
            Dimension::Program | Dimension::MembershipStatus => {}
        }
    }
    if by_gender && !dimensions.contains(&Dimension::Gender) {
        fields.push(("gender", "gender"));
    }
    let resource_type = match target {
        Target::Individuals => "individual",
        Target::Groups => "group",
    };
    (resource_type, fields)
}

/// Every dimension, in the order `/aggregation/dimensions` lists them.
pub const DIMENSIONS: [Dimension; 5] = [
    Dimension::Gender,
    Dimension::AgeBand,
    Dimension::GroupType,
    Dimension::Program,
    Dimension::MembershipStatus,
];

/// A dimension's REST name (`group_by`, `/aggregation/dimensions`).
pub fn name(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Gender => "gender",
        Dimension::AgeBand => "age_band",
        Dimension::GroupType => "group_type",
        Dimension::Program => "program",
        Dimension::MembershipStatus => "membership_status",
    }
}

/// The dimension a REST name names.
pub fn named(text: &str) -> Option<Dimension> {
    DIMENSIONS.into_iter().find(|d| name(*d) == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(rows: &[(&[&str], i64)]) -> Vec<(Vec<String>, i64)> {
        rows.iter()
            .map(|(k, n)| (k.iter().map(|s| s.to_string()).collect(), *n))
            .collect()
    }

    fn hidden(cells: &[Cell]) -> Vec<Vec<String>> {
        cells
            .iter()
            .filter(|c| c.suppressed)
            .map(|c| c.key.clone())
            .collect()
    }

    #[test]
    fn one_small_cell_takes_the_smallest_other_with_it() {
        let out = suppress(cells(&[(&["1"], 40), (&["2"], 3), (&["9"], 12)]), 1, 5);
        assert_eq!(hidden(&out), vec![vec!["2"], vec!["9"]]);
        assert!(out.iter().all(|c| c.suppressed == c.count.is_none()));
    }

    #[test]
    fn no_line_of_a_table_keeps_a_single_suppressed_cell() {
        // gender x program: (2, B) is small; its row and its column each need a partner,
        // and those partners' lines in turn.
        let out = suppress(
            cells(&[
                (&["1", "A"], 50),
                (&["1", "B"], 20),
                (&["2", "A"], 30),
                (&["2", "B"], 2),
            ]),
            2,
            5,
        );
        for along in 0..2 {
            let mut lines: HashMap<String, usize> = HashMap::new();
            for c in out.iter().filter(|c| c.suppressed) {
                *lines.entry(c.key[1 - along].clone()).or_default() += 1;
            }
            assert!(lines.values().all(|n| *n != 1), "{out:?}");
        }
        assert_eq!(hidden(&out).len(), 4);
    }

    #[test]
    fn nothing_is_hidden_when_every_cell_is_large() {
        let out = suppress(cells(&[(&["1"], 5), (&["2"], 7)]), 1, 5);
        assert!(hidden(&out).is_empty());
    }

    #[test]
    fn every_dimension_has_a_name_that_names_it() {
        for dimension in DIMENSIONS {
            assert_eq!(named(name(dimension)), Some(dimension));
        }
        assert_eq!(named("shoe_size"), None);
    }
}
