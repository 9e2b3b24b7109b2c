//! Same seed, same fleet: catalog and records are identical across simulators.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, Session, start};
use devicegraph_sim::SimConfig;
use serde_json::{Value, json};

async fn snapshot(config: SimConfig) -> (Value, Vec<Value>) {
    let sim = start(config).await;
    let catalog = sim.catalog();
    let s = Session::open(&sim).await;
    let mut answers = Vec::new();
    for imei in catalog.sample_imeis[ACCOUNT].iter().take(4) {
        answers.push(
            s.get_json(&format!("/fota/v3/reports/{ACCOUNT}/devices/{imei}"))
                .await
                .1,
        );
        answers.push(
            s.get_json(&format!(
                "/fota/v2/logging/{ACCOUNT}/devices/{imei}/checkInHistory"
            ))
            .await
            .1,
        );
        let w = &catalog.provisioning_window;
        let body = json!({ "deviceId": { "kind": "imei", "id": imei }, "earliest": w.earliest, "latest": w.latest });
        answers.push(
            s.post_json("/m2m/v1/devices/history/actions/list", &body)
                .await
                .1,
        );
    }
    let imeis = &catalog.sample_imeis[ACCOUNT];
    answers.push(
        s.post_json(
            &format!("/fota/v3/devices/{ACCOUNT}"),
            &json!({ "deviceList": imeis }),
        )
        .await
        .1,
    );
    let c = &catalog.campaigns[0];
    answers.push(
        s.get_json(&format!(
            "/fota/v3/reports/{}/campaigns/{}/devices",
            c.account, c.id
        ))
        .await
        .1,
    );
    (serde_json::to_value(&catalog).unwrap(), answers)
}

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() {
    let a = snapshot(SimConfig {
        seed: 7,
        devices: 20_000,
        ..SimConfig::default()
    })
    .await;
    let b = snapshot(SimConfig {
        seed: 7,
        devices: 20_000,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(a, b);
    let c = snapshot(SimConfig {
        seed: 8,
        devices: 20_000,
        ..SimConfig::default()
    })
    .await;
    assert_ne!(a.0, c.0);
    assert!(
        c.0["accounts"]
            .as_array()
            .unwrap()
            .contains(&json!(ACCOUNT))
    );
}

#[tokio::test]
async fn big_fleet_has_a_huge_campaign_and_quirky_records() {
    let sim = start(SimConfig {
        devices: 1_000_000,
        ..SimConfig::default()
    })
    .await;
    let catalog = sim.catalog();
    assert_eq!(catalog.devices, 1_000_000);
    assert!(catalog.campaigns.iter().any(|c| c.devices >= 200_000));
    assert!(catalog.accounts.len() >= 3);
    assert!(catalog.accounts.iter().all(|a| a.starts_with("0000")));

    // Across many devices, every documented wire variant shows up.
    let s = Session::open(&sim).await;
    let campaign = catalog.campaigns.iter().max_by_key(|c| c.devices).unwrap();
    let (_, page) = s
        .get_json(&format!(
            "/fota/v3/reports/{}/campaigns/{}/devices",
            campaign.account, campaign.id
        ))
        .await;
    let imeis: Vec<Value> = page["deviceList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].clone())
        .collect();
    let (_, details) = s
        .post_json(
            &format!("/fota/v3/devices/{}", campaign.account),
            &json!({ "deviceList": imeis }),
        )
        .await;
    let text = details.to_string();
    for needle in [
        "\"fileList\"",
        "\"filesList\"",
        "\"updateTime\"",
        "\"upgradeTime\"",
        "\"N/A\"",
        " +0000 UTC\"",
    ] {
        assert!(text.contains(needle), "details lack {needle}");
    }
    let mut histories = String::new();
    let mut check_ins = String::new();
    for imei in imeis.iter().take(150) {
        let imei = imei.as_str().unwrap();
        histories.push_str(
            &s.get_json(&format!(
                "/fota/v3/reports/{}/devices/{imei}",
                campaign.account
            ))
            .await
            .1
            .to_string(),
        );
        check_ins.push_str(
            &s.get_json(&format!(
                "/fota/v2/logging/{}/devices/{imei}/checkInHistory",
                campaign.account
            ))
            .await
            .1
            .to_string(),
        );
    }
    for needle in [
        "\"id\"",
        "\"campaignId\"",
        "\"startDate\":\"20",
        "UpgradeSuccess",
        "UpgradeFailed",
        "DeviceRejected",
        "UpgradePending",
        "upgradeFailure",
    ] {
        assert!(histories.contains(needle), "histories lack {needle}");
    }
    for needle in [
        "\"result\":\"1\"",
        "\"result\":1",
        "\"result\":\"Succeeded\"",
        "Z\"",
    ] {
        assert!(check_ins.contains(needle), "check-ins lack {needle}");
    }
}
