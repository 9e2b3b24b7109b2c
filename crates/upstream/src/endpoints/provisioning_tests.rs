//! Unit and property tests of the provisioning walk's bookkeeping (no network):
//! boundary deduplication and the pager's checks.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn event(sec: i64, kind: &str) -> ProvisioningEvent {
    ProvisioningEvent {
        occurred_at: Utc.timestamp_opt(1_450_000_000 + sec, 0).unwrap(),
        event_type: kind.to_owned(),
        status: Some("Success".into()),
        event_by: None,
        mdn: None,
        msisdn: None,
        service_plan: None,
        extended_attributes: Vec::new(),
    }
}

/// The upstream as documented: records with `occurredAt >= earliest`, oldest first,
/// at most `size` a response, `hasMoreData` when some are left.
fn upstream_page(
    all: &[ProvisioningEvent],
    earliest: DateTime<Utc>,
    size: usize,
) -> ProvisioningPage {
    let from: Vec<_> = all
        .iter()
        .filter(|e| e.occurred_at >= earliest)
        .cloned()
        .collect();
    ProvisioningPage {
        has_more_data: from.len() > size,
        events: from.into_iter().take(size).collect(),
    }
}

/// Drives a [`ProvisioningPager`] against [`upstream_page`] the way the stream does.
fn walk(all: &[ProvisioningEvent], size: usize) -> Result<Vec<ProvisioningEvent>, UpstreamError> {
    let start = Utc.timestamp_opt(0, 0).unwrap();
    let mut pager = ProvisioningPager::new(start);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let (fresh, more) = pager.accept(upstream_page(all, pager.earliest(), size))?;
        out.extend(fresh);
        if !more {
            return Ok(out);
        }
    }
    panic!("pager did not finish");
}

#[test]
fn distinct_events_sharing_the_boundary_timestamp_are_kept() {
    // Page size 4: page 1 = [a@1, z@1, b@2, c@2]; page 2 from 2 = [b@2, c@2, d@2, e@3]
    // must drop b and c but keep d, which shares their timestamp.
    let all = vec![
        event(1, "a"),
        event(1, "z"),
        event(2, "b"),
        event(2, "c"),
        event(2, "d"),
        event(3, "e"),
    ];
    assert_eq!(walk(&all, 4).unwrap(), all);
}

#[test]
fn identical_records_count_as_a_multiset() {
    // The upstream can only page past a run of equal timestamps shorter than a
    // page, hence sizes from 4 for this run of 3.
    let all = vec![
        event(1, "a"),
        event(1, "b"),
        event(2, "x"),
        event(2, "x"),
        event(2, "x"),
        event(3, "c"),
    ];
    for size in 4..=7 {
        assert_eq!(walk(&all, size).unwrap(), all, "page size {size}");
    }
}

#[test]
fn repeats_in_another_order_are_still_dropped() {
    let mut dedup = BoundaryDedup::default();
    let first = dedup.accept(vec![event(1, "a"), event(2, "b"), event(2, "c")]);
    assert_eq!(first.len(), 3);
    let second = dedup.accept(vec![
        event(2, "c"),
        event(2, "d"),
        event(2, "b"),
        event(3, "e"),
    ]);
    assert_eq!(second, vec![event(2, "d"), event(3, "e")]);
}

#[test]
fn only_boundary_records_are_dropped() {
    // An event equal to one received earlier but not at the boundary is kept.
    let mut dedup = BoundaryDedup::default();
    dedup.accept(vec![event(1, "a"), event(2, "b")]);
    let second = dedup.accept(vec![event(2, "b"), event(1, "a")]);
    assert_eq!(second, vec![event(1, "a")]);
}

#[test]
fn a_page_that_does_not_advance_is_an_error() {
    let start = Utc.timestamp_opt(0, 0).unwrap();
    let mut pager = ProvisioningPager::new(start);
    let page = ProvisioningPage {
        events: vec![event(1, "a"), event(1, "b")],
        has_more_data: true,
    };
    let (fresh, more) = pager.accept(page.clone()).unwrap();
    assert_eq!((fresh.len(), more), (2, true));
    // The same page again: nothing new, earliest does not move.
    let e = pager.accept(page).unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }), "{e:?}");
}

#[test]
fn more_data_with_an_empty_page_is_an_error() {
    let mut pager = ProvisioningPager::new(Utc.timestamp_opt(0, 0).unwrap());
    let e = pager
        .accept(ProvisioningPage {
            events: vec![],
            has_more_data: true,
        })
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }));
}

#[test]
fn a_page_going_back_in_time_is_an_error() {
    let mut pager = ProvisioningPager::new(Utc.timestamp_opt(1_450_000_010, 0).unwrap());
    let e = pager
        .accept(ProvisioningPage {
            events: vec![event(1, "a")],
            has_more_data: true,
        })
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }));
}

#[test]
fn more_identical_records_than_a_page_end_in_an_error_not_a_loop() {
    let all: Vec<_> = (0..7).map(|_| event(5, "same")).collect();
    let e = walk(&all, 3).unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }));
}

fn arb_history() -> impl Strategy<Value = Vec<ProvisioningEvent>> {
    // Few distinct timestamps and event kinds: many records share a timestamp (so
    // page boundaries fall inside runs) and many are identical (multiset case).
    prop::collection::vec((0i64..25, 0usize..4), 0..1_600).prop_map(|mut raw| {
        raw.sort_by_key(|(t, _)| *t);
        raw.into_iter()
            .map(|(t, k)| event(t, ["Activate", "Suspend", "Restore", "Deactivate"][k]))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn paged_walk_reassembles_the_history_exactly(all in arb_history()) {
        // 1,600 records over 25 timestamps: no timestamp can hold 500 records
        // in practice, so the walk is always possible.
        let mut per_ts = HashMap::new();
        for e in &all {
            *per_ts.entry(e.occurred_at).or_insert(0usize) += 1;
        }
        prop_assume!(per_ts.values().all(|n| *n < 500));
        prop_assert_eq!(walk(&all, 500).unwrap(), all.clone());
        // Small pages put many more boundaries inside runs.
        let max_run = per_ts.values().copied().max().unwrap_or(0);
        let size = (max_run + 1).max(2);
        prop_assert_eq!(walk(&all, size).unwrap(), all);
    }
}
