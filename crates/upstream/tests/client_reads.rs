//! The five reads over real HTTP against the simulator, checked against its catalog,
//! including every kind of pagination and the chunked device-details batch.

#![allow(clippy::unwrap_used)]

mod client_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use client_support::*;
use devicegraph_sim::{Faults, SimConfig};
use devicegraph_upstream::{
    AccountName, CampaignId, Client, DetailsChunk, DeviceIdKind, DeviceIdentifier, Endpoint,
    GatePermit, Imei, RequestGate, UpstreamError,
};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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

/// What a batch should have sent: the distinct IMEIs, sorted.
fn sorted_distinct(imeis: &[Imei]) -> Vec<Imei> {
    imeis
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every chunk names at most 1,000 sorted IMEIs, and together they are exactly `want`.
fn assert_chunked(chunks: &[DetailsChunk], want: &[Imei]) {
    for c in chunks {
        assert!(
            c.imeis.len() <= 1_000,
            "{} IMEIs in one chunk",
            c.imeis.len()
        );
    }
    let sent: Vec<Imei> = chunks.iter().flat_map(|c| c.imeis.clone()).collect();
    assert_eq!(
        sent, want,
        "sorted within and across chunks, none lost or repeated"
    );
}

/// The device ids of a successful chunk, each one of the IMEIs that chunk asked for.
fn chunk_devices(chunk: &DetailsChunk) -> BTreeSet<String> {
    let asked: BTreeSet<&str> = chunk.imeis.iter().map(Imei::as_str).collect();
    let devices = chunk.result.as_ref().unwrap();
    for d in devices {
        assert!(
            asked.contains(d.device_id.as_str()),
            "{} not asked",
            d.device_id
        );
    }
    devices.iter().map(|d| d.device_id.clone()).collect()
}

#[tokio::test]
async fn details_batch_of_2500_imeis_is_three_chunks_of_sorted_imeis() {
    let sim = sim().await;
    let client = client(&sim);
    let (account, mut imeis) = account_imeis(&client, &sim, 2_500).await;
    let wanted: BTreeSet<String> = imeis.iter().map(|i| i.to_string()).collect();
    // Duplicates, an unknown IMEI and reverse order: the batch sorts and dedups.
    imeis.extend(imeis[..10].to_vec());
    imeis.push(sim.catalog().unknown_imeis[0].parse().unwrap());
    imeis.reverse();
    let want = sorted_distinct(&imeis);

    let before = sim.stats();
    // Spawned: the batch future is Send, as the caching layer needs.
    let chunks = tokio::spawn(async move { client.device_details_batch(&account, imeis).await })
        .await
        .unwrap();
    assert_eq!(delta(&before, &sim.stats(), "device_details"), 3);
    let sizes: Vec<usize> = chunks.iter().map(|c| c.imeis.len()).collect();
    assert_eq!(sizes, [1_000, 1_000, 501]);
    assert_chunked(&chunks, &want);
    let mut got = BTreeSet::new();
    for chunk in &chunks {
        let devices = chunk_devices(chunk);
        assert_eq!(
            devices.len(),
            chunk.result.as_ref().unwrap().len(),
            "no duplicates"
        );
        got.extend(devices);
    }
    assert_eq!(got, wanted, "every known IMEI, the unknown one absent");
}

/// Lets one device-details request through at a time and clears the simulator's
/// faults before the second: with one attempt per call, exactly the first request
/// meets the 503 the simulator starts with.
struct FirstDetailsRequestFails {
    sim_root: String,
    one_at_a_time: Arc<Semaphore>,
    details_seen: AtomicU64,
}

impl RequestGate for FirstDetailsRequestFails {
    fn acquire(
        &self,
        endpoint: Endpoint,
        _deadline: Instant,
    ) -> BoxFuture<'_, Result<GatePermit, UpstreamError>> {
        Box::pin(async move {
            if endpoint != Endpoint::DeviceDetails {
                return Ok(GatePermit::none());
            }
            let slot = self.one_at_a_time.clone().acquire_owned().await.unwrap();
            if self.details_seen.fetch_add(1, Ordering::SeqCst) == 1 {
                reqwest::Client::new()
                    .post(format!("{}/_sim/faults", self.sim_root))
                    .json(&serde_json::json!({ "clear": true }))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap();
            }
            Ok(GatePermit::holding(slot))
        })
    }

    fn rate_limited(&self, _endpoint: Endpoint, _retry_after: std::time::Duration) {}
}

#[tokio::test]
async fn a_failed_details_chunk_fails_only_its_own_imeis() {
    let sim = sim_with(SimConfig {
        faults: Faults {
            error_rate: 1.0,
            endpoints: vec![devicegraph_sim::Endpoint::DeviceDetails],
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut config = config(&sim);
    config.max_attempts = 1;
    let gate = FirstDetailsRequestFails {
        sim_root: sim.root_url(),
        one_at_a_time: Arc::new(Semaphore::new(1)),
        details_seen: AtomicU64::new(0),
    };
    let client = Client::with_gate(config, Arc::new(gate)).unwrap();
    let (account, imeis) = account_imeis(&client, &sim, 2_500).await;
    let want = sorted_distinct(&imeis);

    let before = sim.stats();
    let chunks = client.device_details_batch(&account, imeis).await;
    let after = sim.stats();
    assert_eq!(
        delta(&before, &after, "device_details"),
        3,
        "one request each"
    );
    assert_eq!(after.faults_injected.get("error"), Some(&1));
    assert_chunked(&chunks, &want);
    let (failed, answered): (Vec<_>, Vec<_>) = chunks.iter().partition(|c| c.result.is_err());
    assert_eq!((failed.len(), answered.len()), (1, 2));
    match &failed[0].result {
        Err(UpstreamError::Unavailable {
            endpoint: Endpoint::DeviceDetails,
            reason,
            ..
        }) => assert!(reason.contains("503"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The other chunks are whole: every IMEI they asked for is a device of the account.
    for chunk in answered {
        let asked: BTreeSet<String> = chunk.imeis.iter().map(|i| i.to_string()).collect();
        assert_eq!(chunk_devices(chunk), asked);
    }
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
