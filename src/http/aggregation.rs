//! OpenSPP's aggregation API (`spp_api_v2_simulation`: `POST /aggregation/compute`,
//! `GET /aggregation/dimensions`, scope `aggregation:read`), answered by the statistics engine
//! GraphQL's `statistics` uses (`crate::statistics`), so both count the same subjects — a
//! consent-bound client only those consented for `analytics` or `research` — and suppress the
//! same cells.

use std::collections::BTreeMap;

use axum::extract::OriginalUri;
use axum::Json;
use openspp_aggregates::MembershipStatus;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::aggregation::{
    AggregationResponse, BreakdownCell, ComputeAggregationRequest, DimensionInfo,
    DimensionsListResponse, StatisticValue, TargetType,
};
use crate::api::json::ApiJson;
use crate::api::params::Params;
use crate::api::schema::OperationOutcome;
use crate::app::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::{Call, Interaction};
use crate::statistics::{self, name, Dimension, Request, Target, DIMENSIONS};

const SCOPE: &str = "aggregation";
/// How the access log names these accesses (they return no subject).
const RESOURCE: &str = "Aggregation";
/// The statistics `statistics` may name.
const STATISTICS: [&str; 1] = ["count"];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(compute))
        .routes(routes!(dimensions))
}

fn statistic(value: Option<i64>) -> StatisticValue {
    StatisticValue {
        value,
        suppressed: value.is_none(),
    }
}

/// The request's statistics, each with `value`.
fn statistics_of(names: &[String], value: Option<i64>) -> BTreeMap<String, StatisticValue> {
    names
        .iter()
        .map(|n| (n.clone(), statistic(value)))
        .collect()
}

/// Turns the body into an engine request: 400 naming the field for what this server cannot
/// answer truthfully (a CEL expression, an area) and for unknown names.
fn request(body: ComputeAggregationRequest) -> Result<(Request, Vec<String>), ApiError> {
    let scope = body.scope;
    let target = match scope.target_type {
        TargetType::Group => Target::Groups,
        TargetType::Individual => Target::Individuals,
    };
    if scope.cel_expression.is_some() {
        return Err(ApiError::bad_request(
            Some("scope.cel_expression"),
            "CEL expressions are not supported here; narrow the scope with program, gender or \
             membership_status",
        ));
    }
    if scope.area_id.is_some() {
        return Err(ApiError::bad_request(
            Some("scope.area_id"),
            "areas are not recorded by this server; leave area_id out",
        ));
    }
    if let Some(status) = &scope.membership_status {
        if MembershipStatus::parse(status).is_none() {
            return Err(ApiError::bad_request(
                Some("scope.membership_status"),
                MembershipStatus::expected(),
            ));
        }
    }
    let wanted = body.statistics.unwrap_or_default();
    if let Some((index, unknown)) = wanted
        .iter()
        .enumerate()
        .find(|(_, s)| !STATISTICS.contains(&s.as_str()))
    {
        return Err(ApiError::bad_request(
            Some(&format!("statistics[{index}]")),
            format!("`{unknown}` is not a statistic this server computes; use count"),
        ));
    }
    let dimensions = body
        .group_by
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, text)| {
            statistics::named(text).ok_or_else(|| {
                ApiError::bad_request(
                    Some(&format!("group_by[{index}]")),
                    format!("`{text}` is not a dimension; GET /aggregation/dimensions lists them"),
                )
            })
        })
        .collect::<Result<Vec<Dimension>, ApiError>>()?;
    Ok((
        Request {
            target,
            dimensions,
            program: scope.program,
            gender: scope.gender,
            membership_status: scope.membership_status,
        },
        wanted,
    ))
}

/// Compute population counts, with an optional breakdown (small cells suppressed).
#[utoipa::path(post, path = "/aggregation/compute", tag = "Aggregation",
    request_body = ComputeAggregationRequest,
    responses(
        (status = 200, body = AggregationResponse),
        (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
        (status = 422, body = OperationOutcome),
    ),
    security(("bearer" = ["aggregation:read"])))]
async fn compute(
    call: Call,
    body: Result<ApiJson<ComputeAggregationRequest>, ApiError>,
) -> Result<Json<AggregationResponse>, ApiError> {
    call.open(
        SCOPE,
        Action::Read,
        RESOURCE,
        Interaction::new("compute", "E"),
    )?;
    let ApiJson(body) = body?;
    let breakdown_asked = body.group_by.is_some();
    let (request, wanted) = request(body)?;
    let names: Vec<&str> = request.dimensions.iter().map(|d| name(*d)).collect();
    let table = statistics::compute(&call, request.clone(), "group_by").await?;
    let breakdown = breakdown_asked.then(|| {
        table
            .cells
            .iter()
            .map(|cell| {
                (
                    cell.key.join("|"),
                    BreakdownCell {
                        count: cell.count,
                        suppressed: cell.suppressed,
                        values: names
                            .iter()
                            .map(|n| n.to_string())
                            .zip(cell.key.iter().cloned())
                            .collect(),
                        statistics: statistics_of(&wanted, cell.count),
                    },
                )
            })
            .collect()
    });
    Ok(Json(AggregationResponse {
        total_count: table.total,
        statistics: statistics_of(&wanted, table.total),
        breakdown,
        from_cache: false,
        computed_at: chrono::Utc::now().to_rfc3339(),
        access_level: "aggregate".to_owned(),
        min_cell_size: table.min_cell_size,
    }))
}

/// What a dimension is, for `/aggregation/dimensions`.
fn info(dimension: Dimension) -> DimensionInfo {
    let labels = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    let (label, description, applies_to, value_labels) = match dimension {
        Dimension::Gender => (
            "Gender",
            "ISO 5218 sex code; `unknown` where none is recorded",
            "individuals",
            labels(&[
                ("0", "Not known"),
                ("1", "Male"),
                ("2", "Female"),
                ("9", "Not applicable"),
                ("unknown", "Not recorded"),
            ]),
        ),
        Dimension::AgeBand => (
            "Age band",
            "Age on the day of the count; `unknown` without a birth date",
            "individuals",
            labels(&[
                ("0-4", "0 to 4"),
                ("5-17", "5 to 17"),
                ("18-59", "18 to 59"),
                ("60+", "60 and over"),
                ("unknown", "No birth date"),
            ]),
        ),
        Dimension::GroupType => ("Group type", "The group's type", "groups", None),
        Dimension::Program => (
            "Program",
            "The program's identifier (system|value); counts memberships",
            "all",
            None,
        ),
        Dimension::MembershipStatus => (
            "Membership status",
            "The program membership's status; counts memberships",
            "all",
            Some(
                MembershipStatus::ALL
                    .iter()
                    .map(|s| (s.as_str().to_owned(), s.as_str().replace('_', " ")))
                    .collect(),
            ),
        ),
    };
    DimensionInfo {
        name: name(dimension).to_owned(),
        label: label.to_owned(),
        description: Some(description.to_owned()),
        dimension_type: "field".to_owned(),
        applies_to: applies_to.to_owned(),
        value_labels,
    }
}

/// List the dimensions `group_by` may name.
#[utoipa::path(get, path = "/aggregation/dimensions", tag = "Aggregation",
    params(("applies_to" = Option<String>, Query,
        description = "`individuals` or `groups`: only the dimensions that apply to them")),
    responses(
        (status = 200, body = DimensionsListResponse),
        (status = 400, body = OperationOutcome),
        (status = 403, body = OperationOutcome),
    ),
    security(("bearer" = ["aggregation:read"])))]
async fn dimensions(
    call: Call,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<DimensionsListResponse>, ApiError> {
    call.open(
        SCOPE,
        Action::Read,
        RESOURCE,
        Interaction::new("dimensions", "R"),
    )?;
    let mut params = Params::from_uri(&uri)?;
    let applies_to = params.one("applies_to")?;
    params.finish()?;
    let target = match applies_to.as_deref() {
        None => None,
        Some("individuals") => Some(Target::Individuals),
        Some("groups") => Some(Target::Groups),
        Some(_) => {
            return Err(ApiError::bad_request(
                Some("applies_to"),
                "must be individuals or groups",
            ))
        }
    };
    Ok(Json(DimensionsListResponse {
        dimensions: DIMENSIONS
            .into_iter()
            .filter(|d| target.is_none_or(|t| d.applies_to(t)))
            .map(info)
            .collect(),
    }))
}
