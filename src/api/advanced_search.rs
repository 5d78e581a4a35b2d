//! `POST /{Resource}/_search` (OpenSPP's advanced search): its request, filter conditions
//! joined by AND and OR, presets, sort and paging, turned into the resource's own search
//! parameters, and the FHIR `searchset` Bundle it answers.
//!
//! A request becomes a list of alternatives (its conditions in disjunctive normal form), each
//! a list of `GET /{Resource}` parameters: so every condition is read, checked and consent
//! filtered exactly as the same parameter of a plain search is, and no field a plain search
//! may not filter on can be filtered here.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::schema::SearchResult;
use crate::api::search_params::{Kind, Param, Preset, MAX_CONDITIONS};
use crate::error::ApiError;

/// The most alternatives a request may expand to (an OR of ANDs of ORs multiplies out).
pub const MAX_ALTERNATIVES: usize = 32;

/// OpenSPP's `SearchRequest`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Conditions: `{field, operator?, value}` (`operator`: `eq` by default; `ne`, `gt`,
    /// `gte`, `lt`, `lte` on dates; `contains` on text; `in` with a list of values), or
    /// `{logic: "AND"|"OR", conditions: [...]}`; `field` is a search parameter `_filters`
    /// lists.
    #[schema(value_type = Option<Vec<Object>>)]
    pub filters: Option<Vec<Value>>,
    /// How `filters` combine: `AND` (default) or `OR`.
    pub filter_logic: Option<String>,
    /// A preset `_filters` lists, ANDed with the filters.
    pub preset: Option<String>,
    /// Conditions ANDed with the preset and the filters.
    #[schema(value_type = Option<Vec<Object>>)]
    pub additional_filters: Option<Vec<Value>>,
    pub sort: Option<Vec<SortField>>,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortField {
    /// A sort key of the resource's `_sort`.
    pub field: String,
    /// `asc` (default) or `desc`.
    pub direction: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// 1–100, default 20.
    pub count: Option<i64>,
    pub offset: Option<i64>,
}

/// A search parameter and its value.
pub type Pair = (String, String);

/// Alternatives, each a conjunction of parameters.
type Alternatives = Vec<Vec<Pair>>;

fn invalid(at: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Some(at), message)
}

impl SearchRequest {
    /// The request in `body`, read as every body is (`json::parse`: 422 naming the field at
    /// fault), except that objects must be objects: serde would also take a struct from a list
    /// of its fields' values (`"pagination": [10, 0]`), which is not what OpenSPP's schema
    /// says.
    pub fn from_body(body: Value) -> Result<Self, ApiError> {
        let not_object = |at: &str| ApiError::unprocessable(at, "must be a JSON object");
        let Value::Object(fields) = &body else {
            return Err(not_object("body"));
        };
        if fields
            .get("pagination")
            .is_some_and(|p| !p.is_null() && !p.is_object())
        {
            return Err(not_object("pagination"));
        }
        if let Some(Value::Array(sort)) = fields.get("sort") {
            if let Some(i) = sort.iter().position(|s| !s.is_object()) {
                return Err(not_object(&format!("sort[{i}]")));
            }
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        crate::api::json::parse(&bytes)
    }

    /// The request as alternatives of `GET` parameters (each with the sort), for a resource
    /// whose parameters are `params` and presets `presets`.
    pub fn alternatives(
        &self,
        params: &[Param],
        presets: &[Preset],
    ) -> Result<Alternatives, ApiError> {
        let mut counted = 0;
        let mut parts: Vec<Alternatives> = Vec::new();
        if let Some(name) = &self.preset {
            let preset = presets.iter().find(|p| p.name == name).ok_or_else(|| {
                let names: Vec<&str> = presets.iter().map(|p| p.name).collect();
                invalid(
                    "preset",
                    format!(
                        "no preset `{name}`; GET /{{Resource}}/_filters lists them: {}",
                        names.join(", ")
                    ),
                )
            })?;
            parts.push(vec![preset
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()]);
        }
        if let Some(filters) = &self.filters {
            let logic = logic(self.filter_logic.as_deref(), "filter_logic")?;
            parts.push(group(filters, logic, params, "filters", &mut counted, 0)?);
        }
        if let Some(filters) = &self.additional_filters {
            parts.push(group(
                filters,
                Logic::And,
                params,
                "additional_filters",
                &mut counted,
                0,
            )?);
        }
        let mut all = and(parts)?;
        let sort = self.sort_parameter()?;
        for alternative in &mut all {
            alternative.extend(sort.clone());
        }
        Ok(all)
    }

    /// `sort` as `_sort=a,-b`.
    fn sort_parameter(&self) -> Result<Option<Pair>, ApiError> {
        let Some(fields) = self.sort.as_ref().filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let keys = fields
            .iter()
            .map(|f| {
                match f
                    .direction
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("asc") => Ok(f.field.clone()),
                    Some("desc") => Ok(format!("-{}", f.field)),
                    Some(_) => Err(invalid("sort", "direction must be asc or desc")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(("_sort".to_owned(), keys.join(","))))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Logic {
    And,
    Or,
}

fn logic(text: Option<&str>, at: &str) -> Result<Logic, ApiError> {
    match text.map(str::to_ascii_uppercase).as_deref() {
        None | Some("AND") => Ok(Logic::And),
        Some("OR") => Ok(Logic::Or),
        Some(_) => Err(invalid(at, "must be AND or OR")),
    }
}

/// Conditions joined by `logic`, as alternatives.
fn group(
    conditions: &[Value],
    logic: Logic,
    params: &[Param],
    at: &str,
    counted: &mut usize,
    depth: usize,
) -> Result<Alternatives, ApiError> {
    if depth > 3 {
        return Err(invalid(at, "conditions may nest at most 3 deep"));
    }
    let parts = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| condition(c, params, &format!("{at}[{i}]"), counted, depth))
        .collect::<Result<Vec<_>, _>>()?;
    match logic {
        Logic::And => and(parts),
        Logic::Or => {
            let all: Alternatives = parts.into_iter().flatten().collect();
            bounded(all)
        }
    }
}

/// One condition, simple or compound, as alternatives.
fn condition(
    value: &Value,
    params: &[Param],
    at: &str,
    counted: &mut usize,
    depth: usize,
) -> Result<Alternatives, ApiError> {
    let Value::Object(object) = value else {
        return Err(invalid(at, "a condition is an object"));
    };
    if object.contains_key("logic") || object.contains_key("conditions") {
        if let Some(key) = object.keys().find(|k| *k != "logic" && *k != "conditions") {
            return Err(invalid(
                at,
                format!("unknown field `{key}` in a compound condition"),
            ));
        }
        let logic = logic(
            object.get("logic").and_then(Value::as_str),
            &format!("{at}.logic"),
        )?;
        let Some(Value::Array(conditions)) = object.get("conditions") else {
            return Err(invalid(at, "`conditions` must be a list"));
        };
        return group(
            conditions,
            logic,
            params,
            &format!("{at}.conditions"),
            counted,
            depth + 1,
        );
    }
    if let Some(key) = object
        .keys()
        .find(|k| !["field", "operator", "value"].contains(&k.as_str()))
    {
        return Err(invalid(at, format!("unknown field `{key}` in a condition")));
    }
    *counted += 1;
    if *counted > MAX_CONDITIONS {
        return Err(invalid(
            at,
            format!("at most {MAX_CONDITIONS} conditions per request"),
        ));
    }
    let field = object.get("field").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            &format!("{at}.field"),
            "name a filter GET /{Resource}/_filters lists",
        )
    })?;
    let param = params
        .iter()
        .find(|p| p.name == field)
        .or_else(|| {
            params
                .iter()
                .find(|p| p.field == field && p.field != "meta")
        })
        .ok_or_else(|| {
            let names: Vec<&str> = params.iter().map(|p| p.name).collect();
            invalid(
                &format!("{at}.field"),
                format!("cannot filter on `{field}`; use {}", names.join(", ")),
            )
        })?;
    let operator = object
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("eq");
    let value = object
        .get("value")
        .ok_or_else(|| invalid(&format!("{at}.value"), "required"))?;
    let name = param.name.to_owned();
    let at_operator = format!("{at}.operator");
    let at_value = format!("{at}.value");
    if operator == "in" {
        let Value::Array(values) = value else {
            return Err(invalid(&at_value, "`in` takes a list of values"));
        };
        if values.is_empty() || matches!(param.kind, Kind::Range | Kind::Contains) {
            return Err(invalid(
                &at_operator,
                "`in` takes a non-empty list, on a code, reference or identifier",
            ));
        }
        let all = values
            .iter()
            .map(|v| Ok(vec![(name.clone(), text(v, &at_value)?)]))
            .collect::<Result<Alternatives, ApiError>>()?;
        return bounded(all);
    }
    let value = text(value, &at_value)?;
    let value = match (param.kind, operator) {
        (Kind::Range, _) => {
            let prefix = match operator {
                "eq" => "eq",
                "ne" => "ne",
                "gt" => "gt",
                "lt" => "lt",
                "ge" | "gte" => "ge",
                "le" | "lte" => "le",
                _ => return Err(invalid(&at_operator, "use eq, ne, gt, gte, lt or lte")),
            };
            format!("{prefix}{value}")
        }
        (Kind::Contains, "contains" | "like" | "ilike") => value,
        (Kind::Contains, _) => {
            return Err(invalid(
                &at_operator,
                format!("`{field}` matches part of a text: use contains"),
            ))
        }
        (_, "eq") => value,
        (_, _) => return Err(invalid(&at_operator, format!("`{field}` takes eq or in"))),
    };
    Ok(vec![vec![(name, value)]])
}

/// A condition's value as a query parameter's text.
fn text(value: &Value, at: &str) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid(at, "must be a string, a number or a boolean")),
    }
}

/// The AND of `parts`: every combination of one alternative of each.
fn and(parts: Vec<Alternatives>) -> Result<Alternatives, ApiError> {
    let mut all: Alternatives = vec![Vec::new()];
    for part in parts {
        let mut next = Vec::new();
        for left in &all {
            for right in &part {
                next.push(left.iter().chain(right).cloned().collect());
            }
        }
        all = bounded(next)?;
    }
    Ok(all)
}

fn bounded(all: Alternatives) -> Result<Alternatives, ApiError> {
    if all.len() > MAX_ALTERNATIVES {
        return Err(invalid(
            "filters",
            format!(
                "the conditions expand to more than {MAX_ALTERNATIVES} alternatives; simplify them"
            ),
        ));
    }
    Ok(all)
}

/// One entry of a `searchset` Bundle.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchEntry {
    #[schema(value_type = Object)]
    pub resource: Value,
    pub search: EntrySearch,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntrySearch {
    /// Always `match`.
    pub mode: String,
    pub score: f64,
}

/// The FHIR `searchset` Bundle OpenSPP's `_search` answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchBundle {
    /// Always `Bundle`.
    pub resource_type: String,
    /// Always `searchset`.
    #[serde(rename = "type")]
    pub bundle_type: String,
    pub total: i64,
    /// `self`, `next` while more follow, `previous` after the first page: the same request
    /// (`POST` it again) at another `_offset`.
    pub link: Vec<crate::api::bundle::BundleLink>,
    pub entry: Vec<SearchEntry>,
}

impl From<SearchResult<Value>> for SearchBundle {
    fn from(result: SearchResult<Value>) -> Self {
        let mut link = vec![crate::api::bundle::BundleLink {
            relation: "self".to_owned(),
            url: result.links.self_,
        }];
        for (relation, url) in [("next", result.links.next), ("previous", result.links.prev)] {
            if let Some(url) = url {
                link.push(crate::api::bundle::BundleLink {
                    relation: relation.to_owned(),
                    url,
                });
            }
        }
        Self {
            resource_type: "Bundle".to_owned(),
            bundle_type: "searchset".to_owned(),
            total: result.meta.total,
            link,
            entry: result
                .data
                .into_iter()
                .map(|resource| SearchEntry {
                    resource,
                    search: EntrySearch {
                        mode: "match".to_owned(),
                        score: 1.0,
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::search_params::{INDIVIDUAL, INDIVIDUAL_PRESETS};
    use serde_json::json;

    fn request(body: Value) -> SearchRequest {
        SearchRequest::from_body(body).unwrap()
    }

    #[test]
    fn objects_must_be_objects() {
        for (body, at) in [
            (json!({"pagination": [10, 0]}), "pagination"),
            (json!({"sort": [["name", "asc"]]}), "sort[0]"),
            (json!([]), "body"),
        ] {
            let error = SearchRequest::from_body(body).unwrap_err();
            assert_eq!(error.status.as_u16(), 422);
            assert_eq!(error.expression.as_deref(), Some(at));
        }
        let error = SearchRequest::from_body(json!({"presett": "x"})).unwrap_err();
        assert_eq!(error.status.as_u16(), 422);
        assert!(SearchRequest::from_body(json!({"pagination": null, "sort": []})).is_ok());
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn and_or_and_in_expand_to_alternatives_of_parameters() {
        let body = json!({
            "filters": [
                {"field": "gender", "operator": "in", "value": ["1", "2"]},
                {"logic": "OR", "conditions": [
                    {"field": "birthdate", "operator": "gte", "value": "1980-01-01"},
                    {"field": "name", "operator": "contains", "value": "san"}]}],
            "sort": [{"field": "birthdate", "direction": "desc"}]});
        let all = request(body).alternatives(INDIVIDUAL, &[]).unwrap();
        assert_eq!(
            all,
            vec![
                pairs(&[
                    ("gender", "1"),
                    ("birthdate", "ge1980-01-01"),
                    ("_sort", "-birthdate")
                ]),
                pairs(&[("gender", "1"), ("name", "san"), ("_sort", "-birthdate")]),
                pairs(&[
                    ("gender", "2"),
                    ("birthdate", "ge1980-01-01"),
                    ("_sort", "-birthdate")
                ]),
                pairs(&[("gender", "2"), ("name", "san"), ("_sort", "-birthdate")]),
            ]
        );
        let or = request(json!({"filter_logic": "OR", "filters": [
            {"field": "gender", "value": 1}, {"field": "active", "value": false}]}));
        assert_eq!(
            or.alternatives(INDIVIDUAL, &[]).unwrap(),
            vec![pairs(&[("gender", "1")]), pairs(&[("active", "false")])]
        );
    }

    #[test]
    fn presets_and_additional_filters_are_anded() {
        let body = json!({"preset": "household-heads",
            "additional_filters": [{"field": "birthDate", "operator": "lt", "value": "2000-01-01"}]});
        assert_eq!(
            request(body)
                .alternatives(INDIVIDUAL, INDIVIDUAL_PRESETS)
                .unwrap(),
            vec![pairs(&[
                ("membership-role", "head"),
                ("birthdate", "lt2000-01-01")
            ])]
        );
        let error = request(json!({"preset": "nope"}))
            .alternatives(INDIVIDUAL, INDIVIDUAL_PRESETS)
            .unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("preset"));
    }

    #[test]
    fn bad_conditions_are_400_naming_where() {
        for (body, at) in [
            (
                json!({"filters": [{"field": "salary", "value": 1}]}),
                "filters[0].field",
            ),
            (
                json!({"filters": [{"field": "name", "value": "x"}]}),
                "filters[0].operator",
            ),
            (
                json!({"filters": [{"field": "gender", "operator": "gt", "value": "1"}]}),
                "filters[0].operator",
            ),
            (
                json!({"filters": [{"field": "gender", "value": {"a": 1}}]}),
                "filters[0].value",
            ),
            (
                json!({"filters": [{"field": "gender"}]}),
                "filters[0].value",
            ),
            (
                json!({"filters": [{"logic": "XOR", "conditions": []}]}),
                "filters[0].logic",
            ),
            (
                json!({"filters": [{"field": "gender", "value": "1", "extra": 1}]}),
                "filters[0]",
            ),
            (
                json!({"filter_logic": "maybe", "filters": []}),
                "filter_logic",
            ),
        ] {
            let error = request(body.clone())
                .alternatives(INDIVIDUAL, &[])
                .unwrap_err();
            assert_eq!(error.status.as_u16(), 400, "{body}");
            assert_eq!(error.expression.as_deref(), Some(at), "{body}");
        }
        let many: Vec<Value> = (0..11)
            .map(|_| json!({"field": "gender", "value": "1"}))
            .collect();
        assert!(request(json!({"filters": many}))
            .alternatives(INDIVIDUAL, &[])
            .is_err());
        let wide: Vec<Value> = (0..6)
            .map(|_| json!({"field": "gender", "operator": "in", "value": ["1", "2"]}))
            .collect();
        let error = request(json!({"filters": wide}))
            .alternatives(INDIVIDUAL, &[])
            .unwrap_err();
        assert!(error.diagnostics.contains("alternatives"));
    }
}
