//! A replacement body together with the top-level fields it states: a client that may not see
//! a field leaves it out, and the aggregate then keeps it as it is — which it can tell from
//! "cleared" only by knowing which fields the body named.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::json::{parse, ApiJson};
use crate::error::ApiError;

/// A replacement body, and the top-level fields it states. A client that may not see a field
/// leaves it out, and the aggregate then keeps it as it is; it cannot tell "left out" from
/// "cleared" without knowing which fields the body named.
pub struct Stated<T> {
    pub body: T,
    pub fields: Vec<String>,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Stated<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let ApiJson(value) = ApiJson::<Value>::from_request(request, state).await?;
        let fields = match &value {
            Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        // Parsed again from the bytes, so shape errors name their field exactly as elsewhere.
        let bytes = serde_json::to_vec(&value).map_err(|_| ApiError::internal())?;
        Ok(Self {
            body: parse(&bytes)?,
            fields,
        })
    }
}
