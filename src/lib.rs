//! The openspp server: HTTP API, authentication and the command path to the event store.
//! Business rules live in `openspp-aggregates`; read models in `openspp-projections`.

pub mod access_log;
pub mod api;
pub mod app;
pub mod auth;
pub mod catalog_sync;
pub mod config;
pub mod current;
pub mod db;
pub mod dci;
pub mod embedded;
pub mod error;
pub mod extensions;
pub mod graphql;
pub mod http;
pub mod import;
pub mod metrics;
pub mod operator;
pub mod replay;
pub mod resource;
pub mod server;
pub mod statistics;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod vocabulary;
