//! Shared helpers for the simulator's black-box tests: start a simulator on port 0 and
//! talk to it over real HTTP with reqwest, as any client would.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use devicegraph_sim::{RunningSim, SimConfig};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

pub(crate) const ACCOUNT: &str = "0000123456-00001";

pub(crate) async fn start(config: SimConfig) -> RunningSim {
    devicegraph_sim::spawn_on(config, "127.0.0.1:0")
        .await
        .unwrap()
}

pub(crate) fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// An authenticated ThingSpace session against one simulator.
pub(crate) struct Session {
    pub(crate) http: Client,
    pub(crate) base: String,
    pub(crate) root: String,
    pub(crate) bearer: String,
    pub(crate) session: String,
}

pub(crate) async fn token(http: &Client, base: &str, id: &str, secret: &str) -> Response {
    http.post(format!("{base}/ts/v1/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn login(
    http: &Client,
    base: &str,
    bearer: &str,
    user: &str,
    password: &str,
) -> Response {
    http.post(format!("{base}/m2m/v1/session/login"))
        .bearer_auth(bearer)
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
}

impl Session {
    pub(crate) async fn open(sim: &RunningSim) -> Self {
        Self::open_with(sim, http()).await
    }

    pub(crate) async fn open_with(sim: &RunningSim, http: Client) -> Self {
        let base = sim.base_url();
        let t: Value = token(&http, &base, "sim-client", "sim-secret")
            .await
            .json()
            .await
            .unwrap();
        let bearer = t["access_token"].as_str().unwrap().to_string();
        let s: Value = login(&http, &base, &bearer, "sim-user", "sim-password")
            .await
            .json()
            .await
            .unwrap();
        let session = s["sessionToken"].as_str().unwrap().to_string();
        Self {
            http,
            base,
            root: sim.root_url(),
            bearer,
            session,
        }
    }

    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .header("VZ-M2M-Token", &self.session)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .header("VZ-M2M-Token", &self.session)
            .json(body)
    }

    pub(crate) async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self.post(path, body).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    pub(crate) async fn control(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_sim/{path}", self.root);
        let r = match body {
            Some(b) => self.http.post(url).json(&b).send().await.unwrap(),
            None => self.http.get(url).send().await.unwrap(),
        };
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// Every device of a campaign, following `lastSeenDeviceId`; also returns the pages.
    pub(crate) async fn campaign_pages(&self, account: &str, campaign: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let (status, page) = self
                .get_json(&format!("/fota/v3/reports/{account}/campaigns/{campaign}/devices?lastSeenDeviceId={cursor}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let more = page["hasMoreData"].as_bool().unwrap();
            cursor = page["lastSeenDeviceId"].as_str().unwrap().to_string();
            pages.push(page);
            if !more {
                return pages;
            }
            assert!(pages.len() < 1_000, "campaign paging does not end");
        }
    }

    /// Provisioning pages for `imei` in a window, following the 202 protocol.
    pub(crate) async fn provisioning_pages(
        &self,
        imei: &str,
        earliest: &str,
        latest: &str,
    ) -> Vec<(StatusCode, Value)> {
        let mut pages = Vec::new();
        let mut earliest = earliest.to_string();
        loop {
            let body = json!({ "deviceId": { "kind": "imei", "id": imei }, "earliest": earliest, "latest": latest });
            let (status, page) = self
                .post_json("/m2m/v1/devices/history/actions/list", &body)
                .await;
            let more = page["hasMoreData"].as_bool().unwrap();
            if more {
                let last = page["provisioningHistory"]
                    .as_array()
                    .unwrap()
                    .last()
                    .unwrap();
                earliest = last["occurredAt"].as_str().unwrap().to_string();
            }
            pages.push((status, page));
            if !more {
                return pages;
            }
            assert!(pages.len() < 100, "provisioning paging does not end");
        }
    }
}

/// 15 digits with a valid Luhn check digit.
pub(crate) fn luhn_imei(s: &str) -> bool {
    s.len() == 15
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum::<u32>()
            % 10
            == 0
}
