//! A synthetic registry written through the store's batch append path: the same events, hash
//! chain, identifier claims, consent index and read-model rows the server writes for the same
//! commands (no SQL of its own that could differ), a thousand registrations per statement.
//!
//! `cached` keeps a filled registry in a database named for its size and for the migrations
//! it was built with, so that repeated bench runs skip the fill: a run copies it (a template
//! copy of the files, seconds) and measures the copy, leaving the cache as it was.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate};
use openspp::store::{Batch, CommandMetadata, EventStore};
use openspp_aggregates::consent::{ConsentScope, RecipientMode};
use openspp_aggregates::program_membership::IDENTIFIER_SYSTEM as MEMBERSHIP_SYSTEM;
use openspp_aggregates::{
    Access, Actor, Code, Consent, ConsentCommand, ConsentTerms, DomainError, HumanName, Identifier,
    Individual, IndividualCommand, IndividualDetails, MembershipCommand, MembershipStatus, Program,
    ProgramCommand, ProgramDetails, ProgramFacts, ProgramMembership, ProgramStatus,
    RegistryServices, SystemClock, TargetType,
};
use sha2::{Digest, Sha256};

use crate::support::{cli, sql_scalar, TestDatabase, ADMIN_URL, NATIONAL_ID};

/// Registrations per batch (one statement, one commit).
pub const BATCH: usize = 1_000;
/// Batches committed at once.
pub const FILLERS: usize = 2;
/// Bumped whenever `person` or the consents change, so an old cache is not taken for new.
const GENERATOR: &str = "population-v1";

/// The organisation every tenth person of a population has consented to share with.
pub const NGO: &str = "Bench NGO";

/// Family names with a long tail, as a country's are: the first is the most common (about 1
/// person in 16 is a Santos); the others share what is left.
const FAMILIES: [&str; 32] = [
    "Santos",
    "Reyes",
    "Cruz",
    "Bautista",
    "Ocampo",
    "Garcia",
    "Mendoza",
    "Torres",
    "Tomas",
    "Andrada",
    "Castillo",
    "Flores",
    "Villanueva",
    "Ramos",
    "Castro",
    "Rivera",
    "Aquino",
    "Navarro",
    "Salazar",
    "Mercado",
    "Aguilar",
    "Domingo",
    "Gonzales",
    "Lopez",
    "Soriano",
    "Dizon",
    "Pascual",
    "Valdez",
    "Fernandez",
    "Manalo",
    "Tolentino",
    "Panganiban",
];
const GIVEN: [&str; 16] = [
    "Maria",
    "Jose",
    "Juan",
    "Ana",
    "Mark",
    "Angelica",
    "John",
    "Christian",
    "Michael",
    "Rosa",
    "Paolo",
    "Kristine",
    "Ramon",
    "Liza",
    "Carlo",
    "Teresa",
];

/// Person `n`: identifier `{prefix}{n}`, born on one of 25,000 days from 1940 (so one month
/// of birth dates holds about 1 in 830 people).
pub fn person(prefix: &str, n: usize) -> IndividualDetails {
    let family = if n.is_multiple_of(16) {
        FAMILIES[0]
    } else {
        FAMILIES[1 + (n * 7 + n / 16) % (FAMILIES.len() - 1)]
    };
    IndividualDetails {
        identifiers: vec![Identifier {
            system: NATIONAL_ID.into(),
            value: format!("{prefix}{n}"),
        }],
        active: true,
        name: HumanName {
            family: Some(family.to_owned()),
            given: Some(format!("{} {n}", GIVEN[(n / 3) % GIVEN.len()])),
            ..HumanName::default()
        },
        birth_date: NaiveDate::from_ymd_opt(1940, 1, 1)
            .map(|d| d + Duration::days(((n * 7919) % 25_000) as i64)),
        birth_date_estimated: false,
        photo: None,
        extension: None,
        gender: Some(Code {
            system: "urn:iso:std:iso:5218".into(),
            code: (1 + n % 2).to_string(),
        }),
        telecom: Vec::new(),
        address: Vec::new(),
    }
}

/// A consent by `subject` (a stream) to share their record with `NGO` for service delivery.
/// Adds to `batch` a new consent stream giving `terms`.
async fn give(
    batch: &mut Batch<DomainError>,
    terms: ConsentTerms,
    services: &Arc<RegistryServices>,
    metadata: &CommandMetadata,
) {
    batch
        .decide::<Consent>(
            &uuid::Uuid::now_v7().to_string(),
            None,
            ConsentCommand::Give(terms),
            services,
            metadata,
        )
        .await
        .expect("a valid consent");
}

fn consent_for_ngo(subject: &str) -> ConsentTerms {
    ConsentTerms {
        subject_type: "Individual".into(),
        subject: subject.to_owned(),
        recipient_mode: RecipientMode::Specific,
        recipients: vec![NGO.into()],
        recipient_types: Vec::new(),
        scopes: vec![ConsentScope {
            resource_type: "individual".into(),
            field_access: None,
            purpose: "service_delivery".into(),
        }],
        legal_basis: "consent".into(),
        effective_date: chrono::Utc::now().date_naive(),
        expiry_date: NaiveDate::from_ymd_opt(2099, 12, 31).expect("a date"),
        delegation_type: "self".into(),
        indicated_by: None,
    }
}

/// The services the aggregates decide with, as the server has them for `pool`'s database.
pub async fn services(pool: &sqlx::PgPool) -> Arc<RegistryServices> {
    let catalogs = openspp::catalog_sync::Catalogs::load(pool)
        .await
        .expect("catalogs load");
    Arc::new(RegistryServices {
        vocabulary: catalogs.vocabulary.clone(),
        extensions: catalogs.extensions.clone(),
        clock: Arc::new(SystemClock),
    })
}

/// What every event a bench writes is recorded with: a migration by the bench, relying on no
/// consent.
pub fn metadata() -> CommandMetadata {
    CommandMetadata {
        client_id: "bench".into(),
        source_system: "urn:openspp:bench".into(),
        source_reference: None,
        collection_method: "migration".into(),
        request_id: "bench-population".into(),
        consent_id: None,
        consent_subject: None,
        consent_recipient: None,
    }
}

/// Registers people `from..to` (identifiers `{prefix}{n}`), `BATCH` per statement and
/// `FILLERS` statements at a time; with `consent_every = Some(k)`, every k-th person also
/// gives `NGO` a consent in the same batch.
pub async fn fill(
    store: &EventStore,
    services: &Arc<RegistryServices>,
    prefix: &str,
    from: usize,
    to: usize,
    consent_every: Option<usize>,
) {
    let metadata = metadata();
    let prefix = prefix.to_owned();
    in_batches(from, to, "registered", |start, end| {
        let (store, services, metadata) = (store.clone(), services.clone(), metadata.clone());
        let prefix = prefix.clone();
        async move {
            let mut batch = store.batch::<DomainError>();
            for n in start..end {
                let stream = uuid::Uuid::now_v7().to_string();
                batch
                    .decide::<Individual>(
                        &stream,
                        None,
                        IndividualCommand::Register(person(&prefix, n)),
                        &services,
                        &metadata,
                    )
                    .await
                    .expect("a valid registration");
                if consent_every.is_some_and(|k| n.is_multiple_of(k)) {
                    give(&mut batch, consent_for_ngo(&stream), &services, &metadata).await;
                }
            }
            batch.commit().await.expect("the batch commits");
        }
    })
    .await;
}

/// A new database named from `prefix` (dropped with the value), migrated, holding people
/// `P0`… `P{people - 1}` registered by `fill` (with `consent_every`), and a pool on it: the
/// registry a test of plans at scale starts from.
pub async fn registry(
    prefix: &str,
    people: usize,
    consent_every: Option<usize>,
) -> (TestDatabase, sqlx::PgPool) {
    let database = TestDatabase::create(prefix);
    cli(&database.url, &["migrate"]);
    let pool = sqlx::PgPool::connect(&database.url)
        .await
        .expect("connects");
    let services = services(&pool).await;
    fill(
        &EventStore::new(pool.clone()),
        &services,
        "P",
        0,
        people,
        consent_every,
    )
    .await;
    (database, pool)
}

/// Runs `batch(start, end)` for `from..to` in slices of `BATCH` people, `FILLERS` slices at a
/// time (each its own task: one statement, one commit), saying every 100,000 people how far
/// it got (`done`: what happened to them) when the range is large.
async fn in_batches<F, Fut>(from: usize, to: usize, done: &str, batch: F)
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let starts: Vec<usize> = (from..to).step_by(BATCH).collect();
    let started = Instant::now();
    let mut reported = from;
    for group in starts.chunks(FILLERS) {
        let tasks: Vec<_> = group
            .iter()
            .map(|&start| tokio::spawn(batch(start, (start + BATCH).min(to))))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let reached = (group[group.len() - 1] + BATCH).min(to);
        if to - from >= 200_000 && reached - reported >= 100_000 {
            reported = reached;
            eprintln!(
                "  … {} of {} {done} ({:.0} s)",
                reached - from,
                to - from,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// The organisation one person in ten has consented to, for analytics.
pub const ANALYSTS: &str = "Bench Analysts";
/// The programs people are members of (person `n` of program `n % 3`).
pub const PROGRAMS: [&str; 3] = ["Bench Cash", "Bench Health", "Bench School"];
/// Whether person `n` consents to `ANALYSTS`: one in ten, of both genders
/// (`person` alternates them) and every program.
fn consents(n: usize) -> bool {
    n.is_multiple_of(20) || n % 20 == 11
}

/// A consent by `subject` (a stream) to `ANALYSTS` for analytics, of their record and their
/// memberships, so that a consent-bound count of memberships by gender counts them.
fn analytics_consent(subject: &str) -> ConsentTerms {
    let scope = |resource_type: &str| ConsentScope {
        resource_type: resource_type.into(),
        field_access: None,
        purpose: "analytics".into(),
    };
    ConsentTerms {
        subject_type: "Individual".into(),
        subject: subject.to_owned(),
        recipient_mode: RecipientMode::Specific,
        recipients: vec![ANALYSTS.into()],
        recipient_types: Vec::new(),
        scopes: vec![scope("individual"), scope("program_membership")],
        legal_basis: "consent".into(),
        effective_date: chrono::Utc::now().date_naive(),
        expiry_date: NaiveDate::from_ymd_opt(2099, 12, 31).expect("a date"),
        delegation_type: "self".into(),
        indicated_by: None,
    }
}

/// The operator enrolling people, under the legal basis of the migration.
fn operator() -> Access {
    Access {
        actor: Actor {
            organization: "operator".into(),
            organization_type: "government".into(),
            legal_basis: Some("legal_obligation".into()),
            field_filter: Vec::new(),
        },
        consents: Vec::new(),
    }
}

/// Adds to the population at `url` the three programs, a membership of one of them for every
/// person `P0`… `P{size - 1}`, and the analytics consents, through the store's batch append
/// path as `fill` registers people (the same events, claims and read-model rows
/// the server writes for the same commands), `BATCH` people per statement.
pub async fn add_analytics(url: String, size: usize) {
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let services = services(&pool).await;
    let store = EventStore::new(pool.clone());
    let metadata = metadata();
    let mut programs = Vec::new();
    let mut batch = store.batch::<DomainError>();
    for name in PROGRAMS {
        let stream = uuid::Uuid::now_v7().to_string();
        let details = ProgramDetails {
            identifiers: Vec::new(),
            name: name.into(),
            description: Some("A program of the analysts' bench".into()),
            program_type: None,
            target_type: TargetType::Individual,
            currency: "PHP".into(),
            eligibility_criteria: None,
            start_date: None,
            end_date: None,
            status: ProgramStatus::Active,
        };
        batch
            .decide::<Program>(
                &stream,
                None,
                ProgramCommand::Create(details),
                &services,
                &metadata,
            )
            .await
            .expect("a valid program");
        programs.push(ProgramFacts {
            stream,
            target_type: TargetType::Individual,
            active: true,
        });
    }
    batch.commit().await.expect("the programs commit");
    // Person `n`'s stream, by the identifier `person` gave them.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT primary_identifier, aggregate_id FROM individual_view")
            .fetch_all(&pool)
            .await
            .expect("the people read");
    let mut people = vec![String::new(); size];
    for (identifier, stream) in rows {
        let n = identifier
            .rsplit_once("|P")
            .and_then(|(_, n)| n.parse::<usize>().ok());
        if let Some(n) = n.filter(|n| *n < size) {
            people[n] = stream;
        }
    }
    assert!(
        people.iter().all(|p| !p.is_empty()),
        "every person is registered"
    );
    let people = Arc::new(people);
    let programs = Arc::new(programs);
    let enrolled = chrono::NaiveDate::from_ymd_opt(2025, 1, 15);
    in_batches(0, size, "enrolled", |start, end| {
        let (store, services, metadata) = (store.clone(), services.clone(), metadata.clone());
        let (people, programs) = (people.clone(), programs.clone());
        async move {
            let mut batch = store.batch::<DomainError>();
            for n in start..end {
                let person = &people[n];
                let program = &programs[n % programs.len()];
                let enrol = MembershipCommand::Enrol {
                    program: program.clone(),
                    beneficiary: person.clone(),
                    beneficiary_type: TargetType::Individual,
                    identifiers: vec![Identifier {
                        system: MEMBERSHIP_SYSTEM.into(),
                        value: format!("BA{n}"),
                    }],
                    status: MembershipStatus::Enrolled,
                    enrollment_date: enrolled,
                    exit_date: None,
                    exit_reason: None,
                    access: operator(),
                };
                let stream = ProgramMembership::stream_id(&program.stream, person);
                batch
                    .decide::<ProgramMembership>(&stream, None, enrol, &services, &metadata)
                    .await
                    .expect("a valid enrolment");
                if consents(n) {
                    give(&mut batch, analytics_consent(person), &services, &metadata).await;
                }
            }
            batch.commit().await.expect("the batch commits");
        }
    })
    .await;
    pool.close().await;
}

/// A fingerprint of the schema (every migration's name and text) and of the generator.
fn schema_tag() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations directory")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    hash.update(GENERATOR);
    for file in files {
        hash.update(file.file_name().unwrap().to_string_lossy().as_bytes());
        hash.update(std::fs::read(&file).expect("a migration reads"));
    }
    hex::encode(&hash.finalize()[..6])
}

fn admin(sql: &str) -> String {
    sql_scalar(ADMIN_URL, sql)
}

/// The name of a database holding `size` registered people (identifiers `P0`…), every tenth
/// with a consent for `NGO`, built on first use and kept for the next run. Caches built for
/// another schema are dropped (they would only fill the disk); those of other sizes are kept,
/// so that a smoke run at a small size does not cost the next full run its million.
pub async fn cached(size: usize) -> String {
    let tag = schema_tag();
    let name = format!("openspp_bench_pop_{size}_{tag}");
    let stale = admin(&format!(
        "SELECT string_agg(datname, ' ') FROM pg_database \
         WHERE datname LIKE 'openspp\\_bench\\_pop\\_%' AND position('_{tag}' in datname) = 0"
    ));
    for old in stale.split_whitespace() {
        admin(&format!("DROP DATABASE IF EXISTS \"{old}\" WITH (FORCE)"));
    }
    if exists(&name) {
        return name;
    }
    let loading = format!("openspp_bench_loading_{size}");
    admin(&format!(
        "DROP DATABASE IF EXISTS \"{loading}\" WITH (FORCE)"
    ));
    admin(&format!("CREATE DATABASE \"{loading}\""));
    let url = format!("postgres://postgres@127.0.0.1:5432/{loading}");
    cli(&url, &["migrate"]);
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let services = services(&pool).await;
    let store = EventStore::new(pool.clone());
    let started = Instant::now();
    eprintln!("building the cached population of {size} (once; later runs reuse {name})");
    fill(&store, &services, "P", 0, size, Some(10)).await;
    eprintln!(
        "  {size} registered in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    sql_scalar(&url, "VACUUM ANALYZE");
    // Renamed only once whole: an interrupted fill is never taken for a cache.
    admin(&format!(
        "ALTER DATABASE \"{loading}\" RENAME TO \"{name}\""
    ));
    name
}

/// A copy of the cached database `template`, for one run to write into.
pub fn copy_of(template: &str, copy: &str) -> String {
    admin(&format!(
        "CREATE DATABASE \"{copy}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"
    ));
    format!("postgres://postgres@127.0.0.1:5432/{copy}")
}

fn exists(database: &str) -> bool {
    admin(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{database}'"
    )) == "1"
}

/// The name of a database holding the cached population of `size` and what `build` adds to
/// it (given a database URL), built on first use from a copy of the population and kept beside
/// it, under `label` (which names what `build` adds and its version: a change to `build` is a
/// new label). Dropped with the population when the schema changes.
pub async fn cached_with<F, Fut>(size: usize, label: &str, build: F) -> String
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let base = cached(size).await;
    let name = format!("{base}_{label}");
    if exists(&name) {
        return name;
    }
    let loading = format!("openspp_bench_loading_{size}_{label}");
    admin(&format!(
        "DROP DATABASE IF EXISTS \"{loading}\" WITH (FORCE)"
    ));
    let url = copy_of(&base, &loading);
    let started = Instant::now();
    eprintln!("adding {label} to the cached population of {size} (once; later runs reuse {name})");
    build(url.clone()).await;
    eprintln!("  added in {:.0} s", started.elapsed().as_secs_f64());
    sql_scalar(&url, "VACUUM ANALYZE");
    admin(&format!(
        "ALTER DATABASE \"{loading}\" RENAME TO \"{name}\""
    ));
    name
}
