//! Engine tests for flights that end badly: the shared fetch fails, hangs, panics,
//! loses its first caller or its runtime. Every waiter gets an answer in time,
//! nothing wrong is cached, the keys are released and the next request tries again.
//! Also: which flights run as background work.

use std::pin::pin;

use futures::poll;

use super::*;
use crate::deadline::with_deadline;

/// Caches IMEI 1 (`v1`), then lets it expire past the revalidation window, so a
/// read holds a stale copy it may serve if the upstream fails; IMEI 2 stays cold.
async fn one_stale_one_cold(engine: &Arc<Engine>, fake: &Arc<Fake>) {
    read1(engine, fake, 1).await.unwrap();
    advance(TTL + SWR + Duration::from_secs(1)).await;
}

/// The stale copy's firmware and why it was served stale.
fn stale(result: &Result<Fetched<Value>, CacheError>) -> (String, Option<StaleReason>) {
    let (firmware, freshness) = version(result);
    assert_eq!(freshness, Freshness::Stale);
    (firmware, result.as_ref().unwrap().stamp.stale_reason)
}

fn timeout() -> CacheError {
    CacheError::Upstream(UpstreamError::Timeout {
        endpoint: Endpoint::DeviceDetails,
    })
}

/// Turns a hang of `fut` into a test failure (paused clock: costs no real time).
async fn within_an_hour<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), fut)
        .await
        .expect("still waiting after an hour")
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_answers_every_waiter_at_once_and_is_not_stored() {
    let (engine, fake) = (engine(), Fake::new());
    one_stale_one_cold(&engine, &fake).await;
    let unavailable = UpstreamError::Unavailable {
        endpoint: Endpoint::DeviceDetails,
        reason: "HTTP 503".into(),
        status: Some(503),
    };
    fake.fail_with(Some(unavailable.clone()));

    let started = tokio::time::Instant::now();
    let reads = (0..100).map(|_| read(&engine, &fake, &[1, 2]));
    let answers = futures::future::join_all(reads).await;
    // All answered when the one call failed (the fake's 100 ms), none later.
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    for answer in &answers {
        assert_eq!(
            stale(&answer[&key(1)]),
            ("v1".into(), Some(StaleReason::UpstreamError))
        );
        assert_eq!(
            answer[&key(2)].clone().unwrap_err(),
            CacheError::Upstream(unavailable.clone())
        );
    }
    assert_eq!(fake.calls().len(), 2, "one call for the 100 requests");
    assert_eq!(engine.inflight().len(), 0);

    // The error was not stored: the next request asks again and gets the value.
    fake.fail_with(None);
    let again = read(&engine, &fake, &[1, 2]).await;
    assert_eq!(version(&again[&key(1)]), ("v1".into(), Freshness::Miss));
    assert_eq!(version(&again[&key(2)]), ("v1".into(), Freshness::Miss));
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hung_fetch_is_abandoned_at_the_flight_deadline() {
    let engine = Arc::new(
        Engine::new(64 << 20, WINDOWS, Arc::new(TokioClock), None, None)
            .with_fetch_timeout(Duration::from_secs(5)),
    );
    let fake = Fake::new();
    one_stale_one_cold(&engine, &fake).await;
    fake.hangs.store(true, Ordering::SeqCst);

    let started = tokio::time::Instant::now();
    let leader = tokio::spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read(&engine, &fake, &[1, 2]).await }
    });
    while fake.calls().len() < 2 {
        tokio::task::yield_now().await;
    }
    // A request joining later waits for the same deadline, not five seconds more.
    advance(Duration::from_secs(2)).await;
    let joined = within_an_hour(read(&engine, &fake, &[1, 2])).await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let leader = within_an_hour(leader).await.unwrap();
    for answer in [&leader, &joined] {
        assert_eq!(
            stale(&answer[&key(1)]),
            ("v1".into(), Some(StaleReason::UpstreamUnavailable))
        );
        assert_eq!(answer[&key(2)].clone().unwrap_err(), timeout());
    }
    assert_eq!(fake.calls().len(), 2, "the late request joined the flight");
    assert_eq!(engine.inflight().len(), 0, "the keys are released");

    fake.hangs.store(false, Ordering::SeqCst);
    let again = read(&engine, &fake, &[1, 2]).await;
    assert_eq!(version(&again[&key(1)]).1, Freshness::Miss);
    assert_eq!(version(&again[&key(2)]).1, Freshness::Miss);
    assert_eq!(fake.calls().len(), 3);
}

/// A request that joins a slow flight with less time left than its starter stops at
/// its own deadline; the flight goes on, answers its starter and is stored once.
#[tokio::test(start_paused = true)]
async fn a_waiter_stops_at_its_own_deadline_and_the_flight_goes_on() {
    let (engine, fake) = (engine(), Fake::new());
    one_stale_one_cold(&engine, &fake).await;
    fake.version.store(2, Ordering::SeqCst);
    *fake.delay.lock().unwrap() = Duration::from_secs(10);

    let started = tokio::time::Instant::now();
    let leader = tokio::spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read(&engine, &fake, &[1, 2]).await }
    });
    while fake.calls().len() < 2 {
        tokio::task::yield_now().await;
    }
    advance(Duration::from_secs(1)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let late = with_deadline(deadline, read(&engine, &fake, &[1, 2])).await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        stale(&late[&key(1)]),
        ("v1".into(), Some(StaleReason::UpstreamUnavailable))
    );
    assert_eq!(late[&key(2)].clone().unwrap_err(), timeout());

    let leader = leader.await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(version(&leader[&key(1)]), ("v2".into(), Freshness::Miss));
    assert_eq!(version(&leader[&key(2)]), ("v2".into(), Freshness::Miss));
    let after = read(&engine, &fake, &[1, 2]).await;
    assert_eq!(version(&after[&key(1)]), ("v2".into(), Freshness::Hit));
    assert_eq!(version(&after[&key(2)]), ("v2".into(), Freshness::Hit));
    assert_eq!(fake.calls().len(), 2);
}

/// A deadline already in force is not extended by a later, looser one.
#[tokio::test(start_paused = true)]
async fn nested_deadlines_keep_the_earliest() {
    let now = tokio::time::Instant::now();
    let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(9));
    let seen = with_deadline(
        soon,
        with_deadline(later, async { crate::deadline::current_deadline() }),
    )
    .await;
    assert_eq!(seen, Some(soon));
    let seen = with_deadline(
        later,
        with_deadline(soon, async { crate::deadline::current_deadline() }),
    )
    .await;
    assert_eq!(seen, Some(soon));
    assert_eq!(crate::deadline::current_deadline(), None);
}

/// The first caller's client disconnects (its request future is dropped) while its
/// flight is under way: the request that joined still gets the value, the value is
/// stored, and nobody asks the upstream a second time.
#[tokio::test(start_paused = true)]
async fn the_first_caller_going_away_does_not_cancel_the_flight() {
    let (engine, fake) = (engine(), Fake::new());
    let first = tokio::spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read1(&engine, &fake, 1).await }
    });
    while fake.calls().is_empty() {
        tokio::task::yield_now().await;
    }
    let mut joined = pin!(read1(&engine, &fake, 1));
    assert!(poll!(&mut joined).is_pending(), "joined the flight");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    assert_eq!(version(&joined.await), ("v1".into(), Freshness::Miss));
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Hit)
    );
    assert_eq!(fake.calls().len(), 1);

    // Alone: nobody waits, the value is stored all the same.
    let alone = tokio::spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read1(&engine, &fake, 2).await }
    });
    while fake.calls().len() < 2 {
        tokio::task::yield_now().await;
    }
    alone.abort();
    settle().await;
    assert_eq!(
        version(&read1(&engine, &fake, 2).await),
        ("v1".into(), Freshness::Hit)
    );
    assert_eq!(fake.calls().len(), 2);
    assert_eq!(engine.inflight().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_fetch_answers_its_waiters_and_releases_its_keys() {
    let (engine, fake) = (engine(), Fake::new());
    fake.panics.store(true, Ordering::SeqCst);
    let reads = (0..10).map(|_| read1(&engine, &fake, 1));
    let answers = within_an_hour(futures::future::join_all(reads)).await;
    for answer in answers {
        assert_eq!(
            answer.unwrap_err(),
            CacheError::FetchAborted {
                resource: Details::INFO.name
            }
        );
    }
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(engine.inflight().len(), 0);

    fake.panics.store(false, Ordering::SeqCst);
    assert_eq!(
        version(&read1(&engine, &fake, 1).await),
        ("v1".into(), Freshness::Miss)
    );
    assert_eq!(fake.calls().len(), 2);
}

/// The runtime the flight runs on shuts down (its task is dropped, not panicked)
/// while a request on another runtime waits for it. Real time: two runtimes.
#[test]
fn a_flight_dropped_by_its_runtime_answers_its_waiters() {
    let (engine, fake) = (engine(), Fake::new());
    *fake.delay.lock().unwrap() = Duration::from_secs(3600);
    let flights = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let here = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    drop(flights.spawn({
        let (engine, fake) = (Arc::clone(&engine), Arc::clone(&fake));
        async move { read1(&engine, &fake, 1).await }
    }));
    here.block_on(async {
        while fake.calls().is_empty() {
            tokio::task::yield_now().await;
        }
        let mut joined = pin!(read1(&engine, &fake, 1));
        assert!(poll!(&mut joined).is_pending(), "joined the flight");
        flights.shutdown_background();
        let answer = tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .expect("the waiter was not answered");
        assert_eq!(
            answer.unwrap_err(),
            CacheError::FetchAborted {
                resource: Details::INFO.name
            }
        );
        // Released before the waiter was told (`coalesce`): no dead flight to join.
        assert_eq!(engine.inflight().len(), 0);

        *fake.delay.lock().unwrap() = Duration::ZERO;
        assert_eq!(
            version(&read1(&engine, &fake, 1).await),
            ("v1".into(), Freshness::Miss)
        );
        assert_eq!(fake.calls().len(), 2);
    });
}

/// A refresh nobody waits for runs as background work; a cold fetch does not, nor
/// does a flight that refreshes one key while a request waits for another.
#[tokio::test(start_paused = true)]
async fn only_flights_of_refreshes_alone_run_as_background_work() {
    let (engine, fake) = (engine(), Fake::new());
    let background = || fake.background.lock().unwrap().clone();
    read1(&engine, &fake, 1).await.unwrap();
    assert_eq!(background(), [false], "cold fetch");

    advance(TTL + Duration::from_secs(1)).await;
    assert_eq!(version(&read1(&engine, &fake, 1).await).1, Freshness::Hit);
    settle().await;
    assert_eq!(background(), [false, true], "refresh alone");

    advance(TTL + Duration::from_secs(1)).await;
    let mixed = read(&engine, &fake, &[1, 2]).await;
    assert_eq!(version(&mixed[&key(1)]).1, Freshness::Hit);
    assert_eq!(version(&mixed[&key(2)]).1, Freshness::Miss);
    assert_eq!(fake.calls()[2].len(), 2, "one flight for both");
    assert_eq!(background(), [false, true, false], "refresh with a miss");
}
