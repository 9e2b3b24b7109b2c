//! Keys of every resource: which invalidation scopes reach them, and where their L2
//! copies live.
#![allow(clippy::unwrap_used)]

use chrono::DateTime;
use devicegraph_upstream::{AccountName, CampaignId, DeviceIdKind, DeviceIdentifier, Imei};

use super::*;
use crate::key::AnyKey;
use crate::scope::InvalidateScope;

fn account(s: &str) -> AccountName {
    s.parse().unwrap()
}

fn valid_imei(body: &str) -> String {
    format!(
        "{body}{}",
        devicegraph_upstream::ids::luhn_check_digit(body)
    )
}

#[test]
fn tags_are_two_characters_and_unique() {
    let mut tags: Vec<&str> = ALL.iter().map(|r| r.info.tag).collect();
    assert!(tags.iter().all(|t| t.len() == 2), "{tags:?}");
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), ALL.len());
}

#[test]
fn keys_of_two_resources_never_collide() {
    let acc = account("0000123456-00001");
    let a: Imei = valid_imei("99001390783557").parse().unwrap();
    let details = AnyKey::new::<Details>((acc.clone(), a.clone()));
    let check_ins = AnyKey::new::<CheckIns>((acc.clone(), a.clone()));
    assert_ne!(details, check_ins, "same key type, different resources");
    assert_eq!(details, AnyKey::new::<Details>((acc, a)));
    assert!(details.get::<Details>().is_some());
    assert!(details.get::<CheckIns>().is_none());
}

#[test]
fn scope_selects_account_device_and_campaign_entries() {
    let acc = account("0000123456-00001");
    let other = account("0000999999-00001");
    let a: Imei = valid_imei("99001390783557").parse().unwrap();
    let b: Imei = valid_imei("49015420323751").parse().unwrap();
    let camp: CampaignId = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9".parse().unwrap();
    let keys = [
        AnyKey::new::<Details>((acc.clone(), a.clone())),
        AnyKey::new::<CheckIns>((acc.clone(), a.clone())),
        AnyKey::new::<UpgradeHistory>((acc.clone(), b.clone())),
        AnyKey::new::<CampaignPages>(CampaignPageKey::new(&acc, &camp, None)),
        AnyKey::new::<Details>((other.clone(), a.clone())),
        AnyKey::new::<Provisioning>(ProvisioningKey {
            device: DeviceIdentifier::new(DeviceIdKind::Imei, a.as_str()).unwrap(),
            earliest: DateTime::UNIX_EPOCH,
            latest: DateTime::UNIX_EPOCH,
        }),
    ];
    let count = |scope: &InvalidateScope| keys.iter().filter(|k| k.in_scope(scope)).count();
    let whole = InvalidateScope {
        account: acc.clone(),
        imei: None,
        campaign: None,
    };
    assert_eq!(count(&whole), 4);
    let device = InvalidateScope {
        account: acc.clone(),
        imei: Some(a),
        campaign: None,
    };
    assert_eq!(
        count(&device),
        3,
        "details + check-ins + provisioning of that IMEI"
    );
    let campaign = InvalidateScope {
        account: acc,
        imei: None,
        campaign: Some(camp),
    };
    assert_eq!(count(&campaign), 1);
}

#[test]
fn redis_keys_fall_under_their_scope_patterns() {
    let acc = account("0000123456-00001");
    let a: Imei = valid_imei("99001390783557").parse().unwrap();
    let key = AnyKey::new::<CheckIns>((acc.clone(), a.clone()));
    assert_eq!(
        key.redis_key("p"),
        format!("p:v2:a:0000123456-00001:ci:{a}")
    );
    let scope = InvalidateScope {
        account: acc.clone(),
        imei: Some(a.clone()),
        campaign: None,
    };
    assert!(redis_scope_patterns("p", &scope).contains(&key.redis_key("p")));
    let camp: CampaignId = "f841e14a-7c9f-11ec-b56c-76bbdf26f3b9".parse().unwrap();
    let page = AnyKey::new::<CampaignPages>(CampaignPageKey::new(&acc, &camp, Some("0")));
    assert_eq!(
        page.redis_key("p"),
        "p:v2:a:0000123456-00001:cp:f841e14a-7c9f-11ec-b56c-76bbdf26f3b9:0"
    );
    let window = AnyKey::new::<Provisioning>(ProvisioningKey {
        device: DeviceIdentifier::new(DeviceIdKind::Imei, a.as_str()).unwrap(),
        earliest: DateTime::UNIX_EPOCH,
        latest: DateTime::UNIX_EPOCH,
    });
    assert_eq!(
        window.redis_key("p"),
        format!("p:v2:d:imei:{a}:pv:1970-01-01T00:00:00.000Z:1970-01-01T00:00:00.000Z")
    );
    assert!(redis_scope_patterns("p", &scope).contains(&format!("p:v2:d:imei:{a}:*")));
}

#[test]
fn a_resource_key_finds_its_any_key_and_no_other() {
    use std::hash::BuildHasher;

    use equivalent::Equivalent;

    use crate::key::KeyRef;

    let acc = account("0000123456-00001");
    let a: Imei = valid_imei("99001390783557").parse().unwrap();
    let stored = AnyKey::new::<Details>((acc.clone(), a.clone()));
    let own = (acc.clone(), a.clone());
    let lookup = KeyRef::<Details>(&own);
    let hasher = std::collections::hash_map::RandomState::new();
    assert_eq!(hasher.hash_one(&stored), hasher.hash_one(&lookup));
    assert!(lookup.equivalent(&stored));
    let other = KeyRef::<CheckIns>(&own);
    assert!(!other.equivalent(&stored), "same key, another resource");
}

#[test]
fn account_pages_belong_to_the_account_alone() {
    let acc = account("0000123456-00001");
    let a: Imei = valid_imei("99001390783557").parse().unwrap();
    let lwm2m: devicegraph_upstream::Protocol = "lwm2m".parse().unwrap();
    let all = AnyKey::new::<AccountPages>(AccountPageKey::new(&acc, None, Some("0")));
    let after =
        AnyKey::new::<AccountPages>(AccountPageKey::new(&acc, Some(&lwm2m), Some(a.as_str())));
    assert_eq!(all.redis_key("p"), "p:v2:a:0000123456-00001:ad:-:0");
    assert_eq!(
        after.redis_key("p"),
        format!("p:v2:a:0000123456-00001:ad:LWM2M:{a}")
    );
    let whole = InvalidateScope {
        account: acc.clone(),
        imei: None,
        campaign: None,
    };
    let device = InvalidateScope {
        account: acc.clone(),
        imei: Some(a),
        campaign: None,
    };
    let other = InvalidateScope {
        account: account("0000999999-00001"),
        imei: None,
        campaign: None,
    };
    for key in [&all, &after] {
        assert!(key.in_scope(&whole));
        assert!(!key.in_scope(&device) && !key.in_scope(&other));
        let patterns = redis_scope_patterns("p", &whole);
        assert!(patterns.iter().any(|p| p == "p:v2:a:0000123456-00001:*"));
        assert!(
            redis_scope_patterns("p", &device)
                .iter()
                .all(|p| !p.contains(":ad:"))
        );
    }
}

#[test]
fn every_resource_has_a_ttl_key() {
    let ttls = Ttls::default();
    let names: Vec<&str> = ttls.names().collect();
    assert!(names.contains(&"account_devices"), "{names:?}");
    assert_eq!(
        ttls.get("account_devices"),
        Some(std::time::Duration::from_secs(300))
    );
}
