#![allow(clippy::unwrap_used)]
use super::*;
use crate::resource::NotFound;
use devicegraph_upstream::model::CheckIn;

fn round_trip<V: Serialize + serde::de::DeserializeOwned>(value: &Cached<V>) {
    let out = RecordOut {
        ttl_ms: 60_000,
        life_ms: 3_660_000,
        value,
    };
    let bytes = serde_json::to_vec(&out).unwrap();
    let back: RecordIn<V> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((back.ttl_ms, back.life_ms), (60_000, 3_660_000));
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
