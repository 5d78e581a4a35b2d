//! A replacement body together with the top-level fields it states: a client that may not see
//! a field leaves it out, and the aggregate then keeps it as it is — which it can tell from
//! "cleared" only by knowing which fields the body named.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::api::json::{json_bytes, parse};
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

    /// The body is parsed from the bytes as sent, exactly as `POST` parses it (a duplicate key
    /// is refused, shape errors name their field); the top-level keys are read from the same
    /// bytes, never through a `Value`, which would keep the last of two duplicate keys.
    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        let body = parse(&bytes)?;
        let TopLevelKeys(fields) = parse(&bytes)?;
        Ok(Self { body, fields })
    }
}

/// A resource body that may carry registered extension data (`extension`).
pub trait ExtendedBody {
    fn extension(&self) -> Option<&serde_json::Value>;
}

/// The keys of a JSON object, its values skipped. A replacement body must be an object: which
/// fields it states is what decides what it changes.
struct TopLevelKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<TopLevelKeys, M::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}
