//! `GET /metrics`: open on the operator's private address, closed on the API port to anyone
//! without `metrics:read`, and labelled by route template — never by a path that holds an
//! identifier.

use libtest_mimic::Trial;

use crate::support::{admin, create_client, register_individual, unique, world, Api, Server};
use crate::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "metrics::private_address_open_api_port_needs_the_scope_routes_by_template",
        metrics_endpoints,
    )]
}

async fn metrics_endpoints() {
    let url = &world().database_url;
    let server = Server::start(url, &[("OPENSPP_METRICS_BIND", "127.0.0.1:0")]);
    let private = server
        .metrics
        .clone()
        .expect("the metrics address is printed");
    let api = Api {
        base: server.base.clone(),
        ..admin().await
    };
    let id = unique("metrics-person");
    let path = register_individual(&api, &id).await;
    api.get(&path).await.expect(200);

    let scrape = Api::new(&private).get("/metrics").await;
    scrape.expect(200);
    assert!(scrape
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = &scrape.text;
    let read = "route=\"/api/v2/spp/Individual/{id}\"";
    assert!(
        text.lines().any(
            |l| l.starts_with("openspp_http_request_duration_seconds_bucket")
                && l.contains(read)
                && l.contains("status=\"200\"")
                && l.contains("method=\"GET\"")
        ),
        "the read is counted under its route template:\n{text}"
    );
    assert!(text
        .lines()
        .any(|l| l.starts_with("openspp_http_requests_total")
            && l.contains("route=\"/api/v2/spp/Individual\"")
            && l.contains("status=\"201\"")));
    assert!(!text.contains(&id), "no identifier appears in a label");
    // Connections kept for the next read (the lane) are idle, not in use: right after 12
    // reads at once the lane keeps up to 12 (for 100 ms), and the gauge counted them all. A
    // connection sqlx is still pinging on its way back to the pool, or still opening, is in
    // use for a moment: the fewest seen in a few scrapes within the lane's 100 ms.
    let reads = (0..12).map(|_| api.get(&path));
    for read in futures_util::future::join_all(reads).await {
        read.expect(200);
    }
    let mut fewest = f64::INFINITY;
    let mut last = String::new();
    for _ in 0..8 {
        let scrape = Api::new(&private).get("/metrics").await;
        let in_use: f64 = scrape
            .text
            .lines()
            .find_map(|l| l.strip_prefix("openspp_db_pool_connections{state=\"in_use\"} "))
            .expect("the in-use gauge")
            .trim()
            .parse()
            .expect("a number");
        fewest = fewest.min(in_use);
        last = scrape.text;
        if fewest < 5.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        fewest < 5.0,
        "{fewest} connections in use after the reads ended:\n{last}"
    );
    for gauge in [
        "openspp_db_pool_connections{state=\"in_use\"}",
        "openspp_db_pool_max_connections",
        "openspp_access_log_queue_depth",
        "openspp_projector_lag_events{projection=\"registry\"}",
        "openspp_projector_lag_seconds{projection=\"registry\"}",
    ] {
        assert!(text.contains(gauge), "{gauge} missing:\n{text}");
    }
    // The private address serves nothing else.
    Api::new(&private)
        .get("/api/v2/spp/Individual")
        .await
        .expect(404);

    // The API port: a token with metrics:read, nothing less.
    let public = Api::new(&server.base);
    let refused = public.get("/metrics").await;
    refused.expect(401);
    assert_eq!(refused.body["resourceType"], "OperationOutcome");
    api.get("/metrics").await.expect(403);
    let operator = create_client(url, &["--scope", "metrics:read"]);
    let operator = public.login(&operator).await;
    let reply = operator.get("/metrics").await;
    reply.expect(200);
    assert!(reply.text.contains("openspp_http_requests_total"));
    drop(server);
}
