//! API clients: created, listed, deactivated and re-keyed by the operator (never over HTTP).
//! The secret is random, shown once, and stored only as an argon2id hash.

use std::collections::HashMap;

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sqlx::PgPool;

use crate::api::reference::parse_identifier;
use crate::auth::scopes;
use crate::extensions::{ExtensionCatalog, Extensions};
use crate::store::claims::resolve_program;
use openspp_aggregates::consent::{self, LEGAL_BASES};
use openspp_aggregates::{ExtendedResource, ExtensionSchemas};

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub organization: String,
    pub organization_type: String,
    pub scopes: Vec<String>,
    /// `SYSTEM|VALUE` of each program the client is limited to.
    pub allowed_programs: Vec<String>,
    /// `resource:field` entries the client is limited to.
    pub field_filter: Vec<String>,
    pub require_consent: bool,
    pub legal_basis: Option<String>,
    pub rate_limit_per_minute: u32,
    pub rate_limit_per_day: u32,
}

/// What the operator is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: String,
    pub organization: String,
    pub organization_type: String,
    pub scopes: Vec<String>,
    /// Each allowed program by its current identifiers (`system|value`), never by stream.
    #[sqlx(skip)]
    pub allowed_programs: Vec<Vec<String>>,
    pub require_consent: bool,
    pub legal_basis: Option<String>,
    pub rate_limit_per_minute: i32,
    pub rate_limit_per_day: i32,
    pub active: bool,
}

fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashes any input")
        .to_string()
}

pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn validate(client: &NewClient) -> anyhow::Result<()> {
    if client.name.trim().is_empty() || client.organization.trim().is_empty() {
        bail!("--name and --organization must not be empty");
    }
    let org_type = &client.organization_type;
    if org_type.is_empty()
        || !org_type
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
    {
        bail!("--organization-type must be a lower-case code such as government, ngo, private, international");
    }
    validate_scopes(&client.scopes)?;
    validate_fields(&client.field_filter)?;
    validate_programs(&client.allowed_programs)?;
    match (&client.legal_basis, client.require_consent) {
        (Some(basis), _) if !LEGAL_BASES.contains(&basis.as_str()) => {
            bail!("--legal-basis must be one of {}", LEGAL_BASES.join(", "))
        }
        (None, false) => bail!("--no-consent-required needs --legal-basis"),
        _ => Ok(()),
    }
}

fn validate_scopes(given: &[String]) -> anyhow::Result<()> {
    if given.is_empty() {
        bail!("give at least one --scope resource:action");
    }
    for scope in given {
        scopes::validate(scope).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

fn validate_fields(given: &[String]) -> anyhow::Result<()> {
    for entry in given {
        let known = entry.split_once(':').is_some_and(|(resource, field)| {
            let fields = consent::consentable_fields(resource);
            fields.contains(&field)
                || (consent::named_extension(field).is_some()
                    && fields.contains(&consent::EXTENSION))
        });
        if !known {
            bail!(
                "--field `{entry}` must be RESOURCE:FIELD, e.g. individual:name or \
                 individual:extension.farmer"
            );
        }
    }
    Ok(())
}

/// The field filter as it is stored: one extension named by its registered URI
/// (`individual:extension.urn:openspp:extension:farmer`), as consents name it, whatever name
/// the operator gave (`individual:extension.farmer`).
async fn canonical_fields(pool: &PgPool, given: &[String]) -> anyhow::Result<Vec<String>> {
    if !given.iter().any(|entry| entry.contains(":extension.")) {
        return Ok(given.to_vec());
    }
    let mut conn = pool.acquire().await?;
    let extensions = Extensions::new(ExtensionCatalog::load(&mut conn).await?);
    given
        .iter()
        .map(|entry| {
            let Some((resource, field)) = entry.split_once(':') else {
                return Ok(entry.clone());
            };
            let Some(name) = consent::named_extension(field) else {
                return Ok(entry.clone());
            };
            let uri = ExtendedResource::parse(resource)
                .and_then(|resource| extensions.resolve(resource, name))
                .with_context(|| {
                    format!("--field `{entry}`: no extension `{name}` is registered for {resource}")
                })?;
            Ok(format!("{resource}:{}", consent::extension_field(&uri)))
        })
        .collect()
}

fn validate_programs(given: &[String]) -> anyhow::Result<()> {
    for program in given {
        if parse_identifier(program, "program").is_err() {
            bail!("--program `{program}` must be an external identifier SYSTEM|VALUE");
        }
    }
    Ok(())
}

/// The streams of the programs given as `SYSTEM|VALUE`: a client is bound to the programs
/// themselves, so that a rename (which moves the name alias) neither takes a program away from
/// it nor hands it the next program to take the old name.
async fn resolve_programs(pool: &PgPool, programs: &[String]) -> anyhow::Result<Vec<String>> {
    let mut streams = Vec::with_capacity(programs.len());
    for program in programs {
        let identifier = parse_identifier(program, "program")?;
        match resolve_program(pool, identifier).await? {
            Some(stream) => streams.push(stream),
            None => bail!("--program `{program}`: no program has this identifier"),
        }
    }
    Ok(streams)
}

pub async fn create_client(pool: &PgPool, client: NewClient) -> anyhow::Result<CreatedClient> {
    validate(&client)?;
    let field_filter = canonical_fields(pool, &client.field_filter).await?;
    let allowed_programs = resolve_programs(pool, &client.allowed_programs).await?;
    let client_id = format!("client_{}", random_token(16));
    let client_secret = random_token(32);
    let hash = tokio::task::spawn_blocking({
        let secret = client_secret.clone();
        move || hash_secret(&secret)
    })
    .await?;
    sqlx::query(
        "INSERT INTO api_clients (client_id, name, organization, organization_type, secret_hash, \
             scopes, allowed_programs, field_filter, require_consent, legal_basis, \
             rate_limit_per_minute, rate_limit_per_day) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&client_id)
    .bind(client.name.trim())
    .bind(client.organization.trim())
    .bind(&client.organization_type)
    .bind(hash)
    .bind(&client.scopes)
    .bind(&allowed_programs)
    .bind(&field_filter)
    .bind(client.require_consent)
    .bind(&client.legal_basis)
    .bind(client.rate_limit_per_minute as i32)
    .bind(client.rate_limit_per_day as i32)
    .execute(pool)
    .await
    .context("cannot store the client")?;
    Ok(CreatedClient {
        client_id,
        client_secret,
    })
}

#[derive(sqlx::FromRow)]
struct ListedClient {
    #[sqlx(flatten)]
    summary: ClientSummary,
    program_streams: Vec<String>,
}

/// The organisation a client acts for (a consent receipt's controller is its recorder's).
pub async fn organization_of(pool: &PgPool, client_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT organization FROM api_clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_optional(pool)
        .await
}

pub async fn list_clients(pool: &PgPool) -> sqlx::Result<Vec<ClientSummary>> {
    let rows: Vec<ListedClient> = sqlx::query_as(
        "SELECT client_id, name, organization, organization_type, scopes, \
                allowed_programs AS program_streams, require_consent, legal_basis, \
                rate_limit_per_minute, rate_limit_per_day, active \
         FROM api_clients ORDER BY created_at, client_id",
    )
    .fetch_all(pool)
    .await?;
    let streams: Vec<String> = rows
        .iter()
        .flat_map(|r| r.program_streams.iter().cloned())
        .collect();
    let claims: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, system || '|' || value FROM identifier_claims \
         WHERE aggregate_type = 'Program' AND aggregate_id = ANY($1) ORDER BY system, value",
    )
    .bind(streams)
    .fetch_all(pool)
    .await?;
    let mut identifiers: HashMap<String, Vec<String>> = HashMap::new();
    for (stream, identifier) in claims {
        identifiers.entry(stream).or_default().push(identifier);
    }
    Ok(rows
        .into_iter()
        .map(|row| ClientSummary {
            allowed_programs: row
                .program_streams
                .iter()
                .map(|stream| identifiers.get(stream).cloned().unwrap_or_default())
                .collect(),
            ..row.summary
        })
        .collect())
}

/// What `client update` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub scopes: Option<Vec<String>>,
    /// `SYSTEM|VALUE` of each program; `Some(vec![])` lifts the limit.
    pub allowed_programs: Option<Vec<String>>,
    /// `Some(vec![])` lifts the field limits.
    pub field_filter: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limit_per_day: Option<u32>,
}

/// Changes an active client's grants or limits. Tokens already issued keep their scopes only as
/// far as the client still holds them (checked per request), so a narrowing takes effect at once.
pub async fn update_client(
    pool: &PgPool,
    client_id: &str,
    changes: ClientChanges,
) -> anyhow::Result<()> {
    if let Some(scopes) = &changes.scopes {
        validate_scopes(scopes)?;
    }
    let field_filter = match &changes.field_filter {
        Some(fields) => {
            validate_fields(fields)?;
            Some(canonical_fields(pool, fields).await?)
        }
        None => None,
    };
    let programs = match &changes.allowed_programs {
        Some(programs) => {
            validate_programs(programs)?;
            Some(resolve_programs(pool, programs).await?)
        }
        None => None,
    };
    let done = sqlx::query(
        "UPDATE api_clients SET scopes = COALESCE($2, scopes), \
             allowed_programs = COALESCE($3, allowed_programs), \
             field_filter = COALESCE($4, field_filter), \
             rate_limit_per_minute = COALESCE($5, rate_limit_per_minute), \
             rate_limit_per_day = COALESCE($6, rate_limit_per_day) \
         WHERE client_id = $1 AND active",
    )
    .bind(client_id)
    .bind(&changes.scopes)
    .bind(&programs)
    .bind(&field_filter)
    .bind(changes.rate_limit_per_minute.map(|n| n as i32))
    .bind(changes.rate_limit_per_day.map(|n| n as i32))
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        bail!("no active client {client_id}");
    }
    Ok(())
}

/// Deactivates a client; its tokens fail from the next request on.
pub async fn deactivate_client(pool: &PgPool, client_id: &str) -> anyhow::Result<()> {
    let done = sqlx::query(
        "UPDATE api_clients SET active = false, deactivated_at = now() \
         WHERE client_id = $1 AND active",
    )
    .bind(client_id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        bail!("no active client {client_id}");
    }
    Ok(())
}

/// Replaces a client's secret. The old secret stops working at once, and so does every token
/// issued under it: tokens carry the secret version they were issued under.
pub async fn rotate_secret(pool: &PgPool, client_id: &str) -> anyhow::Result<CreatedClient> {
    let client_secret = random_token(32);
    let hash = tokio::task::spawn_blocking({
        let secret = client_secret.clone();
        move || hash_secret(&secret)
    })
    .await?;
    let done = sqlx::query(
        "UPDATE api_clients SET secret_hash = $2, secret_version = secret_version + 1 \
             WHERE client_id = $1 AND active",
    )
    .bind(client_id)
    .bind(hash)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        bail!("no active client {client_id}");
    }
    Ok(CreatedClient {
        client_id: client_id.to_owned(),
        client_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> NewClient {
        NewClient {
            name: "n".into(),
            organization: "o".into(),
            organization_type: "ngo".into(),
            scopes: vec!["individual:read".into()],
            allowed_programs: vec![],
            field_filter: vec![],
            require_consent: true,
            legal_basis: None,
            rate_limit_per_minute: 60,
            rate_limit_per_day: 10_000,
        }
    }

    #[test]
    fn secrets_verify_only_against_their_own_hash() {
        let hash = hash_secret("s3cret");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("s3cret ", &hash));
        assert!(!verify_secret("s3cret", "not a hash"));
    }

    #[test]
    fn client_settings_are_checked() {
        assert!(validate(&client()).is_ok());
        let mut c = client();
        c.require_consent = false;
        assert!(validate(&c).is_err(), "no consent needs a legal basis");
        c.legal_basis = Some("public_task".into());
        assert!(validate(&c).is_ok());
        c.legal_basis = Some("because".into());
        assert!(validate(&c).is_err());
        let mut c = client();
        c.scopes = vec!["individual:steal".into()];
        assert!(validate(&c).is_err());
        let mut c = client();
        c.allowed_programs = vec!["no-bar".into()];
        assert!(validate(&c).is_err());
        let mut c = client();
        c.field_filter = vec!["individual:salary".into()];
        assert!(validate(&c).is_err());
        c.field_filter = vec!["individual:name".into()];
        assert!(validate(&c).is_ok());
        let mut c = client();
        c.organization_type = "Big NGO".into();
        assert!(validate(&c).is_err());
    }
}
