//! A DCI `search_criteria` as the query parameters of the REST search over the same read
//! models (`idtype-value`, `expression`, `predicate`; pagination and sort), so that a DCI search
//! runs through `resource::search` with its scopes, consent filter and access log unchanged.
//! Pure: nothing here reads the database.

use openspp_aggregates::{Group, Individual};
use serde_json::Value;

use crate::dci::idtypes::IdTypes;
use crate::resource::Resource;

/// The registry a search runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// People (`Member`, `SRPerson`, `Person`).
    Individual,
    /// Households and other groups (`Group`).
    Group,
}

impl Target {
    pub fn record_type(self) -> &'static str {
        match self {
            Target::Individual => "Member",
            Target::Group => "Group",
        }
    }

    /// The REST resource (and aggregate) searched.
    pub fn resource_type(self) -> &'static str {
        match self {
            Target::Individual => "Individual",
            Target::Group => "Group",
        }
    }

    /// The scope a search of it needs.
    pub fn scope(self) -> &'static str {
        match self {
            Target::Individual => <Individual as Resource>::SCOPE,
            Target::Group => <Group as Resource>::SCOPE,
        }
    }
}

/// Why a search request is rejected: its `status_reason_code` and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected {
    pub code: &'static str,
    pub message: String,
}

fn criteria(message: impl Into<String>) -> Rejected {
    Rejected {
        code: "rjct.search_criteria.invalid",
        message: message.into(),
    }
}

/// A translated search: where it runs, the REST parameters, and the page asked for.
#[derive(Debug)]
pub struct Translated {
    pub target: Target,
    pub params: Vec<(String, String)>,
    pub page_size: i64,
    pub page_number: i64,
}

/// The largest page (as REST's `_count`).
pub const MAX_PAGE_SIZE: i64 = crate::api::params::MAX_COUNT;
const DEFAULT_PAGE_SIZE: i64 = crate::api::params::DEFAULT_COUNT;

pub fn translate(criteria_value: &Value, ids: &IdTypes) -> Result<Translated, Rejected> {
    let target = target(criteria_value)?;
    let mut params = Vec::new();
    let query = &criteria_value["query"];
    match criteria_value["query_type"].as_str().unwrap_or_default() {
        "idtype-value" => id_type_value(query, ids, &mut params)?,
        "expression" => expression(query, target, &mut params)?,
        "predicate" => predicate(query, target, &mut params)?,
        other => return Err(criteria(format!("query_type `{other}` is not supported"))),
    }
    let (page_size, page_number) = pagination(&criteria_value["pagination"])?;
    params.push(("_count".into(), page_size.to_string()));
    params.push((
        "_offset".into(),
        ((page_number - 1) * page_size).to_string(),
    ));
    if let Some(sort) = sort(&criteria_value["sort"], target)? {
        params.push(("_sort".into(), sort));
    }
    Ok(Translated {
        target,
        params,
        page_size,
        page_number,
    })
}

/// `response_entity`, else `reg_record_type`, else the expression's collection; people by
/// default.
fn target(criteria_value: &Value) -> Result<Target, Rejected> {
    let named = criteria_value["response_entity"]
        .as_str()
        .or_else(|| criteria_value["reg_record_type"].as_str())
        .or_else(|| criteria_value["query"]["value"]["expression"]["collection"].as_str());
    let Some(name) = named else {
        return Ok(Target::Individual);
    };
    let bare = name.rsplit([':', '/']).next().unwrap_or(name);
    match bare.to_ascii_lowercase().as_str() {
        "group" | "household" => Ok(Target::Group),
        "member" | "srperson" | "person" | "individual" => Ok(Target::Individual),
        _ => Err(criteria(format!(
            "record type `{name}` is not served; use Member (people) or Group"
        ))),
    }
}

fn id_type_value(
    query: &Value,
    ids: &IdTypes,
    params: &mut Vec<(String, String)>,
) -> Result<(), Rejected> {
    let kind = query["type"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| criteria("query.type: the identifier type is required"))?;
    let value = match &query["value"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(criteria("query.value: the identifier value is required")),
    };
    let system = ids.system(kind).ok_or_else(|| {
        criteria(format!(
            "query.type: `{kind}` is not an identifier type of this registry; use {}",
            ids.names().join(", ")
        ))
    })?;
    params.push(("identifier".into(), format!("{system}|{value}")));
    Ok(())
}

/// One condition on an attribute: the attribute, a comparison, and a value.
struct Condition<'a> {
    attribute: &'a str,
    comparator: &'a str,
    value: &'a Value,
}

fn expression(
    query: &Value,
    target: Target,
    params: &mut Vec<(String, String)>,
) -> Result<(), Rejected> {
    let body = &query["value"]["expression"]["query"];
    if !body.is_object() {
        return Err(criteria(
            "query.value.expression.query: an object of conditions is required",
        ));
    }
    let mut conditions = Vec::new();
    conjunction(body, &mut conditions)?;
    if conditions.is_empty() {
        return Err(criteria(
            "query.value.expression.query: at least one condition",
        ));
    }
    for condition in conditions {
        apply(&condition, target, params)?;
    }
    Ok(())
}

/// `{"$and": [...]}` or `{attribute: {"$op": value} | value, …}`, flattened to conditions that
/// must all hold.
fn conjunction<'a>(body: &'a Value, into: &mut Vec<Condition<'a>>) -> Result<(), Rejected> {
    let Some(object) = body.as_object() else {
        return Err(criteria("query: each condition must be an object"));
    };
    for (key, value) in object {
        match key.as_str() {
            "$and" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| criteria("query.$and: must be an array"))?;
                for item in items {
                    conjunction(item, into)?;
                }
            }
            operator if operator.starts_with('$') => {
                return Err(criteria(format!(
                    "query: `{operator}` is not supported; conditions combine with $and"
                )))
            }
            attribute => match value.as_object() {
                Some(ops) => {
                    for (op, operand) in ops {
                        let comparator = match op.as_str() {
                            "$eq" => "eq",
                            "$ne" => "ne",
                            "$lt" => "lt",
                            "$lte" | "$le" => "le",
                            "$gt" => "gt",
                            "$gte" | "$ge" => "ge",
                            other => {
                                return Err(criteria(format!(
                                    "query.{attribute}: operator `{other}` is not supported; \
                                     use $eq, $ne, $lt, $lte, $gt, $gte"
                                )))
                            }
                        };
                        into.push(Condition {
                            attribute,
                            comparator,
                            value: operand,
                        });
                    }
                }
                None => into.push(Condition {
                    attribute,
                    comparator: "eq",
                    value,
                }),
            },
        }
    }
    Ok(())
}

fn predicate(
    query: &Value,
    target: Target,
    params: &mut Vec<(String, String)>,
) -> Result<(), Rejected> {
    let items = query
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| criteria("query: a predicate query is a non-empty array"))?;
    for item in items {
        let condition = item["condition"].as_str().unwrap_or("and");
        if condition != "and" {
            return Err(criteria(format!(
                "query[].condition: `{condition}` is not supported; predicates combine with `and`"
            )));
        }
        for key in ["expression1", "expression2"] {
            let expression = &item[key];
            if expression.is_null() {
                if key == "expression1" {
                    return Err(criteria("query[].expression1: required"));
                }
                continue;
            }
            let attribute = expression["attribute_name"]
                .as_str()
                .ok_or_else(|| criteria(format!("query[].{key}.attribute_name: required")))?;
            let comparator = match expression["operator"].as_str().unwrap_or_default() {
                op @ ("eq" | "lt" | "gt" | "le" | "ge") => op,
                other => {
                    return Err(criteria(format!(
                        "query[].{key}.operator: `{other}` is not supported; use eq, lt, gt, le, ge"
                    )))
                }
            };
            apply(
                &Condition {
                    attribute,
                    comparator,
                    value: &expression["attribute_value"],
                },
                target,
                params,
            )?;
        }
    }
    Ok(())
}

/// A condition as a REST parameter: only comparisons the read model can answer.
fn apply(
    condition: &Condition,
    target: Target,
    params: &mut Vec<(String, String)>,
) -> Result<(), Rejected> {
    let Condition {
        attribute,
        comparator,
        value,
    } = condition;
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(criteria(format!(
                "query.{attribute}: the value must be a string, number or boolean"
            )))
        }
    };
    let equality_only = |param: &str, value: String| {
        if *comparator == "eq" {
            Ok((param.to_owned(), value))
        } else {
            Err(criteria(format!(
                "query.{attribute}: only equality is supported"
            )))
        }
    };
    let ordered = |param: &str| (param.to_owned(), format!("{comparator}{text}"));
    let (param, value) = match (target, *attribute) {
        (_, "name") => equality_only("name", text)?,
        (Target::Individual, "surname" | "given_name") => equality_only("name", text)?,
        (Target::Individual, "birth_date" | "birthdate") => ordered("birthdate"),
        (Target::Individual, "sex" | "gender") => equality_only("gender", sex_code(&text))?,
        (Target::Individual, "address") => equality_only("address", text)?,
        (Target::Group, "group_type") => equality_only("groupType", text)?,
        (_, "last_updated") => ordered("_lastUpdated"),
        (_, "active") => equality_only("active", text)?,
        _ => {
            return Err(criteria(format!(
                "query: attribute `{attribute}` cannot be searched on {}; use {}",
                target.record_type(),
                match target {
                    Target::Individual =>
                        "name, surname, given_name, birth_date, sex, address, last_updated, active",
                    Target::Group => "name, group_type, last_updated, active",
                }
            )))
        }
    };
    params.push((param, value));
    Ok(())
}

/// DCI's `sex` words as ISO 5218 codes (what this registry stores); codes pass unchanged.
fn sex_code(text: &str) -> String {
    match text.to_ascii_lowercase().as_str() {
        "male" | "m" => "1".into(),
        "female" | "f" => "2".into(),
        "unknown" => "0".into(),
        _ => text.to_owned(),
    }
}

fn pagination(value: &Value) -> Result<(i64, i64), Rejected> {
    let rejected = |message: String| Rejected {
        code: "rjct.pagination.invalid",
        message,
    };
    if value.is_null() {
        return Ok((DEFAULT_PAGE_SIZE, 1));
    }
    let whole = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
    };
    let size = whole(&value["page_size"])
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .ok_or_else(|| {
            rejected(format!(
                "pagination.page_size: a whole number from 1 to {MAX_PAGE_SIZE}"
            ))
        })?;
    let number = match &value["page_number"] {
        Value::Null => 1,
        v => whole(v)
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                rejected("pagination.page_number: a whole number from 1 (the first page)".into())
            })?,
    };
    Ok((size, number))
}

fn sort(value: &Value, target: Target) -> Result<Option<String>, Rejected> {
    let Some(items) = value.as_array().filter(|items| !items.is_empty()) else {
        return Ok(None);
    };
    let rejected = |message: String| Rejected {
        code: "rjct.sort.invalid",
        message,
    };
    let keys: Result<Vec<String>, Rejected> = items
        .iter()
        .map(|item| {
            let name = item["attribute_name"].as_str().unwrap_or_default();
            let key = match (target, name) {
                (_, "name") => "name",
                (Target::Individual, "surname") => "name",
                (Target::Individual, "given_name") => "given",
                (Target::Individual, "birth_date" | "birthdate") => "birthdate",
                (Target::Group, "group_type") => "groupType",
                (_, "last_updated") => "_lastUpdated",
                _ => {
                    return Err(rejected(format!(
                        "sort.attribute_name: cannot sort {} by `{name}`",
                        target.record_type()
                    )))
                }
            };
            Ok(match item["sort_order"].as_str() {
                Some("desc") => format!("-{key}"),
                _ => key.to_owned(),
            })
        })
        .collect();
    Ok(Some(keys?.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> IdTypes {
        IdTypes::new(vec![(
            "UIN".into(),
            "urn:openspp:vocab:id-type#national_id".into(),
        )])
    }

    #[test]
    fn id_type_value_names_the_mapped_system() {
        let t = translate(
            &json!({"query_type": "idtype-value", "query": {"type": "UIN", "value": "A1"},
                    "pagination": {"page_size": 5, "page_number": 3}}),
            &ids(),
        )
        .unwrap();
        assert_eq!(t.target, Target::Individual);
        assert_eq!(
            t.params,
            vec![
                (
                    "identifier".into(),
                    "urn:openspp:vocab:id-type#national_id|A1".into()
                ),
                ("_count".into(), "5".into()),
                ("_offset".into(), "10".into()),
            ]
        );
        let unknown = translate(
            &json!({"query_type": "idtype-value", "query": {"type": "FOO", "value": "1"}}),
            &ids(),
        )
        .unwrap_err();
        assert_eq!(unknown.code, "rjct.search_criteria.invalid");
        assert!(unknown.message.contains("UIN"));
    }

    #[test]
    fn expressions_and_predicates_become_conjunctions() {
        let t = translate(
            &json!({"query_type": "expression", "query": {"type": "ns:org:QueryType:expression",
                "value": {"expression": {"collection": "Member", "query": {"$and": [
                    {"birth_date": {"$lt": "2000-01-01"}}, {"sex": {"$eq": "female"}}]}}}},
                "sort": [{"attribute_name": "birth_date", "sort_order": "desc"}]}),
            &ids(),
        )
        .unwrap();
        assert_eq!(
            t.params[..2],
            [
                ("birthdate".into(), "lt2000-01-01".into()),
                ("gender".into(), "2".into())
            ]
        );
        assert_eq!(t.params.last().unwrap().1, "-birthdate");
        let p = translate(
            &json!({"query_type": "predicate", "reg_record_type": "Group", "query": [{"seq_num": 1,
                "expression1": {"attribute_name": "group_type", "operator": "eq", "attribute_value": "household"},
                "condition": "and",
                "expression2": {"attribute_name": "last_updated", "operator": "ge", "attribute_value": "2020-01-01"}}]}),
            &ids(),
        )
        .unwrap();
        assert_eq!(p.target, Target::Group);
        assert_eq!(p.params[0], ("groupType".into(), "household".into()));
        assert_eq!(p.params[1], ("_lastUpdated".into(), "ge2020-01-01".into()));
        let or = translate(
            &json!({"query_type": "predicate", "query": [{"seq_num": 1, "condition": "or",
                "expression1": {"attribute_name": "name", "operator": "eq", "attribute_value": "x"}}]}),
            &ids(),
        )
        .unwrap_err();
        assert!(or.message.contains("`or`"));
    }

    #[test]
    fn pagination_and_sort_bounds() {
        for bad in [
            json!({"page_size": 0}),
            json!({"page_size": 101}),
            json!({"page_size": 10, "page_number": 0}),
            json!({"page_size": 2.5}),
        ] {
            let r = translate(
                &json!({"query_type": "idtype-value", "query": {"type": "UIN", "value": "1"},
                        "pagination": bad}),
                &ids(),
            )
            .unwrap_err();
            assert_eq!(r.code, "rjct.pagination.invalid");
        }
        let r = translate(
            &json!({"query_type": "idtype-value", "query": {"type": "UIN", "value": "1"},
                    "sort": [{"attribute_name": "poverty_score"}]}),
            &ids(),
        )
        .unwrap_err();
        assert_eq!(r.code, "rjct.sort.invalid");
    }
}
