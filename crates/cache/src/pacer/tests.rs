//! Pacer tests on tokio's paused clock: budget waits and exhaustion, the concurrency
//! ceiling, 429 pauses, and the limits holding under 1,000 concurrent callers.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::{Duration, Instant, advance, sleep};

use super::*;

fn pacer(rate: u32, burst: u32, concurrency: usize) -> Arc<Pacer> {
    let config = StoreConfig {
        rate_per_second: rate,
        burst,
        max_concurrency: concurrency,
        ..StoreConfig::default()
    };
    Arc::new(Pacer::new(&config, "http://upstream/api").unwrap())
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

const E: Endpoint = Endpoint::DeviceDetails;

#[tokio::test(start_paused = true)]
async fn waits_for_budget_then_goes() {
    let p = pacer(5, 5, 10);
    let t0 = Instant::now();
    for _ in 0..5 {
        drop(p.acquire(E, far()).await.unwrap());
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "the burst goes at once");
    drop(p.acquire(E, far()).await.unwrap());
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "the sixth waits for the window: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn fails_fast_when_the_budget_cannot_be_had_before_the_deadline() {
    let p = pacer(1, 1, 10);
    drop(p.acquire(E, far()).await.unwrap());
    let t0 = Instant::now();
    let Err(e) = p
        .acquire(E, Instant::now() + Duration::from_millis(100))
        .await
    else {
        panic!("should be exhausted")
    };
    assert_eq!(t0.elapsed(), Duration::ZERO, "no pointless wait");
    assert_eq!(
        e,
        UpstreamError::Unavailable {
            endpoint: E,
            reason: BUDGET_EXHAUSTED_REASON.to_owned(),
            status: None,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_ceiling_holds_slots_until_the_permit_drops() {
    let p = pacer(100, 100, 2);
    let a = p.acquire(E, far()).await.unwrap();
    let _b = p.acquire(E, far()).await.unwrap();
    let third = tokio::spawn({
        let p = Arc::clone(&p);
        async move { p.acquire(E, far()).await.map(drop).is_ok() }
    });
    sleep(Duration::from_secs(5)).await;
    assert!(!third.is_finished(), "no third slot while two are held");
    drop(a);
    assert!(third.await.unwrap());

    let _c = p.acquire(E, far()).await.unwrap();
    let t0 = Instant::now();
    let err = p
        .acquire(E, Instant::now() + Duration::from_millis(50))
        .await
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(50),
        "waited for a slot until the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_only_that_endpoint() {
    let p = pacer(100, 100, 10);
    p.rate_limited(E, Duration::from_secs(5));
    assert!(p.is_paused(E));
    let t0 = Instant::now();
    let err = p
        .acquire(E, Instant::now() + Duration::from_secs(1))
        .await
        .map(drop)
        .unwrap_err();
    assert!(matches!(
        err,
        UpstreamError::RateLimited {
            endpoint: E,
            retry_after: Some(_)
        }
    ));
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "a pause past the deadline fails at once"
    );

    drop(p.acquire(Endpoint::CheckInHistory, far()).await.unwrap());
    assert_eq!(t0.elapsed(), Duration::ZERO, "other endpoints go on");

    drop(p.acquire(E, far()).await.unwrap());
    assert!(t0.elapsed() >= Duration::from_secs(5));
    assert!(!p.is_paused(E));
}

#[tokio::test(start_paused = true)]
async fn a_silly_retry_after_is_capped() {
    let p = pacer(100, 100, 10);
    p.rate_limited(E, Duration::from_secs(86_400));
    advance(MAX_PAUSE + Duration::from_secs(1)).await;
    assert!(!p.is_paused(E));
}

/// 1,000 callers at once against rate 20/s (burst 20) and 4 slots, each request
/// taking 30 ms: at no point more than 4 in flight or more than 20 in one second,
/// and the callers the budget cannot serve before their 3 s deadline fail fast.
#[tokio::test(start_paused = true)]
async fn limits_hold_under_a_thousand_concurrent_callers() {
    let p = pacer(20, 20, 4);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let sends = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let deadline = Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (p, in_flight, peak, sends) = (
                Arc::clone(&p),
                Arc::clone(&in_flight),
                Arc::clone(&peak),
                Arc::clone(&sends),
            );
            tokio::spawn(async move {
                let permit = p.acquire(E, deadline).await?;
                sends.lock().unwrap().push(Instant::now());
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                sleep(Duration::from_millis(30)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
                Ok::<_, UpstreamError>(())
            })
        })
        .collect();
    let mut ok = 0;
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(UpstreamError::Unavailable { .. }) => exhausted += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let mut sends = sends.lock().unwrap().clone();
    sends.sort();
    let peak_rate = (0..sends.len())
        .map(|i| {
            sends[i..]
                .iter()
                .take_while(|t| t.duration_since(sends[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(peak.load(Ordering::SeqCst) <= 4);
    assert!(peak_rate <= 20, "peak {peak_rate} per second");
    assert!((40..=60).contains(&ok), "about 3 s of budget: {ok}");
    assert_eq!(ok + exhausted, 1000);
}

/// Real time (a real, refused connection): with Redis unreachable, publishing and
/// checking pauses fall back to the local pause and never fail a call.
#[tokio::test]
async fn an_unreachable_redis_leaves_pauses_local_and_calls_working() {
    let config = StoreConfig {
        // Port 1 on loopback: nothing listens there.
        redis_url: Some("redis://127.0.0.1:1/".to_owned()),
        ..StoreConfig::default()
    };
    let p = Pacer::new(&config, "http://upstream/api").unwrap();
    let t0 = Instant::now();
    drop(p.acquire(E, far()).await.unwrap());
    p.rate_limited(E, Duration::from_millis(200));
    drop(p.acquire(Endpoint::CheckInHistory, far()).await.unwrap());
    drop(p.acquire(E, far()).await.unwrap());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "waited out the local pause only: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tenants_single_call_does_not_wait_behind_anothers_fan_out() {
    // 10 calls a second, one at a time: tenant "a" queues 100 calls (10 s of budget),
    // then tenant "b" asks for one.
    let p = pacer(10, 1, 64);
    let mut fan_out = Vec::new();
    for _ in 0..100 {
        let p = Arc::clone(&p);
        fan_out.push(tokio::spawn(devicegraph_upstream::with_tenant(
            Arc::from("key:a"),
            async move { drop(p.acquire(E, far()).await.unwrap()) },
        )));
    }
    sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    let p_b = Arc::clone(&p);
    devicegraph_upstream::with_tenant(Arc::from("key:b"), async move {
        drop(p_b.acquire(E, far()).await.unwrap());
    })
    .await;
    let waited = t0.elapsed();
    // FIFO made it wait for a's 100 calls (about 10 s of the paused clock); in turn
    // it waits about one grant for a slot and one for the budget (450 ms here).
    assert!(waited <= Duration::from_secs(1), "b waited {waited:?}");
    for task in fan_out {
        task.await.unwrap();
    }
}
