//! Access-log entries as rows of `COPY … FROM STDIN` in PostgreSQL's text format: one line per
//! entry, its columns separated by tabs, `\N` for NULL. Text is escaped as that format
//! requires (a backslash, a tab, a line feed or a carriage return inside a value would end it
//! early), and arrays are written as array literals of quoted elements, then escaped as text.

use std::fmt::Write;

use chrono::SecondsFormat;
use openspp_projections::statement::text_array_literal;

use super::AccessEntry;

/// The statement the rows of `rows` are sent to: its columns in their order.
pub(super) const STATEMENT: &str =
    "COPY access_log (at, client_id, organization, resource_type, interaction, action, \
     subjects, subject_streams, subjects_not_found, consent_ids, purpose, fields, outcome, \
     request_id) FROM STDIN";

/// The rows of `batch`, each ended by a line feed.
pub(super) fn rows(batch: &[AccessEntry]) -> String {
    let mut out = String::with_capacity(batch.len() * 256);
    for entry in batch {
        row(&mut out, entry);
    }
    out
}

fn row(out: &mut String, e: &AccessEntry) {
    out.push_str(&e.at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    for value in [
        e.client_id.as_str(),
        &e.organization,
        e.resource_type,
        e.interaction,
        e.action,
    ] {
        out.push('\t');
        text(out, value);
    }
    for values in [&e.subjects, &e.streams, &e.not_found, &e.consent_ids] {
        out.push('\t');
        array(out, values);
    }
    out.push('\t');
    match &e.purpose {
        Some(purpose) => text(out, purpose),
        None => out.push_str("\\N"),
    }
    out.push('\t');
    match &e.fields {
        Some(fields) => array(out, fields),
        None => out.push_str("\\N"),
    }
    // An HTTP status is three digits; `outcome` is a smallint.
    let _ = write!(out, "\t{}\t", e.outcome);
    text(out, &e.request_id);
    out.push('\n');
}

/// `value` escaped for the text format.
fn text(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `values` as a `text[]` literal (every element quoted, so that none is read as NULL and
/// commas and braces stay inside it), escaped for the text format.
fn array(out: &mut String, values: &[String]) {
    text(out, &text_array_literal(values.iter().map(String::as_str)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AccessEntry {
        let mut entry = AccessEntry::new("c1", "Org", "req-1", "Individual", "read", "R");
        entry.at = "2026-12-02T01:16:57.073234Z".parse().unwrap();
        entry.outcome = 200;
        entry
    }

    #[test]
    fn a_row_is_its_columns_in_order_with_nulls_marked() {
        let mut e = entry();
        e.subjects = vec!["Individual/a|1".into(), "Group/b|2".into()];
        e.consent_ids = vec!["k".into()];
        assert_eq!(
            rows(&[e]),
            "2026-12-02T01:16:57.073234Z\tc1\tOrg\tIndividual\tread\tR\t\
             {\"Individual/a|1\",\"Group/b|2\"}\t{}\t{}\t{\"k\"}\t\\N\t\\N\t200\treq-1\n"
        );
    }

    #[test]
    fn separators_quotes_and_backslashes_stay_inside_their_value() {
        let mut e = entry();
        e.organization = "a\tb\nc\rd\\e".into();
        e.subjects = vec!["x,\"y\"}{\\z".into(), "NULL".into(), String::new()];
        e.purpose = Some("p\tq".into());
        e.fields = Some(vec![]);
        let line = rows(&[e]);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let columns: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(columns.len(), 14, "{line}");
        assert_eq!(columns[2], "a\\tb\\nc\\rd\\\\e");
        // Array quoting doubles the backslash, the text format doubles both again.
        assert_eq!(columns[6], "{\"x,\\\\\"y\\\\\"}{\\\\\\\\z\",\"NULL\",\"\"}");
        assert_eq!(columns[10], "p\\tq");
        assert_eq!(columns[11], "{}");
    }
}
