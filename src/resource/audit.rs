//! The access log, per request (CONTRACT §6: every API access is logged, reads and searches
//! included, with its real outcome).
//!
//! An operation opens the request's entry when it starts (after its scope check) and adds what it
//! touched, returned and mentioned; one middleware records the entry once the response exists,
//! with the status that response really has. So no handler writes to the log, and no outcome can
//! be logged as anything but what the caller received (the shape of axum's error-handling
//! example: attach to the response, log in one place).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::Request;

use crate::access_log::{AccessEntry, AccessLog, Disclosure};
use crate::auth::Principal;

/// What kind of access a request is: its name (the AuditEvent `subtype`) and FHIR's AuditEvent
/// action code (`C` create, `R` read, `U` update, `D` delete, `E` execute, searches included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interaction {
    pub name: &'static str,
    pub action: &'static str,
}

impl Interaction {
    pub const READ: Self = Self::new("read", "R");
    pub const SEARCH: Self = Self::new("search", "E");
    pub const CREATE: Self = Self::new("write", "C");
    pub const UPDATE: Self = Self::new("write", "U");
    pub const DELETE: Self = Self::new("write", "D");
    pub const HISTORY: Self = Self::new("history", "R");
    pub const VREAD: Self = Self::new("vread", "R");
    pub const VERIFY: Self = Self::new("verify", "E");

    pub const fn new(name: &'static str, action: &'static str) -> Self {
        Self { name, action }
    }
}

/// The access-log entry a request is building, shared between the operations that fill it and
/// the middleware that records it. Empty until an operation opens it: a request refused before
/// it touched any data (no token, no scope) is not an access.
#[derive(Clone, Default)]
pub struct Audit(Arc<Mutex<Option<AccessEntry>>>);

impl Audit {
    /// Gives `request` its audit, which the handler fills and `record` stores.
    pub fn attach(request: &mut Request) -> Self {
        let audit = Self::default();
        request.extensions_mut().insert(audit.clone());
        audit
    }

    /// Hands what was collected to `log`, with the status the access was answered.
    pub async fn record(&self, log: &AccessLog, status: u16) {
        if let Some(entry) = self.finish(status) {
            log.record(entry).await;
        }
    }

    fn entry(&self) -> MutexGuard<'_, Option<AccessEntry>> {
        // A poisoned lock means a handler panicked while adding to the entry; what it holds is
        // still the truest account of the request.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the entry of an access to `resource`. A request makes one access; opening again
    /// keeps the first (an operation that reuses another's steps is still one access).
    pub fn open(
        &self,
        principal: &Principal,
        request_id: &str,
        resource: &'static str,
        interaction: Interaction,
    ) {
        let mut entry = self.entry();
        if entry.is_none() {
            *entry = Some(AccessEntry::new(
                &principal.client_id,
                &principal.organization,
                request_id,
                resource,
                interaction.name,
                interaction.action,
            ));
        }
    }

    /// A subject the request touched or returned (`Individual/{system}|{value}`), its stream when
    /// it exists, and what it was shown under.
    pub fn returned(&self, subject: String, stream: Option<&str>, shown: Option<&Disclosure>) {
        if let Some(entry) = self.entry().as_mut() {
            entry.returned(bounded(subject), stream, shown);
        }
    }

    /// The request stopped at looking up `subject`: it does not exist, or the caller may not
    /// see it (the two are one answer). The entry says so (`lookup`), whatever the request
    /// meant to do with it, and names what was asked for.
    pub fn not_found(&self, subject: String, stream: Option<&str>) {
        if let Some(entry) = self.entry().as_mut() {
            entry.interaction = "lookup";
            entry.not_found(bounded(subject), stream);
        }
    }

    /// One of several subjects the request asked for (a bulk export) that it did not get:
    /// unknown, or not the caller's to see. The entry names it among the others, marked as
    /// not found, with its stream when it exists.
    pub fn asked_not_found(&self, subject: String, stream: Option<&str>) {
        if let Some(entry) = self.entry().as_mut() {
            entry.not_found(bounded(subject), stream);
        }
    }

    /// Subjects the answer names inside another resource (a group's members, a membership's
    /// beneficiary), as `(reference, stream)`.
    pub fn mentioning(&self, mentioned: impl IntoIterator<Item = (String, String)>) {
        if let Some(entry) = self.entry().as_mut() {
            entry.mentioning(
                mentioned
                    .into_iter()
                    .map(|(subject, stream)| (bounded(subject), stream)),
            );
        }
    }

    /// The entry, with the outcome the request had; `None` if no access was opened.
    pub fn finish(&self, outcome: u16) -> Option<AccessEntry> {
        self.entry().take().map(|mut entry| {
            entry.outcome = outcome;
            entry
        })
    }
}

/// The longest subject reference the log keeps, in bytes. A reference is how the request
/// named a subject — a path or a body may name one with a few kilobytes of text — but no
/// identifier is that long (values are at most 100 characters), and the log indexes every
/// reference, where PostgreSQL refuses an entry over 2,712 bytes: one such entry would make
/// its whole batch unstorable. Longer references are cut, marked with `…`.
const MAX_SUBJECT_BYTES: usize = 1024;

/// A subject reference as the log can store it: cut to `MAX_SUBJECT_BYTES`, and with NUL
/// (which PostgreSQL text cannot hold, and which a request may well send) shown as U+FFFD.
fn bounded(subject: String) -> String {
    let mut subject = if subject.contains('\0') {
        subject.replace('\0', "\u{FFFD}")
    } else {
        subject
    };
    if subject.len() > MAX_SUBJECT_BYTES {
        let mut end = MAX_SUBJECT_BYTES;
        while !subject.is_char_boundary(end) {
            end -= 1;
        }
        subject.truncate(end);
        subject.push('…');
    }
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_references_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("Individual/x|1".to_owned()), "Individual/x|1");
        let long = format!("Individual/x|{}", "é".repeat(2000));
        let cut = bounded(long);
        assert!(cut.len() <= MAX_SUBJECT_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(
            bounded("Individual/a\0b|c".to_owned()),
            "Individual/a\u{FFFD}b|c"
        );
    }
}
