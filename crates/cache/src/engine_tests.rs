//! Engine tests with a fake fetch function on tokio's paused clock: TTL, SWR,
//! stale-if-error, coalescing, per-IMEI batches, negative caching, invalidation and
//! the byte bound.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use devicegraph_upstream::model::{CampaignPage, CheckIn, DeviceDetails};
use devicegraph_upstream::{AccountName, CampaignId, Endpoint, Imei, RequestGate};
use tokio::time::{Duration, advance, sleep};

use super::*;
use crate::clock::TokioClock;
use crate::config::StoreConfig;
use crate::resource::Cached;
use crate::resources::{CampaignPageKey, CampaignPages, CheckIns, Details};

/// A device-details key.
type Key = (AccountName, Imei);
type Value = Option<Arc<DeviceDetails>>;

const TTL: Duration = Duration::from_secs(60);
const NOT_FOUND_TTL: Duration = Duration::from_secs(10);
const SWR: Duration = Duration::from_secs(30);
const SIE: Duration = Duration::from_secs(3600);
const WINDOWS: Windows = Windows {
    stale_while_revalidate: SWR,
    stale_if_error: SIE,
};

/// A fake upstream: knows some IMEIs, answers after `delay`, with the current
/// `version` in each device's firmware, or with `failure`; or never answers
/// (`hangs`), or panics after its delay (`panics`).
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Vec<String>>>,
    /// Per call, whether it ran marked as background work.
    background: Mutex<Vec<bool>>,
    hangs: AtomicBool,
    panics: AtomicBool,
    version: AtomicU32,
    failure: Mutex<Option<UpstreamError>>,
    unknown: Mutex<HashSet<String>>,
    delay: Mutex<Duration>,
    /// TTL of the values it answers (`TTL` unless set).
    ttl: Mutex<Option<Duration>>,
}

impl Fake {
    fn new() -> Arc<Self> {
        let fake = Self::default();
        fake.version.store(1, Ordering::SeqCst);
        *fake.delay.lock().unwrap() = Duration::from_millis(100);
        Arc::new(fake)
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }

    fn fail_with(&self, e: Option<UpstreamError>) {
        *self.failure.lock().unwrap() = e;
    }

    fn fetch_fn(
        self: &Arc<Self>,
    ) -> impl FnOnce(Vec<Key>) -> BoxFuture<'static, FetchAnswers<Details>> + Send + 'static {
        let fake = Arc::clone(self);
        {
            move |keys: Vec<Key>| -> BoxFuture<'static, FetchAnswers<Details>> {
                let fake = Arc::clone(&fake);
                Box::pin(async move {
                    let names: Vec<String> = keys.iter().map(imei_of).collect();
                    fake.calls.lock().unwrap().push(names);
                    fake.background
                        .lock()
                        .unwrap()
                        .push(devicegraph_upstream::is_background());
                    // The upstream answers what it had when asked.
                    let version = fake.version.load(Ordering::SeqCst);
                    let delay = *fake.delay.lock().unwrap();
                    if fake.hangs.load(Ordering::SeqCst) {
                        futures::future::pending::<()>().await;
                    }
                    sleep(delay).await;
                    assert!(!fake.panics.load(Ordering::SeqCst), "the fetch panics");
                    let failure = fake.failure.lock().unwrap().clone();
                    let unknown = fake.unknown.lock().unwrap().clone();
                    let ttl = fake.ttl.lock().unwrap().unwrap_or(TTL);
                    keys.into_iter()
                        .map(|key| {
                            let imei = imei_of(&key);
                            let answer = match &failure {
                                Some(e) => Err(e.clone()),
                                None if unknown.contains(&imei) => Ok(Answer {
                                    value: Cached::Found(None),
                                    ttl: NOT_FOUND_TTL,
                                }),
                                None => Ok(Answer {
                                    value: device(&imei, version),
                                    ttl,
                                }),
                            };
                            (key, answer)
                        })
                        .collect()
                })
            }
        }
    }
}

fn imei_of(key: &Key) -> String {
    key.1.to_string()
}

fn device(imei: &str, version: u32) -> Cached<Value> {
    Cached::Found(Some(Arc::new(DeviceDetails {
        device_id: imei.to_owned(),
        account_name: Some(ACCOUNT.to_owned()),
        mdn: None,
        model: Some("GM01Q".to_owned()),
        make: Some("SEQUANS".to_owned()),
        firmware: Some(format!("v{version}")),
        fota_eligible: Some(true),
        license_assigned: None,
        status: Some("Active".to_owned()),
        protocol: Some("LWM2M".to_owned()),
        software: Vec::new(),
        files: Vec::new(),
        create_time: None,
        upgrade_time: None,
        status_time: None,
        refresh_time: None,
        last_connection_time: None,
    })))
}

const ACCOUNT: &str = "0000123456-00001";

fn account() -> AccountName {
    ACCOUNT.parse().unwrap()
}

/// The n-th test IMEI (valid Luhn).
fn imei(n: u64) -> Imei {
    let body = format!("{:014}", 35_000_000_000_000 + n);
    let check = devicegraph_upstream::ids::luhn_check_digit(&body);
    format!("{body}{check}").parse().unwrap()
}

fn key(n: u64) -> Key {
    (account(), imei(n))
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(
        64 << 20,
        WINDOWS,
        Arc::new(TokioClock),
        None,
        None,
    ))
}

/// The firmware version and freshness of one answered key.
fn version(result: &Result<Fetched<Value>, CacheError>) -> (String, Freshness) {
    let fetched = result.as_ref().unwrap();
    match &fetched.value {
        Some(d) => (d.firmware.clone().unwrap(), fetched.freshness),
        other => panic!("unexpected {other:?}"),
    }
}

async fn read(engine: &Arc<Engine>, fake: &Arc<Fake>, ns: &[u64]) -> Answers<Details> {
    let keys = ns.iter().map(|n| key(*n)).collect();
    engine.read::<Details, _>(keys, fake.fetch_fn()).await
}

async fn read1(
    engine: &Arc<Engine>,
    fake: &Arc<Fake>,
    n: u64,
) -> Result<Fetched<Value>, CacheError> {
    read(engine, fake, &[n]).await.remove(&key(n)).unwrap()
}

/// Lets spawned flights run to completion on the paused clock.
async fn settle() {
    sleep(Duration::from_secs(1)).await;
}

#[path = "engine_race_tests.rs"]
mod race;

#[path = "engine_failure_tests.rs"]
mod failure;

#[tokio::test(start_paused = true)]
async fn miss_then_hit_within_ttl() {
    let (engine, fake) = (engine(), Fake::new());
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Miss)
    );
    advance(TTL - Duration::from_secs(2)).await;
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Hit)
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn swr_serves_at_once_and_refreshes_once() {
    let (engine, fake) = (engine(), Fake::new());
    read1(&engine, &fake, 1).await.unwrap();
    advance(TTL + Duration::from_secs(5)).await;
    fake.version.store(2, Ordering::SeqCst);

    let started = tokio::time::Instant::now();
    let reads = (0..200).map(|_| read1(&engine, &fake, 1));
    let answers = futures::future::join_all(reads).await;
    // Served without waiting for the (100 ms) refresh.
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(
        answers
            .iter()
            .all(|a| version(a) == ("v1".into(), Freshness::Hit))
    );

    settle().await;
    assert_eq!(
        fake.calls().len(),
        2,
        "one background refresh for 200 requests"
    );
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Hit)
    );
}

#[tokio::test(start_paused = true)]
async fn failed_background_refresh_keeps_the_entry() {
    let (engine, fake) = (engine(), Fake::new());
    read1(&engine, &fake, 1).await.unwrap();
    advance(TTL + Duration::from_secs(1)).await;
    fake.fail_with(Some(UpstreamError::Timeout {
        endpoint: Endpoint::DeviceDetails,
    }));
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Hit);
    settle().await;
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Hit);
    settle().await;
    // One refresh per request that found it in the window, never concurrent.
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(engine.inflight().len(), 0);
}

/// Every read says when its entry was fetched, how old it was when read and, when
/// served stale, why (from the failure that made it fall back).
#[tokio::test(start_paused = true)]
async fn reads_stamp_the_fetch_time_the_age_and_why_stale() {
    let (engine, fake) = (engine(), Fake::new());
    let miss = read1(&engine, &fake, 1).await.unwrap();
    assert_eq!(miss.freshness, Freshness::Miss);
    let at = miss.stamp.fetched_at.unwrap();
    assert_eq!(miss.stamp.age, Duration::ZERO);
    assert_eq!(miss.stamp.stale_reason, None);

    advance(Duration::from_secs(20)).await;
    let hit = read1(&engine, &fake, 1).await.unwrap();
    assert_eq!(hit.freshness, Freshness::Hit);
    assert_eq!(
        hit.stamp.fetched_at,
        Some(at),
        "the entry's, not the read's"
    );
    assert_eq!(hit.stamp.age, Duration::from_secs(20));

    advance(TTL + SWR).await;
    let failures = [
        (
            UpstreamError::Unavailable {
                endpoint: Endpoint::DeviceDetails,
                reason: "HTTP 503".into(),
                status: Some(503),
            },
            StaleReason::UpstreamError,
        ),
        (
            UpstreamError::Timeout {
                endpoint: Endpoint::DeviceDetails,
            },
            StaleReason::UpstreamUnavailable,
        ),
        (
            UpstreamError::RateLimited {
                endpoint: Endpoint::DeviceDetails,
                retry_after: None,
            },
            StaleReason::RateLimited,
        ),
    ];
    for (error, reason) in failures {
        fake.fail_with(Some(error));
        let stale = read1(&engine, &fake, 1).await.unwrap();
        assert_eq!(stale.freshness, Freshness::Stale);
        assert_eq!(stale.stamp.stale_reason, Some(reason));
        assert_eq!(stale.stamp.fetched_at, Some(at));
        // 110 s, plus the failed fetches' 100 ms each.
        let age = stale.stamp.age;
        assert!(
            age >= Duration::from_secs(110) && age < Duration::from_secs(111),
            "{age:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_only_for_transient_failures_and_within_the_window() {
    let (engine, fake) = (engine(), Fake::new());
    read1(&engine, &fake, 1).await.unwrap();
    advance(TTL + SWR + Duration::from_secs(1)).await;

    fake.fail_with(Some(UpstreamError::Unavailable {
        endpoint: Endpoint::DeviceDetails,
        reason: "HTTP 503".into(),
        status: Some(503),
    }));
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Stale)
    );

    let api = UpstreamError::Api {
        endpoint: Endpoint::DeviceDetails,
        status: 400,
        error_code: "FOTA.REQUEST.Invalid".into(),
        error_message: "bad".into(),
    };
    fake.fail_with(Some(api.clone()));
    assert_eq!(
        read1(&engine, &fake, 1).await.unwrap_err(),
        CacheError::Upstream(api)
    );

    advance(SIE).await;
    fake.fail_with(Some(UpstreamError::Timeout {
        endpoint: Endpoint::DeviceDetails,
    }));
    assert!(matches!(
        read1(&engine, &fake, 1).await,
        Err(CacheError::Upstream(UpstreamError::Timeout { .. }))
    ));

    fake.fail_with(None);
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Miss)
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_endpoint_serves_stale_without_calling() {
    let pacer = Arc::new(Pacer::new(&StoreConfig::default(), "http://upstream").unwrap());
    let engine = Arc::new(Engine::new(
        1 << 20,
        WINDOWS,
        Arc::new(TokioClock),
        None,
        Some(Arc::clone(&pacer)),
    ));
    let fake = Fake::new();
    read1(&engine, &fake, 1).await.unwrap();
    advance(TTL + SWR + Duration::from_secs(1)).await;
    pacer.rate_limited(Endpoint::DeviceDetails, Duration::from_secs(30));
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Stale);
    assert_eq!(fake.calls().len(), 1);
    advance(Duration::from_secs(31)).await;
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Miss);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_cold_reads_make_one_call() {
    let (engine, fake) = (engine(), Fake::new());
    let reads = (0..1000).map(|_| read1(&engine, &fake, 7));
    let answers = futures::future::join_all(reads).await;
    assert!(
        answers
            .iter()
            .all(|a| version(a) == ("v1".into(), Freshness::Miss))
    );
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn overlapping_batches_fetch_each_imei_once() {
    let (engine, fake) = (engine(), Fake::new());
    let first = tokio::spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read(&engine, &fake, &[1, 2, 3]).await }
    });
    while engine.inflight().len() < 3 {
        tokio::task::yield_now().await;
    }
    let second = read(&engine, &fake, &[2, 3, 4]).await;
    let first = first.await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 3);
    assert!(
        first
            .values()
            .chain(second.values())
            .all(|a| version(a).1 == Freshness::Miss)
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1],
        vec![imei(4).to_string()],
        "the second batch asks only for what nobody fetches"
    );
}

#[tokio::test(start_paused = true)]
async fn a_later_batch_fetches_only_missing_imeis() {
    let (engine, fake) = (engine(), Fake::new());
    read(&engine, &fake, &[1, 2, 3]).await;
    let answers = read(&engine, &fake, &[2, 3, 4, 5, 5]).await;
    assert_eq!(answers.len(), 4, "duplicates answered once");
    assert_eq!(version(&answers[&key(2)]).1, Freshness::Hit);
    assert_eq!(version(&answers[&key(5)]).1, Freshness::Miss);
    let mut asked = fake.calls()[1].clone();
    asked.sort();
    assert_eq!(asked, vec![imei(4).to_string(), imei(5).to_string()]);
}

#[tokio::test(start_paused = true)]
async fn unknown_devices_are_remembered_for_the_not_found_ttl() {
    let (engine, fake) = (engine(), Fake::new());
    fake.unknown.lock().unwrap().insert(imei(9).to_string());
    let answers = read(&engine, &fake, &[1, 9]).await;
    assert!(matches!(
        &answers[&key(9)],
        Ok(Fetched {
            value: None,
            freshness: Freshness::Miss,
            ..
        })
    ));
    let again = read(&engine, &fake, &[1, 9]).await;
    assert!(matches!(
        &again[&key(9)],
        Ok(Fetched {
            value: None,
            freshness: Freshness::Hit,
            ..
        })
    ));
    assert_eq!(fake.calls().len(), 1);

    // Past the short negative TTL (and its SWR window) only the unknown IMEI is asked again.
    advance(NOT_FOUND_TTL + SWR + Duration::from_secs(1)).await;
    read(&engine, &fake, &[1, 9]).await;
    assert_eq!(fake.calls()[1], vec![imei(9).to_string()]);
}

#[tokio::test(start_paused = true)]
async fn invalidation_drops_the_scope_and_counts() {
    let (engine, fake) = (engine(), Fake::new());
    read(&engine, &fake, &[1, 2, 3]).await;
    let other: AccountName = "0000999999-00001".parse().unwrap();
    let campaign: CampaignId = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9".parse().unwrap();
    let answer: Answer<Arc<Vec<CheckIn>>> = Answer {
        value: Cached::Found(Arc::new(Vec::new())),
        ttl: TTL,
    };
    engine.insert::<CheckIns>((account(), imei(1)), answer.clone());
    engine.insert::<CheckIns>((other.clone(), imei(1)), answer.clone());
    let page: Answer<Arc<CampaignPage>> = Answer {
        value: Cached::Found(Arc::new(CampaignPage {
            total_devices: None,
            has_more_data: false,
            last_seen_device_id: None,
            max_page_size: None,
            devices: Vec::new(),
        })),
        ttl: TTL,
    };
    for cursor in [None, Some("350000000000010")] {
        let key = CampaignPageKey::new(&account(), &campaign, cursor);
        engine.insert::<CampaignPages>(key, page.clone());
    }

    let device = InvalidateScope {
        account: account(),
        imei: Some(imei(1)),
        campaign: None,
    };
    assert_eq!(
        engine.invalidate(&device).await,
        2,
        "details + check-ins of that IMEI"
    );
    let pages = InvalidateScope {
        account: account(),
        imei: None,
        campaign: Some(campaign),
    };
    assert_eq!(engine.invalidate(&pages).await, 2);
    let whole = InvalidateScope {
        account: account(),
        imei: None,
        campaign: None,
    };
    assert_eq!(engine.invalidate(&whole).await, 2, "IMEIs 2 and 3 remain");
    assert_eq!(engine.invalidate(&whole).await, 0);
    assert_eq!(engine.entry_count(), 1, "the other account's entry stays");

    assert_eq!(version(&read1(&engine, &fake, 2).await).1, Freshness::Miss);
}

#[tokio::test(start_paused = true)]
async fn the_byte_bound_holds_when_filled_far_past_it() {
    const BOUND: u64 = 2 << 20;
    let engine = Arc::new(Engine::new(
        BOUND,
        WINDOWS,
        Arc::new(TokioClock),
        None,
        None,
    ));
    let mut total: u64 = 0;
    for n in 0..20_000 {
        let answer = Answer {
            value: device(&imei(n).to_string(), 1),
            ttl: TTL,
        };
        let entry = Arc::new(Entry::new(
            answer.clone(),
            tokio::time::Instant::now(),
            std::time::SystemTime::now(),
        ));
        total += u64::from(Slot::new::<Details>(&AnyKey::new::<Details>(key(n)), entry).weight);
        engine.insert::<Details>(key(n), answer);
    }
    let held = engine.weighted_size();
    assert!(
        total > 5 * BOUND,
        "the test must overfill: {total} bytes offered"
    );
    assert!(held <= BOUND, "held {held} > bound {BOUND}");
    assert!(
        held > BOUND / 2,
        "the cache should still be well used: {held}"
    );
    assert!(engine.entry_count() < 20_000);
}
