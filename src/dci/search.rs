//! A `SearchRequest` answered as a `SearchResponse` through the REST search of the same
//! resource (`resource::search`): the caller's scopes, its consent filter and field filter,
//! and the access log hold here because they are that code's.

use std::collections::HashSet;

use axum::http::{StatusCode, Uri};
use openspp_aggregates::{Group, Individual};
use serde_json::{json, Value};

use crate::auth::Action;
use crate::dci::envelope::{batch, now, DciError, VERSION};
use crate::dci::idtypes::IdTypes;
use crate::dci::query::{translate, Rejected, Target, Translated};
use crate::dci::records::record;
use crate::resource::{self, Call, Interaction};

/// The registry type this server is.
pub const REG_TYPE: &str = "ns:org:RegistryType:Social";

/// The search requests of `message` (`open`: as the access this request makes), translated (or rejected), with the scope each needs
/// checked first: a client that may not search what it asks for is refused as a whole (403).
pub async fn prepare(
    call: &Call,
    message: &Value,
    open: bool,
) -> Result<(IdTypes, Vec<Result<Translated, Rejected>>), DciError> {
    let items = batch(message, "search_request")?;
    let ids = IdTypes::load(&call.state.pool)
        .await
        .map_err(|e| DciError::from(crate::error::ApiError::from(e)))?;
    let mut seen = HashSet::new();
    let translated: Vec<Result<Translated, Rejected>> = items
        .iter()
        .map(|item| {
            let reference = item["reference_id"].as_str().unwrap_or_default();
            if !seen.insert(reference) {
                return Err(Rejected {
                    code: "rjct.reference_id.duplicate",
                    message: format!("reference_id `{reference}` appears twice in this message"),
                });
            }
            translate(&item["search_criteria"], &ids)
        })
        .collect();
    let targets: Vec<Target> = translated
        .iter()
        .filter_map(|t| t.as_ref().ok().map(|t| t.target))
        .collect();
    // Every search is an access, logged as one (even one whose requests were all rejected);
    // the ACK of an asynchronous search is not: its access is the search the outbox runs.
    let first = targets.first().copied().unwrap_or(Target::Individual);
    if open {
        call.open(
            first.scope(),
            Action::Search,
            first.resource_type(),
            Interaction::SEARCH,
        )?;
    }
    for target in targets {
        call.principal.require(target.scope(), Action::Search)?;
    }
    Ok((ids, translated))
}

/// Runs the prepared requests: the `SearchResponse` message and how many succeeded.
pub async fn run(
    call: &Call,
    message: &Value,
    correlation_id: &str,
    ids: &IdTypes,
    translated: Vec<Result<Translated, Rejected>>,
) -> Result<(Value, usize), DciError> {
    let items = batch(message, "search_request")?;
    let mut responses = Vec::with_capacity(items.len());
    let mut succeeded = 0;
    for (item, translated) in items.iter().zip(translated) {
        let mut response = json!({
            "reference_id": item["reference_id"],
            "timestamp": now(),
        });
        if let Some(locale) = item.get("locale") {
            response["locale"] = locale.clone();
        }
        match translated {
            Err(rejected) => reject(&mut response, rejected),
            Ok(translated) => match one(call, &translated, ids).await? {
                Err(rejected) => reject(&mut response, rejected),
                Ok((records, total)) => {
                    succeeded += 1;
                    response["status"] = json!("succ");
                    response["data"] = json!({
                        "version": VERSION,
                        "reg_type": REG_TYPE,
                        "reg_record_type": translated.target.record_type(),
                        "reg_records": records,
                    });
                    response["pagination"] = json!({
                        "page_size": translated.page_size,
                        "page_number": translated.page_number,
                        "total_count": total,
                    });
                }
            },
        }
        responses.push(response);
    }
    let message = json!({
        "transaction_id": message["transaction_id"],
        "correlation_id": correlation_id,
        "search_response": responses,
    });
    Ok((message, succeeded))
}

fn reject(response: &mut Value, rejected: Rejected) {
    response["status"] = json!("rjct");
    response["status_reason_code"] = json!(rejected.code);
    response["status_reason_message"] = json!(rejected.message);
}

/// One search through the REST search: its records and total, a rejection for criteria the
/// search refuses (400), or the whole request's failure (scope, database).
async fn one(
    call: &Call,
    translated: &Translated,
    ids: &IdTypes,
) -> Result<Result<(Vec<Value>, i64), Rejected>, DciError> {
    let query = serde_urlencoded::to_string(&translated.params)
        .map_err(|_| DciError::bad("the query cannot be encoded"))?;
    let uri: Uri = format!("/dci_api/v1/social/registry/search?{query}")
        .parse()
        .map_err(|_| DciError::bad("the query cannot be encoded"))?;
    let found = match translated.target {
        Target::Individual => resource::search::<Individual>(call, &uri).await,
        Target::Group => resource::search::<Group>(call, &uri).await,
    };
    match found {
        Ok(result) => Ok(Ok((
            result
                .data
                .iter()
                .map(|rendered| record(translated.target, rendered, ids))
                .collect(),
            result.meta.total,
        ))),
        Err(error)
            if error.status == StatusCode::BAD_REQUEST
                || error.status == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            Ok(Err(Rejected {
                code: "rjct.search_criteria.invalid",
                message: error.diagnostics,
            }))
        }
        Err(error) => Err(error.into()),
    }
}
