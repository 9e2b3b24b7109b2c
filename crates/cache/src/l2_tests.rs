#![allow(clippy::unwrap_used)]
use super::*;
use crate::resource::NotFound;
use devicegraph_upstream::model::CheckIn;

fn round_trip<V: Serialize + serde::de::DeserializeOwned>(value: &Cached<V>) {
    let out = RecordOut {
        ttl_ms: 60_000,
        life_ms: 3_660_000,
        fetched_ms: 1_700_000_000_123,
        value,
    };
    let bytes = serde_json::to_vec(&out).unwrap();
    let back: RecordIn<V> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((back.ttl_ms, back.life_ms), (60_000, 3_660_000));
    assert_eq!(back.fetched_ms, Some(1_700_000_000_123));
    assert_eq!(
        serde_json::to_value(&back.value).unwrap(),
        serde_json::to_value(value).unwrap()
    );
}

#[test]
fn records_round_trip_every_value_kind() {
    round_trip::<Option<Arc<devicegraph_upstream::model::DeviceDetails>>>(&Cached::Found(None));
    round_trip(&Cached::Found(Arc::new(Vec::<CheckIn>::new())));
    round_trip(&Cached::Found(Arc::new(Vec::<
        devicegraph_upstream::model::FirmwareUpgrade,
    >::new())));
    round_trip(&Cached::Found(Arc::new(Vec::<
        devicegraph_upstream::model::ProvisioningEvent,
    >::new())));
    round_trip::<Arc<Vec<CheckIn>>>(&Cached::Absent(Arc::new(NotFound {
        status: 400,
        error_code: "FOTA.DEVICE.NotFound".into(),
        error_message: "no such device".into(),
    })));
}

/// The record only grew by an optional field: this release reads the previous
/// release's records (no fetch time), and the previous release's reader (no such
/// field) reads this release's, so both share one L2 during a rolling upgrade.
#[test]
fn records_stay_readable_across_the_fetch_time_field() {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PreviousRecordIn<V> {
        ttl_ms: u64,
        life_ms: u64,
        value: Cached<V>,
    }
    let value: Cached<Arc<Vec<CheckIn>>> = Cached::Found(Arc::new(Vec::new()));
    let previous = serde_json::json!({"ttl_ms": 60_000, "life_ms": 3_660_000, "value": value});
    let read: RecordIn<Arc<Vec<CheckIn>>> = serde_json::from_value(previous).unwrap();
    assert_eq!(read.fetched_ms, None);

    let current = RecordOut {
        ttl_ms: 60_000,
        life_ms: 3_660_000,
        fetched_ms: 42,
        value: &value,
    };
    let bytes = serde_json::to_vec(&current).unwrap();
    let old: PreviousRecordIn<Arc<Vec<CheckIn>>> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(old.ttl_ms, 60_000);
}

#[test]
fn fetch_times_are_epoch_milliseconds() {
    let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(epoch_millis(t), 1_700_000_000_123);
    assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
}
