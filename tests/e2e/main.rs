//! End-to-end tests: the real `openspp` binary against a fresh PostgreSQL database, spoken to
//! over HTTP as an integrator would. One server serves the whole run; tests use unique
//! identifiers so they can run in parallel.

mod support;

/// The synthetic registry the benches fill (through the store's batch path).
#[allow(dead_code)]
#[path = "../../benches/common/population.rs"]
mod population;

mod access_log;
mod aggregation;
mod audit;
mod auth;
mod batch;
mod bulk;
mod compat_discovery;
mod consent;
mod consent_fields;
mod consent_groups;
mod consent_withdrawal;
mod dci;
mod delivery;
mod disclosure;
mod errors;
mod extension;
mod extension_fields;
mod extension_search;
mod faults;
mod graphql;
mod group;
mod history;
mod hostile;
mod household;
mod household_changes;
mod identity;
mod import;
mod individual;
mod input_bounds;
mod internal_ids;
mod metrics;
mod openapi;
mod openspp_shapes;
mod process;
mod program;
mod read_together;
mod schemathesis;
mod search_budget;
mod search_plans;
mod statistics_plans;
mod store;
mod subscriptions;
mod vocabulary;

use std::future::Future;

use libtest_mimic::{Arguments, Failed, Trial};
use support::{create_client, init_world, Server, TestDatabase, World, ALL_SCOPES};

/// Wraps an async test for the harness, on a runtime of its own.
pub fn trial<F, Fut>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?;
        runtime.block_on(test());
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    let database = TestDatabase::create("openspp_e2e");
    // DCI callbacks go to receivers inside the tests, on loopback over http.
    let server = Server::start(
        &database.url,
        &[
            ("OPENSPP_DCI_ALLOW_HTTP_CALLBACKS", "true"),
            ("OPENSPP_DCI_CALLBACK_ALLOW", "127.0.0.0/8"),
        ],
    );
    let mut scopes = Vec::new();
    for scope in ALL_SCOPES {
        scopes.extend(["--scope", scope]);
    }
    let admin = create_client(&database.url, &scopes);
    init_world(World {
        base: server.base.clone(),
        database_url: database.url.clone(),
        admin,
    });

    let mut trials = Vec::new();
    trials.extend(access_log::trials());
    trials.extend(aggregation::trials());
    trials.extend(audit::trials());
    trials.extend(auth::trials());
    trials.extend(batch::trials());
    trials.extend(bulk::trials());
    trials.extend(compat_discovery::trials());
    trials.extend(errors::trials());
    trials.extend(consent::trials());
    trials.extend(consent_fields::trials());
    trials.extend(consent_groups::trials());
    trials.extend(consent_withdrawal::trials());
    trials.extend(dci::trials());
    trials.extend(delivery::trials());
    trials.extend(disclosure::trials());
    trials.extend(individual::trials());
    trials.extend(household::trials());
    trials.extend(openspp_shapes::trials());
    trials.extend(graphql::trials());
    trials.extend(group::trials());
    trials.extend(household_changes::trials());
    trials.extend(history::trials());
    trials.extend(hostile::trials());
    trials.extend(identity::trials());
    trials.extend(import::trials());
    trials.extend(input_bounds::trials());
    trials.extend(internal_ids::trials());
    trials.extend(metrics::trials());
    trials.extend(openapi::trials());
    trials.extend(store::trials());
    trials.extend(subscriptions::trials());
    trials.extend(process::trials());
    trials.extend(program::trials());
    trials.extend(schemathesis::trials());
    trials.extend(vocabulary::trials());
    trials.extend(extension::trials());
    trials.extend(extension_fields::trials());
    trials.extend(extension_search::trials());
    trials.extend(search_budget::trials());
    trials.extend(search_plans::trials());
    trials.extend(read_together::trials());
    trials.extend(statistics_plans::trials());
    trials.extend(faults::trials());
    let conclusion = libtest_mimic::run(&args, trials);
    // `exit` skips destructors: stop the server and drop the database first.
    drop(server);
    drop(database);
    conclusion.exit();
}
