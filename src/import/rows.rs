//! The rows of an imported file, each with its 1-based line number: NDJSON (one resource or
//! one Bundle-style entry a line) or CSV, whose columns a mapping file places into the
//! resource (CONTRACT §10). Rows are read one at a time, so a file of any size streams.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// One line of the file: the JSON it stands for, or why it cannot be read.
pub struct Row {
    pub line: i64,
    pub parsed: Result<Value, String>,
}

/// How a CSV file's columns become a resource: `{"type": "Individual", "columns": {"column":
/// "path"}, "constants": {"path": value}}`, where a path names a field of the API's JSON shape
/// (`name.family`, `identifier[0].value`). Empty cells are left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
}

impl Mapping {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the mapping {}", path.display()))?;
        let mapping: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a mapping", path.display()))?;
        for path in mapping.columns.values().chain(mapping.constants.keys()) {
            steps(path).with_context(|| format!("mapping path `{path}`"))?;
        }
        Ok(mapping)
    }

    /// The resource one CSV record stands for.
    fn resource(&self, headers: &csv::StringRecord, record: &csv::StringRecord) -> Value {
        let mut resource = Value::Object(Map::new());
        set(
            &mut resource,
            "type",
            Value::String(self.resource_type.clone()),
        );
        for (path, value) in &self.constants {
            set(&mut resource, path, value.clone());
        }
        for (header, cell) in headers.iter().zip(record.iter()) {
            if let (Some(path), false) = (self.columns.get(header), cell.trim().is_empty()) {
                set(&mut resource, path, Value::String(cell.trim().to_owned()));
            }
        }
        resource
    }
}

/// The file's SHA-256 (hex) and how many lines it has: a file is known by its content, so a
/// rerun of the same content resumes, whatever its name.
pub fn fingerprint(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut lines = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        lines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((hex::encode(hasher.finalize()), lines))
}

/// The rows of `path`: CSV when a mapping is given, NDJSON otherwise.
pub fn read(
    path: &Path,
    mapping: Option<Mapping>,
) -> anyhow::Result<Box<dyn Iterator<Item = Row> + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    match mapping {
        None => Ok(Box::new(ndjson(BufReader::new(file)))),
        Some(mapping) => csv_rows(file, mapping),
    }
}

fn ndjson(reader: impl BufRead + Send + 'static) -> impl Iterator<Item = Row> + Send {
    reader.split(b'\n').enumerate().filter_map(|(index, line)| {
        let line_number = index as i64 + 1;
        let parsed = match line {
            Err(error) => Err(format!("cannot be read: {error}")),
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let text = text.trim();
                if text.is_empty() {
                    return None;
                }
                serde_json::from_str::<Value>(text)
                    .map_err(|e| format!("is not JSON: {e}"))
                    .and_then(|value| match value {
                        Value::Object(_) => Ok(value),
                        _ => Err("is not a JSON object".to_owned()),
                    })
            }
        };
        Some(Row {
            line: line_number,
            parsed,
        })
    })
}

fn csv_rows(file: File, mapping: Mapping) -> anyhow::Result<Box<dyn Iterator<Item = Row> + Send>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let headers = reader
        .headers()
        .context("the CSV file has no header row")?
        .clone();
    for column in mapping.columns.keys() {
        if !headers.iter().any(|h| h == column) {
            bail!("the mapping names column `{column}`, which the file does not have");
        }
    }
    Ok(Box::new(reader.into_records().map(
        move |record| match record {
            Ok(record) => Row {
                line: record.position().map_or(0, |p| p.line() as i64),
                parsed: Ok(mapping.resource(&headers, &record)),
            },
            Err(error) => Row {
                line: error.position().map_or(0, |p| p.line() as i64),
                parsed: Err(format!("is not a CSV record: {error}")),
            },
        },
    )))
}

/// One step of a mapping path: a field, or an index into a list.
enum Step {
    Field(String),
    Index(usize),
}

fn steps(path: &str) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (field, mut rest) = part.split_once('[').map_or((part, ""), |(f, r)| (f, r));
        if field.is_empty() {
            bail!("an empty field name");
        }
        steps.push(Step::Field(field.to_owned()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']').context("an unclosed `[`")?;
            steps.push(Step::Index(index.parse().context("an index is a number")?));
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    Ok(steps)
}

/// Sets `value` at `path` in `target`, making the objects and lists on the way.
fn set(target: &mut Value, path: &str, value: Value) {
    let Ok(steps) = steps(path) else {
        return;
    };
    let mut current = target;
    for step in steps {
        current = match step {
            Step::Field(name) => {
                if !current.is_object() {
                    *current = Value::Object(Map::new());
                }
                current
                    .as_object_mut()
                    .expect("an object")
                    .entry(name)
                    .or_insert(Value::Null)
            }
            Step::Index(index) => {
                if !current.is_array() {
                    *current = Value::Array(Vec::new());
                }
                let list = current.as_array_mut().expect("a list");
                while list.len() <= index {
                    list.push(Value::Null);
                }
                &mut list[index]
            }
        };
    }
    *current = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mapping_paths_build_the_resource() {
        let mapping = Mapping {
            resource_type: "Individual".to_owned(),
            columns: [
                ("id", "identifier[0].value"),
                ("family", "name.family"),
                ("sex", "gender.coding[0].code"),
            ]
            .map(|(c, p)| (c.to_owned(), p.to_owned()))
            .into(),
            constants: [("identifier[0].system".to_owned(), json!("urn:x"))].into(),
        };
        let headers = csv::StringRecord::from(vec!["id", "family", "sex", "ignored"]);
        let record = csv::StringRecord::from(vec!["A1", "Santos", "", "x"]);
        assert_eq!(
            mapping.resource(&headers, &record),
            json!({"type": "Individual", "identifier": [{"system": "urn:x", "value": "A1"}],
                   "name": {"family": "Santos"}})
        );
    }

    #[test]
    fn ndjson_rows_keep_their_line_numbers() {
        let text = "{\"a\":1}\n\n[1]\nnot json\n{\"b\":2}\n";
        let rows: Vec<Row> = ndjson(std::io::Cursor::new(text.as_bytes().to_vec())).collect();
        let lines: Vec<i64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 3, 4, 5]);
        assert!(rows[0].parsed.is_ok() && rows[3].parsed.is_ok());
        assert!(rows[1].parsed.is_err() && rows[2].parsed.is_err());
    }
}
