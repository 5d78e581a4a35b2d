//! A fresh, migrated database per test, dropped at the end; consents written to its index.

use openspp_aggregates::{Consent, ConsentRecord};
use openspp_projections::inline::Inline;
use openspp_projections::statement::Statement;
use openspp_projections::Fold;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("openspp_projtest_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        sqlx::migrate!("../migrations").run(&pool).await.unwrap();
        Self { pool, name }
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect(ADMIN_URL).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// Writes `records` to the consent index by its production writer (the rows the append
/// statement of each consent's event writes), each as a consent at version 1.
#[allow(dead_code)] // not every test file indexes consents
pub async fn index_consents(pool: &PgPool, records: &[ConsentRecord]) {
    let mut inline = Inline::default();
    for record in records {
        let fold = Fold {
            state: Consent {
                terms: Some(record.terms.clone()),
                status: Some(record.status),
                withdrawal_reason: None,
                released: record.released.clone(),
                version: 1,
            },
            version: 1,
            ..Fold::default()
        };
        inline.project(&record.consent_id, &fold).unwrap();
    }
    let mut statement = Statement::new();
    inline.push_into(&mut statement);
    run(pool, statement).await;
}

/// Runs `statement`, the parts an append writes, on its own.
pub async fn run(executor: impl sqlx::PgExecutor<'_>, statement: Statement<'_>) {
    statement
        .finish("SELECT 1")
        .build()
        .execute(executor)
        .await
        .unwrap();
}
