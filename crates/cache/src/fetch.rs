//! The fetch functions the engine calls on a miss: one per resource, each turning the
//! upstream client's answer into per-key cache values.
//!
//! Device details are fetched as one batch per account (chunks of at most 1,000
//! IMEIs, the upstream's limit, sent concurrently; the pacer spaces them) and split
//! per IMEI: an IMEI absent from a successful answer is an unknown device, cached as
//! such for `ttl.not_found`. An error answer whose stable code says "not found"
//! (`FOTA.DEVICE.NotFound`, `REQUEST_FAILED.Account.NotFound`) is cached the same way.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use devicegraph_upstream::model::DeviceDetails;
use devicegraph_upstream::{AccountName, Client, Imei, UpstreamError};
use futures::TryStreamExt;
use futures::future::{BoxFuture, join_all};

use crate::config::Ttls;
use crate::engine::{FetchAnswers, FetchFn};
use crate::key::CacheKey;
use crate::value::{Answer, CachedValue, NotFound};

/// The upstream's limit on IMEIs per details request.
const DETAILS_CHUNK: usize = 1_000;

/// A value with its TTL, or a remembered "not found", or the error.
fn settle(
    result: Result<CachedValue, UpstreamError>,
    ttl: Duration,
    not_found_ttl: Duration,
) -> Result<Answer, UpstreamError> {
    match result {
        Ok(value) => Ok(Answer { value, ttl }),
        Err(e) => match NotFound::from_error(&e) {
            Some(nf) => Ok(Answer {
                value: CachedValue::Absent(Arc::new(nf)),
                ttl: not_found_ttl,
            }),
            None => Err(e),
        },
    }
}

/// A fetch function for resources read one key per upstream call.
fn per_key<F, Fut>(ttl: Duration, not_found_ttl: Duration, call: F) -> FetchFn
where
    F: Fn(CacheKey) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<CachedValue, UpstreamError>> + Send + 'static,
{
    let call = Arc::new(call);
    Arc::new(
        move |keys: Vec<CacheKey>| -> BoxFuture<'static, FetchAnswers> {
            let call = Arc::clone(&call);
            Box::pin(async move {
                let calls = keys.into_iter().filter_map(|key| {
                    let fut = call(key.clone())?;
                    Some(async move { (key, settle(fut.await, ttl, not_found_ttl)) })
                });
                join_all(calls).await.into_iter().collect()
            })
        },
    )
}

pub(crate) fn upgrade_history(client: Client, ttls: &Ttls) -> FetchFn {
    per_key(ttls.upgrade_history, ttls.not_found, move |key| {
        let CacheKey::UpgradeHistory { account, imei } = key else {
            return None;
        };
        let client = client.clone();
        Some(async move {
            let list = client.upgrade_history(&account, &imei).await?;
            Ok(CachedValue::Upgrades(Arc::new(list)))
        })
    })
}

pub(crate) fn check_ins(client: Client, ttls: &Ttls) -> FetchFn {
    per_key(ttls.check_ins, ttls.not_found, move |key| {
        let CacheKey::CheckIns { account, imei } = key else {
            return None;
        };
        let client = client.clone();
        Some(async move {
            let list = client.check_in_history(&account, &imei).await?;
            Ok(CachedValue::CheckIns(Arc::new(list)))
        })
    })
}

pub(crate) fn campaign_page(client: Client, ttls: &Ttls) -> FetchFn {
    per_key(ttls.campaign_devices, ttls.not_found, move |key| {
        let CacheKey::CampaignPage {
            account,
            campaign,
            cursor,
        } = key
        else {
            return None;
        };
        let client = client.clone();
        Some(async move {
            let page = client
                .campaign_devices_page(&account, &campaign, cursor.as_deref())
                .await?;
            Ok(CachedValue::CampaignPage(Arc::new(page)))
        })
    })
}

pub(crate) fn provisioning(client: Client, ttls: &Ttls) -> FetchFn {
    per_key(ttls.provisioning, ttls.not_found, move |key| {
        let CacheKey::Provisioning {
            device,
            earliest,
            latest,
        } = key
        else {
            return None;
        };
        let client = client.clone();
        Some(async move {
            let events: Vec<_> = client
                .provisioning_history(device, earliest, latest)
                .try_collect()
                .await?;
            Ok(CachedValue::Provisioning(Arc::new(events)))
        })
    })
}

pub(crate) fn device_details(client: Client, ttls: &Ttls) -> FetchFn {
    let (ttl, not_found_ttl) = (ttls.device_details, ttls.not_found);
    Arc::new(
        move |keys: Vec<CacheKey>| -> BoxFuture<'static, FetchAnswers> {
            let client = client.clone();
            Box::pin(async move {
                let mut by_account: HashMap<AccountName, Vec<Imei>> = HashMap::new();
                for key in keys {
                    if let CacheKey::DeviceDetails { account, imei } = key {
                        by_account.entry(account).or_default().push(imei);
                    }
                }
                let chunks = by_account.into_iter().flat_map(|(account, imeis)| {
                    imeis
                        .chunks(DETAILS_CHUNK)
                        .map(|chunk| (account.clone(), chunk.to_vec()))
                        .collect::<Vec<_>>()
                });
                let calls = chunks.map(|(account, imeis)| {
                    let client = client.clone();
                    async move {
                        let listed: Result<Vec<DeviceDetails>, UpstreamError> = client
                            .device_details(account.clone(), imeis.clone())
                            .try_collect()
                            .await;
                        split_details(&account, imeis, listed, ttl, not_found_ttl)
                    }
                });
                join_all(calls).await.into_iter().flatten().collect()
            })
        },
    )
}

/// One batch answer, per IMEI asked.
fn split_details(
    account: &AccountName,
    imeis: Vec<Imei>,
    listed: Result<Vec<DeviceDetails>, UpstreamError>,
    ttl: Duration,
    not_found_ttl: Duration,
) -> Vec<(CacheKey, Result<Answer, UpstreamError>)> {
    let key = |imei: Imei| CacheKey::DeviceDetails {
        account: account.clone(),
        imei,
    };
    match listed {
        Ok(list) => {
            let mut found: HashMap<String, Arc<DeviceDetails>> = list
                .into_iter()
                .map(|d| (d.device_id.trim().to_owned(), Arc::new(d)))
                .collect();
            imeis
                .into_iter()
                .map(|imei| {
                    let answer = match found.remove(imei.as_str()) {
                        Some(d) => Answer {
                            value: CachedValue::Device(Some(d)),
                            ttl,
                        },
                        None => Answer {
                            value: CachedValue::Device(None),
                            ttl: not_found_ttl,
                        },
                    };
                    (key(imei), Ok(answer))
                })
                .collect()
        }
        Err(e) => {
            let settled = settle(Err(e), ttl, not_found_ttl);
            imeis
                .into_iter()
                .map(|imei| (key(imei), settled.clone()))
                .collect()
        }
    }
}
