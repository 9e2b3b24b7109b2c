//! Account device list pages and the details they carry, counted at the simulator
//! over real HTTP: pages cached per protocol and upstream cursor, details entries
//! filled from a page read just now (no details call), and the invalidations that
//! reach each.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use devicegraph_cache::resources::{AccountPageKey, AccountPages, Details};
use devicegraph_cache::{Freshness, InvalidateScope, Store, TokioClock};
use devicegraph_upstream::model::AccountDevicesPage;
use devicegraph_upstream::{AccountName, Imei, Protocol};
use support::*;

async fn page(store: &Store, key: &AccountPageKey) -> (Arc<AccountDevicesPage>, Freshness, u64) {
    let fetched = store.get::<AccountPages>(key.clone()).await.unwrap();
    (fetched.value, fetched.freshness, fetched.version)
}

/// The details of every device of `page`, handed to the store as known values while
/// the page's entry is still version `version`.
async fn fill_from(
    store: &Store,
    account: &AccountName,
    key: &AccountPageKey,
    version: u64,
    page: &AccountDevicesPage,
) -> HashMap<Imei, Freshness> {
    let known: HashMap<_, _> = page
        .devices
        .iter()
        .map(|d| {
            let imei: Imei = d.device_id.parse().unwrap();
            ((account.clone(), imei), Some(Arc::new(d.clone())))
        })
        .collect();
    let keys: Vec<_> = known.keys().cloned().collect();
    let (check, key) = (store.clone(), key.clone());
    let current = move || {
        check
            .current::<AccountPages>(&key)
            .is_some_and(|(v, _)| v == version)
    };
    store
        .get_many_known::<Details>(keys, known, current)
        .await
        .into_iter()
        .map(|((_, imei), answer)| (imei, answer.unwrap().freshness))
        .collect()
}

#[tokio::test]
async fn pages_are_cached_per_protocol_and_cursor() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let first = AccountPageKey::new(&account, None, None);
    let (p1, freshness, _) = page(&store, &first).await;
    assert_eq!(freshness, Freshness::Miss);
    assert_eq!(p1.devices.len(), 1_000);
    assert!(p1.has_more_data);
    // "0" and "" name the first page too.
    for same in [Some("0"), Some("")] {
        let (_, freshness, _) = page(&store, &AccountPageKey::new(&account, None, same)).await;
        assert_eq!(freshness, Freshness::Hit);
    }
    let next = p1.last_seen_device_id.clone().unwrap();
    let (p2, _, _) = page(&store, &AccountPageKey::new(&account, None, Some(&next))).await;
    assert!(p2.devices[0].device_id > next);
    let http: Protocol = "http".parse().unwrap();
    let (h1, freshness, _) = page(&store, &AccountPageKey::new(&account, Some(&http), None)).await;
    assert_eq!(
        freshness,
        Freshness::Miss,
        "another protocol, another entry"
    );
    assert!(
        h1.devices
            .iter()
            .all(|d| d.protocol.as_deref() == Some("HTTP"))
    );
    assert_eq!(calls(&stats(&sim).await, "account_devices"), 3);
}

#[tokio::test]
async fn a_page_read_now_fills_the_details_entries_without_a_details_call() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let key = AccountPageKey::new(&account, None, None);
    let (p1, _, version) = page(&store, &key).await;
    let filled = fill_from(&store, &account, &key, version, &p1).await;
    assert_eq!(filled.len(), 1_000);
    assert!(filled.values().all(|f| *f == Freshness::Miss));
    let after = stats(&sim).await;
    assert_eq!(calls(&after, "device_details"), 0, "{after}");

    // The entries are the details reads answer from now, equal to the upstream's own.
    let imeis: Vec<Imei> = p1
        .devices
        .iter()
        .step_by(97)
        .map(|d| d.device_id.parse().unwrap())
        .collect();
    let cached = details_of(&store, &account, &imeis).await;
    for imei in &imeis {
        let fetched = cached[imei].as_ref().unwrap();
        assert_eq!(fetched.freshness, Freshness::Hit);
        let listed = p1.devices.iter().find(|d| d.device_id == imei.as_str());
        assert_eq!(fetched.value.as_deref(), listed);
    }
    assert_eq!(calls(&stats(&sim).await, "device_details"), 0);
    // The POST endpoint answers the same records.
    let fresh = store_of_same_sim(&sim);
    let upstream = details_of(&fresh, &account, &imeis).await;
    for imei in &imeis {
        assert_eq!(
            upstream[imei].as_ref().unwrap().value,
            cached[imei].as_ref().unwrap().value
        );
    }

    // Entries already fresh are kept as they are.
    let again = fill_from(&store, &account, &key, version, &p1).await;
    assert!(again.values().all(|f| *f == Freshness::Hit));
}

fn store_of_same_sim(sim: &devicegraph_sim::RunningSim) -> Store {
    store(sim, store_config(), Arc::new(TokioClock))
}

#[tokio::test]
async fn once_the_page_is_invalidated_its_details_are_not_stored() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let key = AccountPageKey::new(&account, None, None);
    let (p1, _, version) = page(&store, &key).await;
    // The account changed upstream and was invalidated after the page was read.
    let whole = InvalidateScope {
        account: account.clone(),
        imei: None,
        campaign: None,
    };
    assert!(store.invalidate(&whole).await >= 1);
    assert!(!store.is_cached::<AccountPages>(&key));
    let filled = fill_from(&store, &account, &key, version, &p1).await;
    assert_eq!(filled.len(), 1_000);
    assert_eq!(
        calls(&stats(&sim).await, "device_details"),
        1,
        "fetched from the upstream instead (one batch of 1,000)"
    );
}

#[tokio::test]
async fn only_a_whole_account_invalidation_drops_its_pages() {
    let sim = sim(10_000).await;
    let store = store(&sim, store_config(), Arc::new(TokioClock));
    let account = account();
    let key = AccountPageKey::new(&account, None, None);
    let (p1, _, _) = page(&store, &key).await;
    let imei: Imei = p1.devices[0].device_id.parse().unwrap();
    let device = InvalidateScope {
        account: account.clone(),
        imei: Some(imei),
        campaign: None,
    };
    store.invalidate(&device).await;
    assert!(store.is_cached::<AccountPages>(&key));
    let other = InvalidateScope {
        account: "0000123456-00002".parse().unwrap(),
        imei: None,
        campaign: None,
    };
    store.invalidate(&other).await;
    assert!(store.is_cached::<AccountPages>(&key));
    let whole = InvalidateScope {
        account,
        imei: None,
        campaign: None,
    };
    store.invalidate(&whole).await;
    assert!(!store.is_cached::<AccountPages>(&key));
}
