//! The account device list against the simulator over real HTTP: one page, the whole
//! list as a stream, the protocol filter, a broken cursor.
#![allow(clippy::unwrap_used)]

mod client_support;

use client_support::{ACCOUNT, client, delta, sim};
use devicegraph_upstream::{Endpoint, Protocol, UpstreamError};
use futures::TryStreamExt as _;
use serde_json::json;

#[tokio::test]
async fn the_stream_reads_every_page_once_in_ascending_order() {
    let sim = sim().await;
    let total = sim.catalog().account_devices[ACCOUNT];
    let client = client(&sim);
    let account = ACCOUNT.parse().unwrap();
    let first = client
        .account_devices_page(&account, None, None)
        .await
        .unwrap();
    assert!(first.has_more_data);
    assert_eq!(first.max_page_size, Some(1000));
    assert_eq!(first.total_devices, None, "the list carries no total");
    assert_eq!(first.devices.len(), 1_000);
    assert!(
        first
            .devices
            .iter()
            .all(|d| d.account_name.as_deref() == Some(ACCOUNT))
    );

    let before = sim.stats();
    let all: Vec<_> = client
        .account_devices(account, None)
        .try_collect()
        .await
        .unwrap();
    let after = sim.stats();
    assert_eq!(all.len() as u64, total);
    assert!(all.windows(2).all(|w| w[0].device_id < w[1].device_id));
    assert_eq!(
        delta(&before, &after, "account_devices"),
        total.div_ceil(1_000)
    );
    assert_eq!(all[..1_000], first.devices[..]);
}

#[tokio::test]
async fn protocol_is_sent_upstream_and_an_unmoving_cursor_is_an_error() {
    let sim = sim().await;
    let client = client(&sim);
    let http: Protocol = "http".parse().unwrap();
    let listed: Vec<_> = client
        .account_devices(ACCOUNT.parse().unwrap(), Some(http))
        .try_collect()
        .await
        .unwrap();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|d| d.protocol.as_deref() == Some("HTTP")));

    sim.set_faults(
        serde_json::from_value(json!({
            "brokenPagination": true,
            "endpoints": ["account_devices"],
        }))
        .unwrap(),
    )
    .unwrap();
    let broken: Result<Vec<_>, _> = client
        .account_devices(ACCOUNT.parse().unwrap(), None)
        .try_collect()
        .await;
    assert!(
        matches!(
            broken,
            Err(UpstreamError::Pagination {
                endpoint: Endpoint::AccountDevices,
                ..
            })
        ),
        "{broken:?}"
    );
    let unknown = client
        .account_devices_page(&"0000999999-00009".parse().unwrap(), None, None)
        .await;
    assert!(
        matches!(&unknown, Err(UpstreamError::Api { error_code, .. }) if error_code == "REQUEST_FAILED.Account.NotFound"),
        "{unknown:?}"
    );
}
