//! The five reads over real HTTP against the simulator, checked against its catalog,
//! including every kind of pagination.

#![allow(clippy::unwrap_used)]

mod client_support;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use client_support::*;
use devicegraph_sim::SimConfig;
use devicegraph_upstream::{
    AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, Imei, UpstreamError,
};
use futures::TryStreamExt;

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

#[tokio::test]
async fn histories_match_the_requested_device() {
    let sim = sim().await;
    let client = client(&sim);
    let catalog = sim.catalog();
    let imei: Imei = catalog.sample_imeis[ACCOUNT][1].parse().unwrap();

    let upgrades = client.upgrade_history(&account(), &imei).await.unwrap();
    for u in &upgrades {
        assert_eq!(u.device_id.as_deref(), Some(imei.as_str()));
        assert_eq!(u.account_name.as_deref(), Some(ACCOUNT));
        assert!(!u.status.is_empty());
    }
    let check_ins = client.check_in_history(&account(), &imei).await.unwrap();
    assert!(!check_ins.is_empty(), "sample devices check in");
    for c in &check_ins {
        assert_eq!(c.device_id.as_deref(), Some(imei.as_str()));
        assert!(c.time_completed.is_some());
    }

    // One token and one login served all of it.
    let stats = sim.stats();
    assert_eq!(stats.calls["oauth_token"], 1);
    assert_eq!(stats.calls["session_login"], 1);
}

#[tokio::test]
async fn unknown_device_and_account_are_api_errors_with_their_code() {
    let sim = sim().await;
    let client = client(&sim);
    let unknown: Imei = sim.catalog().unknown_imeis[0].parse().unwrap();
    match client.upgrade_history(&account(), &unknown).await {
        Err(UpstreamError::Api {
            status: 400,
            error_code,
            ..
        }) => {
            assert_eq!(error_code, "FOTA.DEVICE.NotFound")
        }
        other => panic!("{other:?}"),
    }
    let nobody: AccountName = "0000999999-99999".parse().unwrap();
    let known: Imei = sim.catalog().sample_imeis[ACCOUNT][0].parse().unwrap();
    match client.check_in_history(&nobody, &known).await {
        Err(UpstreamError::Api {
            status: 400,
            error_code,
            ..
        }) => {
            assert_eq!(error_code, "REQUEST_FAILED.Account.NotFound")
        }
        other => panic!("{other:?}"),
    }
    // Errors are not retried: one call each.
    assert_eq!(sim.stats().calls["upgrade_history"], 1);
    assert_eq!(sim.stats().calls["check_in_history"], 1);
}

#[tokio::test]
async fn campaign_stream_crosses_page_boundaries_in_order_without_loss() {
    let sim = sim().await;
    let client = client(&sim);
    let catalog = sim.catalog();
    let campaign = catalog
        .campaigns
        .iter()
        .filter(|c| c.devices > 1_000)
        .min_by_key(|c| c.devices)
        .expect("a campaign of more than one page");
    let account: AccountName = campaign.account.parse().unwrap();
    let id: CampaignId = campaign.id.parse().unwrap();

    let first = client
        .campaign_devices_page(&account, &id, None)
        .await
        .unwrap();
    assert_eq!(first.total_devices, Some(campaign.devices));
    assert!(first.has_more_data);
    assert_eq!(first.devices.len(), 1_000);

    let before = sim.stats();
    let devices: Vec<_> = client
        .campaign_devices(account, id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(devices.len() as u64, campaign.devices);
    let ids: Vec<u64> = devices
        .iter()
        .map(|d| d.device_id.parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ascending, no duplicates"
    );
    let pages = campaign.devices.div_ceil(1_000);
    assert_eq!(delta(&before, &sim.stats(), "campaign_devices"), pages);
}

/// IMEIs of real devices of one account, from its campaigns.
async fn account_imeis(
    client: &devicegraph_upstream::Client,
    sim: &devicegraph_sim::RunningSim,
    want: usize,
) -> (AccountName, Vec<Imei>) {
    let catalog = sim.catalog();
    for acc in &catalog.accounts {
        let mut imeis = BTreeSet::new();
        for c in catalog.campaigns.iter().filter(|c| &c.account == acc) {
            let devices: Vec<_> = client
                .campaign_devices(acc.parse().unwrap(), c.id.parse().unwrap())
                .try_collect()
                .await
                .unwrap();
            imeis.extend(devices.into_iter().map(|d| d.device_id));
            if imeis.len() >= want {
                let list = imeis
                    .into_iter()
                    .take(want)
                    .map(|s| s.parse().unwrap())
                    .collect();
                return (acc.parse().unwrap(), list);
            }
        }
    }
    panic!("no account with {want} campaign devices");
}

#[tokio::test]
async fn details_for_2500_imeis_take_three_requests() {
    let sim = sim().await;
    let client = client(&sim);
    let (account, mut imeis) = account_imeis(&client, &sim, 2_500).await;
    let wanted: BTreeSet<String> = imeis.iter().map(|i| i.to_string()).collect();
    // Duplicates and unknown IMEIs cost nothing extra.
    imeis.extend(imeis[..10].to_vec());
    let unknown: Imei = sim.catalog().unknown_imeis[0].parse().unwrap();
    imeis.push(unknown);

    let before = sim.stats();
    let details: Vec<_> = client
        .device_details(account.clone(), imeis)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(delta(&before, &sim.stats(), "device_details"), 3);
    let got: BTreeSet<String> = details.iter().map(|d| d.device_id.clone()).collect();
    assert_eq!(details.len(), got.len(), "no duplicates");
    assert_eq!(got, wanted);
    for d in &details {
        assert!(d.make.is_some() && d.model.is_some());
    }
}

#[tokio::test]
async fn details_follow_last_seen_within_a_chunk() {
    // A small page size makes one chunk span several pages.
    let sim = sim_with(SimConfig {
        details_page_size: 7,
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let (account, imeis) = account_imeis(&client, &sim, 30).await;
    let before = sim.stats();
    let details: Vec<_> = client
        .device_details(account, imeis.clone())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(delta(&before, &sim.stats(), "device_details"), 5);
    let got: Vec<String> = details.iter().map(|d| d.device_id.clone()).collect();
    let want: Vec<String> = imeis.iter().map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

fn window(sim: &devicegraph_sim::RunningSim) -> (DateTime<Utc>, DateTime<Utc>) {
    let w = sim.catalog().provisioning_window;
    (w.earliest.parse().unwrap(), w.latest.parse().unwrap())
}

#[tokio::test]
async fn provisioning_across_202_pages_equals_the_single_page_history() {
    let paged = sim().await;
    // Same seed, one page big enough for everything: the reference history.
    let whole = sim_with(SimConfig {
        provisioning_page_size: 1_000_000,
        ..SimConfig::default()
    })
    .await;
    let catalog = paged.catalog();
    let (earliest, latest) = window(&paged);
    let boundary: Vec<&String> = catalog
        .provisioning_boundary_devices
        .values()
        .flatten()
        .take(2)
        .collect();
    assert!(
        !boundary.is_empty(),
        "the simulator advertises boundary devices"
    );
    for imei in boundary {
        let device = DeviceIdentifier::new(DeviceIdKind::Imei, imei.clone()).unwrap();
        let reference = client(&whole)
            .provisioning_history_page(&device, earliest, latest)
            .await
            .unwrap();
        assert!(!reference.has_more_data);
        assert!(
            reference.events.len() > 1_000,
            "spans several 500-record pages"
        );

        let before = paged.stats();
        let events: Vec<_> = client(&paged)
            .provisioning_history(device, earliest, latest)
            .try_collect()
            .await
            .unwrap();
        assert!(delta(&before, &paged.stats(), "provisioning_history") >= 3);
        assert_eq!(events.len(), reference.events.len());
        assert_eq!(events, reference.events);
    }
}

#[tokio::test]
async fn provisioning_by_other_identifier_kinds() {
    let sim = sim().await;
    let client = client(&sim);
    let ids = &sim.catalog().sample_identifiers[ACCOUNT];
    let (earliest, latest) = window(&sim);
    let by = |kind, id: &str| DeviceIdentifier::new(kind, id.to_owned()).unwrap();
    let reference: Vec<_> = client
        .provisioning_history(by(DeviceIdKind::Imei, &ids.imei), earliest, latest)
        .try_collect()
        .await
        .unwrap();
    assert!(!reference.is_empty());
    for device in [
        by(DeviceIdKind::Iccid, &ids.iccid),
        by(DeviceIdKind::Mdn, &ids.mdn),
    ] {
        let events: Vec<_> = client
            .provisioning_history(device, earliest, latest)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events, reference);
    }
}
