//! One file per ThingSpace data endpoint, each holding everything about it: the
//! public model of its answer, its wire parser, its `Client` request method(s)
//! and, when it pages, its stream.
//!
//! | file | request | paging |
//! | --- | --- | --- |
//! | [`device_details`] | `POST /fota/v3/devices/{acc}` | `lastSeenDeviceId`; at most 1,000 IMEIs a request, so a batch is chunked |
//! | [`upgrade_history`] | `GET /fota/v3/reports/{acc}/devices/{imei}` | none |
//! | [`check_ins`] | `GET /fota/v2/logging/{acc}/devices/{imei}/checkInHistory` | none |
//! | [`campaign_devices`] | `GET /fota/v3/reports/{acc}/campaigns/{id}/devices` | `lastSeenDeviceId`, 1,000 devices a page |
//! | [`provisioning`] | `POST /m2m/v1/devices/history/actions/list` | HTTP 202 = more, next `earliest` = last record's time, 500 records a page |
//! | [`account_devices`] | `GET /fota/v3/devices/{acc}` | `lastSeenDeviceId`, 1,000 devices a page; `protocol` filtered upstream |
//!
//! Each parser maps one located JSON value to a public model; the wire names
//! (documented name first, then its variants) are written next to the model field
//! they fill.
//!
//! What they share lives beside them: the client plumbing (`call`, `get`, `post`,
//! `json_body`, `decode`) in `client`, the cursor walk and its checks in `paging`,
//! the lenient JSON accessors in `decode`. The public paths of their items are
//! `model::*`, `wire::parse_*` and the `Client` methods: only `lib.rs`, `model` and
//! `wire` name `endpoints`, to re-export.

pub(crate) mod account_devices;
pub(crate) mod campaign_devices;
pub(crate) mod check_ins;
pub(crate) mod device_details;
pub(crate) mod provisioning;
pub(crate) mod upgrade_history;
