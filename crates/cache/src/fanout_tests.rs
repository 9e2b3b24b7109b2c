#![allow(clippy::unwrap_used)]
use super::*;
use crate::clock::TokioClock;
use crate::freshness::Windows;
use crate::resource::Cached;
use crate::resources::CheckIns;
use crate::value::Answer;
use devicegraph_upstream::model::CheckIn;

const IMEI: &str = "490154203237518";

fn engine() -> Engine {
    let windows = Windows {
        stale_while_revalidate: Duration::from_secs(30),
        stale_if_error: Duration::from_secs(60),
    };
    Engine::new(1 << 20, windows, Arc::new(TokioClock), None, None)
}

fn key() -> (
    devicegraph_upstream::AccountName,
    devicegraph_upstream::Imei,
) {
    ("0000123456-00001".parse().unwrap(), IMEI.parse().unwrap())
}

fn answer() -> Answer<Arc<Vec<CheckIn>>> {
    Answer {
        value: Cached::Found(Arc::new(Vec::new())),
        ttl: Duration::from_secs(60),
    }
}

fn payload(origin: &str, imei: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "v": 1, "origin": origin, "account": "0000123456-00001", "imei": imei,
    }))
    .unwrap()
}

#[tokio::test]
async fn malformed_payloads_are_ignored_and_a_good_one_is_applied() {
    let engine = engine();
    engine.insert::<CheckIns>(key(), answer());
    let bad: [&[u8]; 5] = [
        b"",
        b"not json",
        b"{\"v\":1}",
        br#"{"v":2,"origin":"other","account":"0000123456-00001"}"#,
        &payload("other", "not-an-imei"),
    ];
    for body in bad {
        assert_eq!(apply(&engine, body, "me"), 0);
    }
    assert_eq!(apply(&engine, &payload("me", IMEI), "me"), 0, "own echo");
    assert_eq!(engine.entry_count(), 1, "nothing dropped so far");
    assert_eq!(apply(&engine, &payload("other", IMEI), "me"), 1);
    assert_eq!(engine.entry_count(), 0);
}

fn cursor(id: &str, seq: u64) -> Cursor {
    Cursor {
        id: id.to_owned(),
        seq,
    }
}

#[test]
fn a_first_connection_clears_and_starts_at_the_head() {
    assert_eq!(
        on_connect(None, Some("5-0"), 7),
        Catch::Clear(cursor("5-0", 7))
    );
    assert_eq!(on_connect(None, None, 0), Catch::Clear(cursor("0-0", 0)));
}

#[test]
fn a_reconnection_reads_on_unless_the_log_was_lost() {
    let at = cursor("5-0", 7);
    // Nothing appended meanwhile, or appended and still there: read on.
    assert_eq!(
        on_connect(Some(&at), Some("5-0"), 7),
        Catch::ReadOn(at.clone())
    );
    // (Whether trimming took some of those, the first entry's number tells.)
    assert_eq!(
        on_connect(Some(&at), Some("9-0"), 12),
        Catch::ReadOn(at.clone())
    );
    // Counter went back (flushed), or appended but the stream is gone.
    assert_eq!(
        on_connect(Some(&at), Some("9-0"), 2),
        Catch::Clear(cursor("9-0", 2))
    );
    assert_eq!(
        on_connect(Some(&at), None, 0),
        Catch::Clear(cursor("0-0", 0))
    );
    assert_eq!(
        on_connect(Some(&at), None, 9),
        Catch::Clear(cursor("0-0", 9))
    );
    // Stream deleted but nothing appended since we read: nothing missed.
    assert_eq!(on_connect(Some(&at), None, 7), Catch::ReadOn(at));
}

#[test]
fn only_the_next_number_follows() {
    let at = cursor("5-0", 7);
    assert!(follows(&at, 8));
    assert!(!follows(&at, 7));
    assert!(!follows(&at, 9));
    assert!(!follows(&at, 1));
    assert!(!follows(&cursor("1-0", u64::MAX), 0));
}

#[test]
fn listener_names_are_client_name_safe() {
    let keys = Keys::new("dg test\n:x");
    assert_eq!(keys.stream, "dg test\n:x:invalidations");
    assert_eq!(keys.seq, "dg test\n:x:invalidations:seq");
    assert_eq!(keys.listener_name, "devicegraph-invalidations:dg_test_:x");
}

#[test]
fn a_published_message_decodes_to_its_scope() {
    let message = Message {
        v: VERSION,
        origin: "a".into(),
        account: "0000123456-00001".parse().unwrap(),
        imei: Some(IMEI.parse().unwrap()),
        campaign: None,
    };
    let body = serde_json::to_vec(&message).unwrap();
    let scope = decode(&body, "b").unwrap();
    assert_eq!(scope.account.as_str(), "0000123456-00001");
    assert_eq!(scope.imei.unwrap().as_str(), IMEI);
    assert!(scope.campaign.is_none());
    assert!(decode(&body, "a").is_none());
    assert_ne!(new_origin(), new_origin());
}
