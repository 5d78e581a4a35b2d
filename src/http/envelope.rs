//! What every request passes through on its way in and its answer on the way out, in one
//! layer: the URI length limit (414), the request metrics, the access log, and the HTTP
//! conventions (`X-API-Version`, rate-limit headers, `304 Not Modified`). One layer rather
//! than one each because a `from_fn` layer clones and boxes the whole stack beneath it for
//! every request; four of them cost a read by identifier a few percent of its time.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::conventions::Conventions;
use super::early_errors;
use crate::app::AppState;
use crate::metrics::Tracked;
use crate::resource::Audit;

/// The order matters where it shows: the metrics and the access log see the status the
/// handler answered (a 200, before it becomes a 304), and a request refused for its URI is
/// counted but opens no access. The access is recorded outside the panic guard (which sits
/// beneath this layer), so an access that ended in a panic is logged as the 500 it answered.
pub async fn around(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let tracked = Tracked::start(&request);
    let conventions = Conventions::of(&mut request);
    let response = match early_errors::too_long(&request) {
        Some(refused) => refused,
        None => {
            let audit = Audit::attach(&mut request);
            let response = next.run(request).await;
            audit
                .record(&state.access_log, response.status().as_u16())
                .await;
            response
        }
    };
    tracked.finish(response.status());
    conventions.finish(response)
}
