//! The one refusal of an impossible state change, shared by every state machine (membership,
//! cycle, entitlement): a 409 that names where the resource may go from where it is, so a
//! client learns the machine from the answer.

use crate::error::DomainError;

/// `Ok` when `from` may become `to` (staying put is no change); else a conflict on `field`
/// naming the states `next` allows. `what` names the resource (`a draft cycle cannot …`).
pub(crate) fn check<S: Copy + PartialEq>(
    what: &str,
    field: &str,
    from: S,
    to: S,
    next: &[S],
    name: fn(S) -> &'static str,
) -> Result<(), DomainError> {
    if from == to || next.contains(&to) {
        return Ok(());
    }
    let allowed: Vec<&str> = next.iter().map(|s| name(*s)).collect();
    Err(DomainError::conflict(
        Some(field),
        format!(
            "a {} {what} cannot become {}; allowed: {}",
            name(from),
            name(to),
            if allowed.is_empty() {
                "none (final state)".to_owned()
            } else {
                allowed.join(", ")
            }
        ),
    ))
}
