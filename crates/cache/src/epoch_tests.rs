#![allow(clippy::unwrap_used)]
use super::*;
use devicegraph_upstream::{AccountName, Imei};

fn account() -> AccountName {
    "0000123456-00001".parse().unwrap()
}

fn key(imei: &str) -> AnyKey {
    AnyKey::new::<crate::resources::CheckIns>((account(), imei.parse().unwrap()))
}

fn device_scope(imei: &str) -> InvalidateScope {
    InvalidateScope {
        account: account(),
        imei: Some(imei.parse::<Imei>().unwrap()),
        campaign: None,
    }
}

const A: &str = "490154203237518";
const B: &str = "356938035643809";

fn stored(epochs: &Epochs, flight: &FlightEpoch, imei: &str) -> bool {
    !epochs
        .store_current(flight, vec![(key(imei), ())], |_, ()| {})
        .is_empty()
}

#[test]
fn only_flights_overlapping_an_invalidation_of_their_key_are_refused() {
    let epochs = Arc::new(Epochs::default());
    let old = epochs.begin_flight();
    let running = epochs.begin_invalidation(device_scope(A));
    let during = epochs.begin_flight();
    assert!(!stored(&epochs, &old, A), "started before, stores after");
    assert!(
        !stored(&epochs, &during, A),
        "may have read the L2 before it"
    );
    assert!(stored(&epochs, &old, B), "another key is not affected");
    drop(running);
    let after = epochs.begin_flight();
    assert!(!stored(&epochs, &old, A));
    assert!(!stored(&epochs, &during, A));
    assert!(stored(&epochs, &after, A), "started once it was done");
    assert_eq!(epochs.superseded(&old, [&key(A), &key(B)]), vec![key(A)]);
    assert!(epochs.superseded(&after, [&key(A)]).is_empty());
}

#[test]
fn records_are_dropped_once_no_older_flight_lives() {
    let epochs = Arc::new(Epochs::default());
    let old = epochs.begin_flight();
    drop(epochs.begin_invalidation(device_scope(A)));
    assert_eq!(epochs.records(), 1, "the old flight still needs it");
    let newer = epochs.begin_flight();
    drop(old);
    assert_eq!(epochs.records(), 0);
    drop(newer);
    let running = epochs.begin_invalidation(device_scope(B));
    assert_eq!(epochs.records(), 1, "a running one is kept without flights");
    drop(running);
    assert_eq!(epochs.records(), 0);
}
