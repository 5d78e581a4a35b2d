//! What every resolver shares: the request's [`Call`] (the client, its grants and the
//! access-log entry it builds) and the turning of the application layer's errors into GraphQL
//! errors that keep the REST status and the field at fault.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions};

use crate::auth::Action;
use crate::error::ApiError;
use crate::resource::{Call, Interaction};

/// How the access log names a GraphQL request: one access, whatever resources it touched.
pub const RESOURCE: &str = "GraphQL";
pub const INTERACTION: Interaction = Interaction::new("graphql", "E");

/// The request's call, put in the query's data by the HTTP handler.
pub fn call<'a>(ctx: &Context<'a>) -> &'a Call {
    ctx.data_unchecked::<Arc<Call>>()
}

/// Checks that the caller holds `action` on `scope`, and opens the request's access-log entry
/// (once: later resolvers add to it). A field the scope does not allow is an error on that
/// field alone, as a REST request for it would be a 403.
pub fn open(call: &Call, scope: &str, action: Action) -> async_graphql::Result<()> {
    call.open(scope, action, RESOURCE, INTERACTION).map_err(gql)
}

/// An [`ApiError`] as a GraphQL error: the message REST gives in `detail`, with its status, its
/// FHIR issue code and the field at fault in `extensions`.
pub fn gql(error: ApiError) -> async_graphql::Error {
    let detail = error.detail();
    async_graphql::Error::new(detail).extend_with(|_, extensions| {
        extensions.set("status", error.status.as_u16());
        extensions.set("code", error.code);
        if let Some(field) = &error.expression {
            extensions.set("field", field.as_str());
        }
    })
}

/// A refusal of a GraphQL argument, named as REST names a bad query parameter.
pub fn bad_argument(field: &str, message: &str) -> async_graphql::Error {
    gql(ApiError::bad_request(Some(field), message))
}
