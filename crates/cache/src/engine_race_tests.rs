//! Engine tests for what happens around an invalidation (a flight already under way
//! must not cache what it read before) and for the upkeep that keeps the bytes gauge
//! right after evictions.

use super::*;

fn device_scope(n: u64) -> InvalidateScope {
    InvalidateScope {
        account: account(),
        imei: Some(imei(n)),
        campaign: None,
    }
}

/// Starts a read of key `n` on its own task and waits until its flight asked the
/// (fake) upstream, which then answers with the version it had at that moment.
async fn read_in_flight(
    engine: &Arc<Engine>,
    fake: &Arc<Fake>,
    n: u64,
) -> tokio::task::JoinHandle<Result<Fetched<Value>, CacheError>> {
    let calls = fake.calls().len();
    let task = tokio::spawn({
        let (engine, fake) = (Arc::clone(engine), Arc::clone(fake));
        async move { read1(&engine, &fake, n).await }
    });
    while fake.calls().len() == calls {
        tokio::task::yield_now().await;
    }
    task
}

#[tokio::test(start_paused = true)]
async fn a_flight_under_way_during_an_invalidation_does_not_cache_the_old_value() {
    let (engine, fake) = (engine(), Fake::new());
    let first = read_in_flight(&engine, &fake, 1).await;
    // The operator changes the device upstream, then invalidates it.
    fake.version.store(2, Ordering::SeqCst);
    assert_eq!(engine.invalidate(&device_scope(1)).await, 0);

    // The request that asked before the invalidation still gets its answer...
    assert_eq!(
        version(&first.await.unwrap()),
        ("v1".into(), Freshness::Miss)
    );
    // ...but the old value was not stored.
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Miss)
    );
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Hit)
    );
    assert_eq!(fake.calls().len(), 2);
    assert_eq!(engine.epochs().records(), 0, "nothing left to remember");
}

/// The same guard when the invalidation comes from another replica (L1 only).
#[tokio::test(start_paused = true)]
async fn a_flight_under_way_during_a_remote_invalidation_does_not_cache_the_old_value() {
    let (engine, fake) = (engine(), Fake::new());
    read1(&engine, &fake, 2).await.unwrap();
    let first = read_in_flight(&engine, &fake, 1).await;
    fake.version.store(2, Ordering::SeqCst);
    assert_eq!(engine.invalidate_l1(&device_scope(1)), 0);
    assert_eq!(engine.invalidate_l1(&device_scope(2)), 1);
    assert_eq!(version(&first.await.unwrap()).0, "v1");
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Miss)
    );
    assert_eq!(
        version(&read1(&engine, &fake, 2).await),
        ("v2".into(), Freshness::Miss)
    );
    assert_eq!(engine.epochs().records(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_after_an_invalidation_does_not_join_an_older_flight() {
    let (engine, fake) = (engine(), Fake::new());
    let first = read_in_flight(&engine, &fake, 1).await;
    let other = read_in_flight(&engine, &fake, 2).await;
    fake.version.store(2, Ordering::SeqCst);
    engine.invalidate(&device_scope(1)).await;

    // Asked while the old flight is still under way: a new flight, the new value.
    let after = read(&engine, &fake, &[1, 2]).await;
    assert_eq!(version(&after[&key(1)]), ("v2".into(), Freshness::Miss));
    // Out of scope: still coalesced with the flight under way.
    assert_eq!(version(&after[&key(2)]), ("v1".into(), Freshness::Miss));
    assert_eq!(
        version(&first.await.unwrap()),
        ("v1".into(), Freshness::Miss)
    );
    other.await.unwrap().unwrap();
    assert_eq!(fake.calls().len(), 3, "IMEI 1 twice, IMEI 2 once");
    // The flight that started after the invalidation did store its answer.
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Hit)
    );
    assert_eq!(version(&read1(&engine, &fake, 2).await).1, Freshness::Hit);
}

#[tokio::test(start_paused = true)]
async fn a_background_refresh_under_way_during_an_invalidation_is_not_stored() {
    let (engine, fake) = (engine(), Fake::new());
    read1(&engine, &fake, 1).await.unwrap();
    advance(TTL + Duration::from_secs(1)).await;
    // Served from the SWR window; the refresh starts in the background.
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Hit);
    while fake.calls().len() < 2 {
        tokio::task::yield_now().await;
    }
    fake.version.store(2, Ordering::SeqCst);
    engine.invalidate(&device_scope(1)).await;
    settle().await;
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v2".into(), Freshness::Miss)
    );
}

/// Real time: moka expires entries on its own clock. Entries live 50 ms; without
/// the upkeep nothing would ever run moka's housekeeping again, so the gauge would
/// keep the bytes of entries long gone.
#[tokio::test]
async fn the_bytes_gauge_follows_evictions_by_time() {
    let no_windows = Windows {
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
    };
    let engine = Arc::new(Engine::new(
        64 << 20,
        no_windows,
        Arc::new(TokioClock),
        None,
        None,
    ));
    engine.start_upkeep(Duration::from_millis(20));
    let fake = Fake::new();
    *fake.delay.lock().unwrap() = Duration::ZERO;
    *fake.ttl.lock().unwrap() = Some(Duration::from_millis(50));
    let ns: Vec<u64> = (0..40).collect();
    assert_eq!(read(&engine, &fake, &ns).await.len(), 40);

    let until = |want: fn(u64) -> bool| {
        let engine = Arc::clone(&engine);
        async move {
            // moka's timer wheel turns about once a second: allow a few.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !want(engine.reported_bytes()) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "gauge stuck at {}",
                    engine.reported_bytes()
                );
                sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until(|b| b > 0).await;
    until(|b| b == 0).await;
    assert_eq!(engine.entry_count(), 0);
}
