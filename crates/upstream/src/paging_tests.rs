//! Unit tests of the pagination bookkeeping (no network): the `lastSeenDeviceId`
//! cursor and device id order. The provisioning walk's tests are beside it, in
//! `endpoints/provisioning_tests.rs`.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn cursor_must_strictly_advance() {
    let mut c = Cursor::new(Endpoint::CampaignDevices);
    assert!(c.advance(true, Some("100"), Some("100"), 2).unwrap());
    assert_eq!(c.last_seen(), Some("100"));
    // Same cursor again.
    let e = c.advance(true, Some("100"), Some("100"), 2).unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }));

    let mut c = Cursor::new(Endpoint::CampaignDevices);
    c.advance(true, Some("500"), None, 1).unwrap();
    // Backwards would cycle.
    assert!(c.advance(true, Some("499"), None, 1).is_err());

    let mut c = Cursor::new(Endpoint::DeviceDetails);
    assert!(c.advance(true, Some("0"), None, 1).is_err());
}

#[test]
fn cursor_falls_back_to_the_last_item_and_stops_when_done() {
    let mut c = Cursor::new(Endpoint::DeviceDetails);
    assert!(c.advance(true, None, Some("990013907835573"), 1).unwrap());
    assert_eq!(c.last_seen(), Some("990013907835573"));
    assert!(!c.advance(false, None, None, 0).unwrap());
}

#[test]
fn cursor_rejects_more_data_with_no_items() {
    let mut c = Cursor::new(Endpoint::CampaignDevices);
    let e = c.advance(true, Some("5"), None, 0).unwrap_err();
    assert!(matches!(e, UpstreamError::Pagination { .. }));
}

#[test]
fn ids_compare_numerically() {
    assert_eq!(compare_ids("10", "9"), Ordering::Greater);
    assert_eq!(compare_ids("0", "0"), Ordering::Equal);
    assert_eq!(compare_ids("009", "9"), Ordering::Equal);
    assert_eq!(compare_ids("990013907835573", "0"), Ordering::Greater);
}
