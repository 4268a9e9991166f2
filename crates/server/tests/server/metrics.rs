//! `/metrics`: what an operator's Prometheus scrapes, and who may read it.

use std::time::Duration;

use natter_server::Config;
use serde_json::json;

use crate::support::{ANN, BOB, ROOM, Server, config_with, free_port, http_get, wait_for_listener};

const TOKEN: &str = "a-long-metrics-token-0123456789";

/// The value of one sample line, e.g. `natter_rooms{kind="group"}`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn metrics_on_the_public_listener_need_the_token_and_count_rooms_people_and_joins() {
    let server = Server::start_with(config_with(&["--metrics-token", TOKEN])).await;
    for headers in [
        &[][..],
        &[("Authorization", "Bearer wrong-token-wrong-token-000")][..],
        &[("Authorization", "a-long-metrics-token-0123456789")][..],
        &[("Authorization", "Bearer a-long-metrics-token-012345678")][..],
    ] {
        let response = http_get(server.addr, "/metrics", headers).await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert!(!String::from_utf8_lossy(&response.body).contains("natter_"));
    }
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    let mut ann = server.client().await;
    ann.enter(ROOM, ANN, "Ann").await;
    let mut bob = server.client().await;
    bob.hello().await;
    let welcome = bob
        .join_with(
            json!({"room": "GroupGroupGroupGroup01", "peer": BOB, "name": "Bob", "kind": "group"}),
        )
        .await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    let response = http_get(server.addr, "/metrics", &auth).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        response.header("content-type")
    );
    let text = String::from_utf8(response.body).unwrap();
    assert_eq!(sample(&text, "natter_connections"), 2.0);
    assert_eq!(sample(&text, "natter_rooms{kind=\"pair\"}"), 1.0);
    assert_eq!(sample(&text, "natter_rooms{kind=\"group\"}"), 1.0);
    assert_eq!(sample(&text, "natter_people{kind=\"pair\"}"), 1.0);
    assert_eq!(sample(&text, "natter_people{kind=\"group\"}"), 1.0);
    assert_eq!(sample(&text, "natter_join_seconds_count"), 2.0);
    assert_eq!(
        sample(&text, "natter_join_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert_eq!(sample(&text, "natter_pow_difficulty"), 1000.0);
    assert_eq!(sample(&text, "natter_relay_packets_received_total"), 0.0);
    // Counts only: no room id, peer id or name reaches the scrape.
    for secret in [ROOM, ANN, BOB, "Ann", "Bob", "GroupGroupGroupGroup01"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }

    // Leaving is counted too.
    drop(bob);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8(http_get(server.addr, "/metrics", &auth).await.body).unwrap();
        if sample(&text, "natter_rooms{kind=\"group\"}") == 0.0 {
            assert_eq!(sample(&text, "natter_people{kind=\"group\"}"), 0.0);
            assert_eq!(sample(&text, "natter_connections"), 1.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the group room was never counted out:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn without_a_token_metrics_are_only_on_their_own_listener() {
    let private = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(config_with(&["--metrics-listen", &private])).await;
    let response = http_get(
        server.addr,
        "/metrics",
        &[("Authorization", "Bearer anything-at-all-000")],
    )
    .await;
    assert_eq!(
        response.status, 404,
        "the public listener must not serve metrics without a token"
    );
    let at = private.parse().unwrap();
    wait_for_listener(at).await;
    let response = http_get(at, "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    let text = String::from_utf8(response.body).unwrap();
    assert_eq!(sample(&text, "natter_connections"), 0.0);
    // Only /metrics there: the rooms are not served on the private port.
    assert_eq!(http_get(at, "/", &[]).await.status, 404);
}

#[test]
fn a_short_metrics_token_is_refused() {
    let refused = Config::load(
        ["natter", "--metrics-token", "short"]
            .into_iter()
            .map(Into::into)
            .collect(),
        |_| None,
    );
    assert!(refused.is_err());
}
