//! Redis: the L2 shared by two stores, the upstream budget shared by two stores,
//! invalidation reaching the L2 and the other stores' L1, and an unreachable Redis never failing a request.
//! Needs `DEVICEGRAPH_TEST_REDIS_URL` (skipped with a message otherwise, failed when
//! `DEVICEGRAPH_REQUIRE_REDIS=1`); each test uses its own key prefix.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use devicegraph_cache::resources::*;
use devicegraph_cache::{
    CacheError, Freshness, InvalidateScope, ManualClock, Store, StoreConfig, TokioClock,
};
use devicegraph_upstream::{Endpoint, UpstreamError};
use futures::future::join_all;
use serde_json::json;
use support::*;

/// Invalidation of one device of the test account.
fn device_scope(imei: &devicegraph_upstream::Imei) -> InvalidateScope {
    InvalidateScope {
        account: account(),
        imei: Some(imei.clone()),
        campaign: None,
    }
}

fn redis_config(url: &str, test: &str) -> StoreConfig {
    let mut config = store_config();
    config.redis_url = Some(url.to_owned());
    config.redis_key_prefix = unique_prefix(test);
    config
}

/// The fetch time travels with the L2 copy: a second store reports the first's
/// (here an hour ahead of real time, so the second's own clock cannot produce it),
/// not the time it read the copy; the age comes from Redis's expiry, not from
/// comparing the two clocks.
#[tokio::test]
async fn a_second_store_reports_the_fetch_time_of_the_first() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "fetched-at");
    let ahead = Arc::new(ManualClock::new());
    ahead.advance(Duration::from_secs(3600));
    let first = store(&sim, config.clone(), ahead);
    let second = store(&sim, config, Arc::new(TokioClock));
    let key = (account(), sample_imeis(&sim)[0].clone());

    let fetched = first.get::<CheckIns>(key.clone()).await.unwrap();
    assert_eq!(fetched.freshness, Freshness::Miss);
    let at = fetched.stamp.fetched_at.unwrap();
    let before = stats(&sim).await;

    let copy = second.get::<CheckIns>(key).await.unwrap();
    assert_eq!(copy.freshness, Freshness::Hit, "from the L2");
    assert_eq!(
        calls(&stats(&sim).await, "check_in_history"),
        calls(&before, "check_in_history")
    );
    // Redis keeps milliseconds.
    let millis =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert_eq!(copy.stamp.fetched_at.map(millis), Some(millis(at)));
    assert!(
        copy.stamp.age < Duration::from_secs(5),
        "{:?}",
        copy.stamp.age
    );
}

#[tokio::test]
async fn a_second_store_is_served_from_the_l2_without_an_upstream_call() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "l2");
    let first = store(&sim, config.clone(), Arc::new(TokioClock));
    let second = store(&sim, config, Arc::new(TokioClock));
    assert_eq!(first.redis_reachable().await, Some(true));
    let account = account();
    let imeis = sample_imeis(&sim);

    let details = details_of(&first, &account, &imeis[0..3]).await;
    assert!(
        details
            .values()
            .all(|r| r.as_ref().unwrap().freshness == Freshness::Miss)
    );
    let check_ins = first
        .get::<CheckIns>((account.clone(), imeis[0].clone()))
        .await
        .unwrap();
    let before = stats(&sim).await;

    let from_l2 = details_of(&second, &account, &imeis[0..4]).await;
    for imei in &imeis[0..3] {
        let got = from_l2[imei].as_ref().unwrap();
        assert_eq!(got.freshness, Freshness::Hit, "{imei} from the L2");
        assert_eq!(got.value, details[imei].as_ref().unwrap().value);
    }
    assert_eq!(
        from_l2[&imeis[3]].as_ref().unwrap().freshness,
        Freshness::Miss
    );
    let again = second
        .get::<CheckIns>((account.clone(), imeis[0].clone()))
        .await
        .unwrap();
    assert_eq!(again.freshness, Freshness::Hit);
    assert_eq!(again.value, check_ins.value);

    let after = stats(&sim).await;
    assert_eq!(
        calls(&after, "check_in_history"),
        calls(&before, "check_in_history")
    );
    assert_eq!(
        calls(&after, "device_details") - calls(&before, "device_details"),
        1,
        "only the IMEI neither store had"
    );
}

#[tokio::test]
async fn invalidation_reaches_the_l2() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "invalidate");
    let first = store(&sim, config.clone(), Arc::new(TokioClock));
    // A listener's first sync clears its L1 (it cannot know what it missed before).
    wait_for_listeners(&url, &first, 1).await;
    let account = account();
    let imei = sample_imeis(&sim)[0].clone();
    first
        .get::<CheckIns>((account.clone(), imei.clone()))
        .await
        .unwrap();
    first
        .get::<UpgradeHistory>((account.clone(), imei.clone()))
        .await
        .unwrap();

    // A store that never saw the device still drops its L2 copies.
    let second = store(&sim, config, Arc::new(TokioClock));
    let scope = device_scope(&imei);
    wait_for_listeners(&url, &first, 2).await;
    assert_eq!(first.entry_count(), 2);
    assert_eq!(second.invalidate(&scope).await, 2, "the L2 copies");
    // The first store's L1 copies go too, through the published invalidation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while first.entry_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "first L1 kept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(first.invalidate(&scope).await, 0, "nothing left anywhere");
    assert_eq!(
        second
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_one_upstream_budget() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let mut config = redis_config(&url, "budget");
    config.rate_per_second = 10;
    config.burst = 10;
    config.max_concurrency = 8;
    let make = || {
        Store::connect_with_clock(
            config.clone(),
            client_config(&sim, Duration::from_secs(2)),
            Arc::new(TokioClock),
        )
        .unwrap()
    };
    let (a, b) = (make(), make());
    let account = account();

    let tasks = generated_imeis(300)
        .into_iter()
        .enumerate()
        .map(|(n, imei)| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let account = account.clone();
            tokio::spawn(
                async move { store.get::<CheckIns>((account.clone(), imei.clone())).await },
            )
        });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let stats = stats(&sim).await;
    let answered = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(_) | Err(CacheError::Upstream(UpstreamError::Api { .. }))
            )
        })
        .count();
    let peak = stats["peakTotalRatePerSecond"].as_u64().unwrap();
    println!(
        "two stores sharing 10/s through Redis: {answered} of 300 answered in 2 s, sim peak {peak}/s"
    );
    assert!(
        peak <= 10,
        "the two stores together sent {peak} in one second"
    );
    assert!(answered >= 10, "{answered}");
}

/// A fetch under way when the invalidation runs must not put the old value back into
/// the L2 (where every replica would read it for a whole TTL).
#[tokio::test]
async fn a_fetch_under_way_during_an_invalidation_does_not_refill_the_l2() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "race");
    let first = store(&sim, config.clone(), Arc::new(TokioClock));
    let second = store(&sim, config, Arc::new(TokioClock));
    let account = account();
    let imei = sample_imeis(&sim)[0].clone();
    // The simulator holds the check-in request this long before answering it.
    faults(
        &sim,
        json!({"latencyMs": 1_000, "endpoints": ["check_in_history"]}),
    )
    .await;
    let flight = tokio::spawn({
        let (store, account, imei) = (first.clone(), account.clone(), imei.clone());
        async move { store.get::<CheckIns>((account.clone(), imei.clone())).await }
    });
    wait_for_check_in_in_flight(&sim).await;
    let scope = device_scope(&imei);
    first.invalidate(&scope).await;
    // The whole invalidation ran inside the flight: the simulator has not answered
    // yet, so the fetch read the value before the invalidation and stores it after.
    let during = stats(&sim).await;
    assert!(
        !flight.is_finished() && during["inFlight"].as_u64().unwrap() >= 1,
        "the fetch ended before the invalidation did: {during}"
    );
    assert_eq!(
        flight.await.unwrap().unwrap().freshness,
        Freshness::Miss,
        "its caller is answered"
    );
    faults(&sim, json!({"clear": true})).await;
    assert_eq!(
        second
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss,
        "not in the L2"
    );
}

/// Waits until the simulator has received the one check-in request and not answered
/// it yet.
async fn wait_for_check_in_in_flight(sim: &devicegraph_sim::RunningSim) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let now = stats(sim).await;
        if calls(&now, "check_in_history") == 1 && now["inFlight"].as_u64().unwrap() >= 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the check-in request never reached the simulator: {now}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls (up to 2 s) until `store`'s next read of `imei`'s details reaches the
/// upstream; answers how long that took.
async fn until_details_go_upstream(
    sim: &devicegraph_sim::RunningSim,
    store: &Store,
    imei: &devicegraph_upstream::Imei,
) -> Option<Duration> {
    let account = account();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let before = calls(&stats(sim).await, "device_details");
        let got = details_of(store, &account, std::slice::from_ref(imei)).await;
        assert!(got[imei].is_ok());
        if calls(&stats(sim).await, "device_details") > before {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_the_other_stores_l1() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "fanout");
    let a = store(&sim, config.clone(), Arc::new(TokioClock));
    let b = store(&sim, config, Arc::new(TokioClock));
    // Same Redis, same sim, another prefix: another deployment.
    let other = store(
        &sim,
        redis_config(&url, "fanout-other"),
        Arc::new(TokioClock),
    );
    let account = account();
    let imei = sample_imeis(&sim)[0].clone();
    let one = std::slice::from_ref(&imei);
    // Let the listeners make their first sync (which clears their L1) before filling.
    wait_for_listeners(&url, &a, 2).await;

    details_of(&a, &account, one).await;
    details_of(&b, &account, one).await;
    details_of(&other, &account, one).await;
    let warm = calls(&stats(&sim).await, "device_details");
    for s in [&a, &b, &other] {
        let got = details_of(s, &account, one).await;
        assert_eq!(got[&imei].as_ref().unwrap().freshness, Freshness::Hit);
    }
    assert_eq!(
        calls(&stats(&sim).await, "device_details"),
        warm,
        "all warm"
    );

    let scope = device_scope(&imei);
    assert_eq!(
        a.invalidate(&scope).await,
        1,
        "its own L1 copy and the shared L2 copy are one key; B's is not counted"
    );
    let delay = until_details_go_upstream(&sim, &b, &imei)
        .await
        .expect("store B still serves its L1 copy 2 s after the invalidation");
    println!("invalidation reached the other store's L1 in {delay:?}");

    let before = calls(&stats(&sim).await, "device_details");
    let got = details_of(&other, &account, one).await;
    assert_eq!(got[&imei].as_ref().unwrap().freshness, Freshness::Hit);
    assert_eq!(
        calls(&stats(&sim).await, "device_details"),
        before,
        "another prefix is not affected"
    );
}

/// The invalidation listeners' connections of `store`'s prefix, by `CLIENT LIST`
/// (a listener names its connection once it is in sync with the log).
async fn listener_ids(conn: &mut redis::aio::MultiplexedConnection, store: &Store) -> Vec<String> {
    let name = format!(
        "name=devicegraph-invalidations:{} ",
        store.config().redis_key_prefix
    );
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .filter(|line| line.contains(&name))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Waits until `n` listeners of `store`'s prefix are in sync with the log.
async fn wait_for_listeners(url: &str, store: &Store, n: usize) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while listener_ids(&mut conn, store).await.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} invalidation listeners connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deletes the L2 copies of a prefix, so that a read without an upstream call proves
/// an L1 hit.
async fn drop_l2(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:v2:*"))
        .query_async(conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the L2 held copies");
    let _: u64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(conn)
        .await
        .unwrap();
}

/// Whether `store` answers `imei`'s details from its cache, without an upstream call.
async fn is_cached(
    sim: &devicegraph_sim::RunningSim,
    store: &Store,
    imei: &devicegraph_upstream::Imei,
) -> bool {
    let before = calls(&stats(sim).await, "device_details");
    let got = details_of(store, &account(), std::slice::from_ref(imei)).await;
    assert!(got[imei].is_ok());
    calls(&stats(sim).await, "device_details") == before
}

/// A simulator and two stores sharing a fresh prefix, both listeners in sync.
async fn two_listening_replicas(
    url: &str,
    test: &str,
) -> (devicegraph_sim::RunningSim, String, Store, Store) {
    let sim = sim(10_000).await;
    let config = redis_config(url, test);
    let prefix = config.redis_key_prefix.clone();
    let a = store(&sim, config.clone(), Arc::new(TokioClock));
    let b = store(&sim, config, Arc::new(TokioClock));
    wait_for_listeners(url, &a, 2).await;
    (sim, prefix, a, b)
}

/// A TCP proxy in front of Redis that a test can cut: [`RedisCut::cut`] closes every
/// connection made through it and refuses new ones until [`RedisCut::restore`], so a
/// store connected through it is disconnected for exactly as long as the test says.
struct RedisCut {
    url: String,
    open: tokio::sync::watch::Sender<bool>,
}

impl RedisCut {
    async fn start(url: &str) -> Self {
        let mut proxied = reqwest::Url::parse(url).unwrap();
        let target = format!(
            "{}:{}",
            proxied.host_str().unwrap(),
            proxied.port().unwrap_or(6379)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(port)).unwrap();
        let (open, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut open = watch.clone();
                if !*open.borrow_and_update() {
                    // Refused: closed at once, so the client fails fast and retries.
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = open.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Self {
            url: proxied.to_string(),
            open,
        }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

/// Waits until exactly `n` listeners of `store`'s prefix are connected and in sync.
async fn wait_for_exactly(
    conn: &mut redis::aio::MultiplexedConnection,
    store: &Store,
    n: usize,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let now = listener_ids(conn, store).await.len();
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {now} listeners, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Pub/sub would lose this one: the invalidation is made while B's Redis connections
/// (its listener's among them) are cut. B reads it from the log when it reconnects,
/// and drops exactly that device (its other cached device stays: a catch-up, not a
/// wholesale clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_made_while_a_replica_is_disconnected_reaches_it() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "catch-up");
    let prefix = config.redis_key_prefix.clone();
    // B reaches Redis only through a proxy the test can cut.
    let cut = RedisCut::start(&url).await;
    let a = store(&sim, config.clone(), Arc::new(TokioClock));
    let b = store(
        &sim,
        StoreConfig {
            redis_url: Some(cut.url.clone()),
            ..config
        },
        Arc::new(TokioClock),
    );
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    wait_for_exactly(&mut admin, &a, 2, "both listeners in sync").await;

    let imeis = sample_imeis(&sim);
    let (gone, kept) = (imeis[0].clone(), imeis[1].clone());
    let account = account();
    details_of(&b, &account, &[gone.clone(), kept.clone()]).await;
    // From here a read without an upstream call is an L1 hit.
    drop_l2(&mut admin, &prefix).await;
    assert!(is_cached(&sim, &b, &gone).await && is_cached(&sim, &b, &kept).await);

    // Cut B off; Redis sees its listener go, and it cannot come back until restored.
    cut.cut();
    wait_for_exactly(&mut admin, &a, 1, "B's listener disconnected").await;
    // (A held no copy, and the L2's is gone: the log entry is the only trace.)
    a.invalidate(&device_scope(&gone)).await;
    assert_eq!(
        listener_ids(&mut admin, &a).await.len(),
        1,
        "the invalidation was made while B's listener was disconnected"
    );
    // B's L1 cannot have heard of it: still cached (no read of B touches Redis here:
    // its L1 answers).
    assert!(
        is_cached(&sim, &b, &gone).await,
        "B learnt it without Redis"
    );

    cut.restore();
    wait_for_exactly(&mut admin, &a, 2, "B's listener reconnected").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while is_cached(&sim, &b, &gone).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B still serves the invalidated device 3 s after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        is_cached(&sim, &b, &kept).await,
        "B replayed the missed entry instead of clearing everything"
    );
}

/// Entries B can no longer read (trimmed from the log, or the keys flushed) show as
/// a jump in the sequence; B then drops its whole L1 rather than serve something
/// invalidated in the part it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_invalidation_log_clears_the_replicas_l1() {
    let Some(url) = redis_url() else { return };
    let (sim, prefix, a, b) = two_listening_replicas(&url, "gap").await;
    let imeis = sample_imeis(&sim);
    let account = account();
    details_of(&b, &account, &imeis[..2]).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    // From here a read without an upstream call is an L1 hit.
    drop_l2(&mut admin, &prefix).await;
    assert!(is_cached(&sim, &b, &imeis[0]).await);

    // A flush while both listen: the log's keys vanish, and A's next invalidation
    // (of an unrelated device) restarts the numbering at 1.
    a.invalidate(&device_scope(&imeis[5])).await;
    // B has applied entry 1 (unrelated: its devices stay).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        is_cached(&sim, &b, &imeis[0]).await,
        "an unrelated entry drops nothing"
    );
    let deleted: u64 = redis::cmd("DEL")
        .arg(format!("{prefix}:invalidations"))
        .arg(format!("{prefix}:invalidations:seq"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(deleted, 2, "the log and its counter existed");
    a.invalidate(&device_scope(&imeis[6])).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while is_cached(&sim, &b, &imeis[1]).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B kept its L1 across a gap in the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Redis holds a key matching `pattern` (the pause is published on its
/// own task).
async fn wait_for_key(url: &str, pattern: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no key {pattern} published"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_429_met_by_one_store_pauses_that_endpoint_for_every_store() {
    let Some(url) = redis_url() else { return };
    let sim = sim(10_000).await;
    let config = redis_config(&url, "pause");
    let prefix = config.redis_key_prefix.clone();
    let first = store(&sim, config.clone(), Arc::new(TokioClock));
    let second = store(&sim, config, Arc::new(TokioClock));
    let account = account();
    let imeis = sample_imeis(&sim);
    faults(
        &sim,
        json!({"rateLimitRate": 1.0, "retryAfterSecs": 30, "endpoints": ["check_in_history"]}),
    )
    .await;
    let err = first
        .get::<CheckIns>((account.clone(), imeis[0].clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Upstream(UpstreamError::RateLimited { .. })),
        "{err:?}"
    );
    // Only the first store met the 429; the upstream would answer again now.
    faults(&sim, json!({"clear": true})).await;
    wait_for_key(&url, &format!("{prefix}:pause:*")).await;
    let before = stats(&sim).await;

    // The second store does not send into the pause (30 s, past its 5 s deadline).
    let started = tokio::time::Instant::now();
    let err = second
        .get::<CheckIns>((account.clone(), imeis[1].clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::Upstream(UpstreamError::RateLimited { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(second.pacer().unwrap().is_paused(Endpoint::CheckInHistory));
    // Other endpoints go on.
    second
        .get::<UpgradeHistory>((account.clone(), imeis[1].clone()))
        .await
        .unwrap();
    let after = stats(&sim).await;
    assert_eq!(
        calls(&after, "check_in_history"),
        calls(&before, "check_in_history"),
        "no call into the pause"
    );
    assert_eq!(
        calls(&after, "upgrade_history") - calls(&before, "upgrade_history"),
        1
    );
}

/// No Redis needed: a configured but unreachable Redis costs nothing but a warning.
#[tokio::test]
async fn an_unreachable_redis_never_fails_a_request() {
    let sim = sim(10_000).await;
    let mut config = store_config();
    // Port 1 on loopback: nothing listens there.
    config.redis_url = Some("redis://127.0.0.1:1/".to_owned());
    let store = store(&sim, config, Arc::new(TokioClock));
    let account = account();
    let imei = sample_imeis(&sim)[0].clone();
    let started = tokio::time::Instant::now();
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Miss
    );
    assert_eq!(
        store
            .get::<CheckIns>((account.clone(), imei.clone()))
            .await
            .unwrap()
            .freshness,
        Freshness::Hit
    );
    let details = details_of(&store, &account, std::slice::from_ref(&imei)).await;
    assert!(details[&imei].is_ok());
    assert_eq!(store.redis_reachable().await, Some(false));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    faults(&sim, json!({"clear": true})).await;
}

#[test]
fn a_malformed_redis_url_is_a_config_error() {
    let config = StoreConfig {
        redis_url: Some("not a url".to_owned()),
        ..StoreConfig::default()
    };
    let client = devicegraph_upstream::ClientConfig::new(
        "http://127.0.0.1:9/api".parse().unwrap(),
        devicegraph_upstream::Credentials {
            client_id: "x".into(),
            client_secret: "y".into(),
            username: "u".into(),
            password: "p".into(),
        },
    );
    let err = Store::connect(config, client).unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Config {
                key: "cache.redis_url",
                ..
            }
        ),
        "{err}"
    );
}
