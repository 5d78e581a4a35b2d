//! `openspp vocabulary import FILE` and `openspp vocabulary add-id-type`.
//!
//! An import file is JSON shaped like the Vocabulary API's answer (`namespace_uri`, `name`,
//! `version`, `description`, `domain`, …, and `codes: [{code, display, definition?,
//! parent_code?, …}]`), or CSV with those code columns (the vocabulary named by `--namespace`
//! and, for a new one, `--name`). Every row is read and checked before anything is recorded, so
//! a bad row (reported with its line) leaves the vocabulary as it was; importing the same file
//! again records nothing. A field left out keeps its value; one given as null (an empty CSV
//! cell) clears it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use openspp_aggregates::managed_vocabulary::stated;
use openspp_aggregates::{
    CodeInput, CodeTarget, DomainError, HeaderInput, ManagedVocabulary, VocabularyCatalog,
    VocabularyCommand,
};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use sqlx::PgPool;

use crate::operator::{record, ChangeArgs};
use crate::vocabulary::{Catalog, ID_TYPE};

#[derive(clap::Subcommand, Debug)]
pub enum VocabularyCommandArgs {
    /// Add or change a vocabulary and its codes from a JSON or CSV file.
    Import {
        file: PathBuf,
        /// For CSV: the vocabulary's namespace URI (a JSON file names its own).
        #[arg(long)]
        namespace: Option<String>,
        /// For CSV: the vocabulary's name (needed for a new one).
        #[arg(long)]
        name: Option<String>,
        /// For CSV: its version.
        #[arg(long)]
        version: Option<String>,
        /// For CSV: its description.
        #[arg(long)]
        description: Option<String>,
        /// For CSV: its domain (core, social_assistance, …; default core).
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Register an identifier system (a code of urn:openspp:vocab:id-type).
    AddIdType {
        /// The code (`ke_national_id`).
        #[arg(long)]
        code: String,
        /// The identifier system URI registrants carry (`urn:gov:ke:iprs:national-id`).
        #[arg(long)]
        system: String,
        #[arg(long)]
        display: String,
        /// Which registrants may carry it.
        #[arg(long, value_enum)]
        target: Target,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Target {
    Individual,
    Group,
    Both,
}

impl From<Target> for CodeTarget {
    fn from(target: Target) -> Self {
        match target {
            Target::Individual => Self::Individual,
            Target::Group => Self::Group,
            Target::Both => Self::Both,
        }
    }
}

/// A code row of either format, with the API's read-only `level` accepted and ignored (it is
/// derived from `parent_code`), so that an answer of `/codes` imports as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRow {
    code: String,
    display: String,
    #[serde(default, deserialize_with = "stated")]
    definition: Option<Option<String>>,
    #[serde(default, deserialize_with = "stated")]
    parent_code: Option<Option<String>>,
    #[serde(default)]
    target_type: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    sequence: Option<i32>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default, rename = "level")]
    _level: Option<u32>,
}

impl CodeRow {
    fn into_input(self) -> Result<CodeInput, String> {
        let target_type = self
            .target_type
            .filter(|t| !t.is_empty())
            .map(|t| {
                CodeTarget::parse(&t)
                    .ok_or_else(|| format!("target_type `{t}`: use individual, group or both"))
            })
            .transpose()?;
        Ok(CodeInput {
            code: self.code,
            display: self.display,
            definition: self.definition,
            parent_code: self.parent_code,
            target_type,
            uri: self.uri.filter(|u| !u.is_empty()),
            sequence: self.sequence,
            deprecated: self.deprecated,
        })
    }
}

/// The JSON file: the API's vocabulary answer with its codes. `code_count` (derived) is
/// accepted and ignored, as `level` is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyFile<'a> {
    namespace_uri: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "stated")]
    version: Option<Option<String>>,
    #[serde(default, deserialize_with = "stated")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "stated")]
    reference_url: Option<Option<String>>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    is_hierarchical: Option<bool>,
    #[serde(default, rename = "code_count")]
    _code_count: Option<u64>,
    #[serde(default, borrow)]
    codes: Vec<&'a RawValue>,
}

/// A file read and checked row by row: the command, and each code row's line.
struct Parsed {
    namespace: String,
    header: HeaderInput,
    codes: Vec<CodeInput>,
    lines: Vec<u64>,
}

fn line_of(text: &str, part: &str) -> u64 {
    let offset = (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    1 + text[..offset.min(text.len())].matches('\n').count() as u64
}

fn parse_json(text: &str) -> anyhow::Result<Parsed> {
    let file: VocabularyFile =
        serde_json::from_str(text).map_err(|e| anyhow!("line {}: {e}", e.line()))?;
    let mut codes = Vec::with_capacity(file.codes.len());
    let mut lines = Vec::with_capacity(file.codes.len());
    for raw in file.codes {
        let line = line_of(text, raw.get());
        let row: CodeRow = serde_json::from_str(raw.get())
            .map_err(|e| anyhow!("line {}: {e}", line + e.line() as u64 - 1))?;
        codes.push(row.into_input().map_err(|e| anyhow!("line {line}: {e}"))?);
        lines.push(line);
    }
    Ok(Parsed {
        namespace: file.namespace_uri,
        header: HeaderInput {
            name: file.name,
            version: file.version,
            description: file.description,
            reference_url: file.reference_url,
            domain: file.domain,
            is_hierarchical: file.is_hierarchical,
        },
        codes,
        lines,
    })
}

fn parse_csv(text: &str, namespace: String, header: HeaderInput) -> anyhow::Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("line 1: no header row")?.clone();
    let mut codes = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow!("line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row: CodeRow = record
            .deserialize(Some(&headers))
            .map_err(|e| anyhow!("line {line}: {e}"))?;
        codes.push(row.into_input().map_err(|e| anyhow!("line {line}: {e}"))?);
        lines.push(line);
    }
    Ok(Parsed {
        namespace,
        header,
        codes,
        lines,
    })
}

/// `codes[3].parent_code: …` as `line 5: codes[3].parent_code: …`.
fn at_line(error: DomainError, lines: &[u64]) -> anyhow::Error {
    if let DomainError::Invalid { field, .. } = &error {
        let row = field
            .strip_prefix("codes[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(index, _)| index.parse::<usize>().ok());
        if let Some(line) = row.and_then(|i| lines.get(i)) {
            return anyhow!("line {line}: {error}");
        }
    }
    anyhow!("{error}")
}

fn is_json(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => true,
        Some(ext) if ext.eq_ignore_ascii_case("csv") => false,
        _ => text.trim_start().starts_with('{'),
    }
}

pub async fn run(pool: &PgPool, command: VocabularyCommandArgs) -> anyhow::Result<()> {
    let catalog: Arc<dyn VocabularyCatalog> = Arc::new(
        Catalog::load(&mut *pool.acquire().await?)
            .await
            .context("cannot load the vocabularies")?,
    );
    match command {
        VocabularyCommandArgs::Import {
            file,
            namespace,
            name,
            version,
            description,
            domain,
            change,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let parsed = if is_json(&file, &text) {
                if namespace.is_some()
                    || name.is_some()
                    || version.is_some()
                    || description.is_some()
                    || domain.is_some()
                {
                    bail!("a JSON file names its vocabulary; --namespace, --name, --version, --description and --domain are for CSV");
                }
                parse_json(&text)?
            } else {
                let namespace = namespace.ok_or_else(|| anyhow!("a CSV file needs --namespace"))?;
                let header = HeaderInput {
                    name,
                    version: version.map(Some),
                    description: description.map(Some),
                    domain,
                    ..HeaderInput::default()
                };
                parse_csv(&text, namespace, header)?
            };
            let Parsed {
                namespace,
                header,
                codes,
                lines,
            } = parsed;
            let rows = codes.len();
            let recorded = record::<ManagedVocabulary>(
                pool,
                &namespace,
                VocabularyCommand::Import {
                    namespace: namespace.clone(),
                    header,
                    codes,
                },
                &catalog,
                &change,
                "import",
                |error| at_line(error, &lines),
            )
            .await?;
            println!(
                "{}",
                recorded.json(json!({"namespace_uri": namespace, "rows": rows}))
            );
        }
        VocabularyCommandArgs::AddIdType {
            code,
            system,
            display,
            target,
            change,
        } => {
            let input = CodeInput {
                code: code.clone(),
                display,
                uri: Some(system.clone()),
                target_type: Some(target.into()),
                ..CodeInput::default()
            };
            let recorded = record::<ManagedVocabulary>(
                pool,
                ID_TYPE,
                VocabularyCommand::AddCode {
                    namespace: ID_TYPE.to_owned(),
                    code: input,
                },
                &catalog,
                &change,
                "manual",
                |error| match error {
                    DomainError::Invalid { field, message } => {
                        let option = match field.as_str() {
                            "uri" => "--system",
                            "code" => "--code",
                            "display" => "--display",
                            other => other,
                        };
                        anyhow!("{option}: {message}")
                    }
                    other => anyhow!("{other}"),
                },
            )
            .await?;
            println!(
                "{}",
                recorded.json(json!({"namespace_uri": ID_TYPE, "code": code, "system": system}))
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_are_located_by_line() {
        let text = "{\"namespace_uri\": \"urn:x\", \"name\": \"X\",\n \"codes\": [\n  {\"code\": \"a\", \"display\": \"A\"},\n  {\"code\": \"b\", \"display\": \"B\", \"colour\": \"red\"}\n]}";
        let error = parse_json(text).err().expect("unknown field refused");
        assert!(error.to_string().starts_with("line 4:"), "{error}");
        let ok = parse_json(&text.replace(", \"colour\": \"red\"", "")).unwrap();
        assert_eq!(ok.lines, vec![3, 4]);
        assert_eq!(ok.codes[1].definition, None, "left out: kept");
    }

    #[test]
    fn csv_rows_are_located_by_line_and_empty_cells_clear() {
        let text = "code,display,definition,parent_code\nrice,Rice,,\nred,Red rice,,rice\n";
        let parsed = parse_csv(text, "urn:x".into(), HeaderInput::default()).unwrap();
        assert_eq!(parsed.lines, vec![2, 3]);
        assert_eq!(parsed.codes[0].definition, Some(None));
        assert_eq!(parsed.codes[1].parent_code, Some(Some("rice".into())));
        let error = at_line(
            DomainError::invalid("codes[1].parent_code", "nope"),
            &parsed.lines,
        );
        assert_eq!(error.to_string(), "line 3: codes[1].parent_code: nope");
        let bad = parse_csv(
            "code,display,colour\na,A,red\n",
            "urn:x".into(),
            HeaderInput::default(),
        );
        assert!(bad.err().unwrap().to_string().starts_with("line 2:"));
    }
}
