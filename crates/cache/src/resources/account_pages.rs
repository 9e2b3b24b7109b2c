//! Account device list pages: `GET /fota/v3/devices/{acc}?protocol=`, cached per
//! upstream page, keyed by the protocol filter and the `lastSeenDeviceId` the page was
//! asked with (like campaign pages), so clients paging through an account with any
//! page size share entries. A page carries every device's details; whoever read it
//! from the upstream may hand them to the `Details` entries
//! (`Store::get_many_known`), so listing an account also fills the details cache.
//!
//! Owned by the account: only a whole-account invalidation drops the pages (a
//! device's own invalidation drops its details entry, which is where the list's
//! readers take a device's details from).

use std::borrow::Cow;
use std::sync::Arc;

use devicegraph_upstream::model::AccountDevicesPage;
use devicegraph_upstream::{AccountName, Client, Endpoint, Protocol};
use futures::future::BoxFuture;

use crate::resource::{Fetches, Info, OwnedBy, Owner, Resource, ResourceKey, per_key};
use crate::weigh::{HeapSize, alloc, heap_size_of_fields};

/// One upstream page of an account's device list.
#[derive(Debug)]
pub struct AccountPages;

/// A page of an account's device list, by protocol filter and upstream cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountPageKey {
    account: AccountName,
    /// `None` = every protocol.
    protocol: Option<Protocol>,
    /// `None` = the first page.
    cursor: Option<String>,
}

impl AccountPageKey {
    /// The page after `last_seen` (`None`, `""` and `"0"` all mean the first page, as
    /// for campaign pages) of `protocol`'s devices (`None`: all).
    pub fn new(
        account: &AccountName,
        protocol: Option<&Protocol>,
        last_seen: Option<&str>,
    ) -> Self {
        Self {
            account: account.clone(),
            protocol: protocol.cloned(),
            cursor: last_seen
                .filter(|c| !c.is_empty() && *c != "0")
                .map(str::to_owned),
        }
    }

    pub fn account(&self) -> &AccountName {
        &self.account
    }

    pub fn protocol(&self) -> Option<&Protocol> {
        self.protocol.as_ref()
    }

    /// The upstream cursor (`None` = the first page).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

impl ResourceKey for AccountPageKey {
    const OWNED_BY: OwnedBy = OwnedBy::Account;

    fn owner(&self) -> Owner<'_> {
        Owner::Account {
            account: &self.account,
        }
    }

    /// `{protocol}:{cursor}`, `-` for every protocol and `0` for the first page
    /// (protocols are letters, digits and `_`, cursors digits: no glob characters).
    fn part(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(format!(
            "{}:{}",
            self.protocol.as_ref().map_or("-", Protocol::as_str),
            self.cursor.as_deref().unwrap_or("0")
        )))
    }

    fn part_heap(&self) -> usize {
        self.cursor.heap_size() + self.protocol.heap_size()
    }
}

impl HeapSize for Protocol {
    fn heap_size(&self) -> usize {
        alloc(self.as_str().len())
    }
}

impl Resource for AccountPages {
    type Key = AccountPageKey;
    type Value = Arc<AccountDevicesPage>;
    const INFO: Info = Info::new("account_devices", "ad", Endpoint::AccountDevices, 300);

    fn fetch(client: &Client, keys: Vec<Self::Key>) -> BoxFuture<'static, Fetches<Self>> {
        per_key::<Self, _, _>(client, keys, |client, key| async move {
            client
                .account_devices_page(&key.account, key.protocol.as_ref(), key.cursor.as_deref())
                .await
                .map(Arc::new)
        })
    }
}

heap_size_of_fields!(AccountDevicesPage: account_name, last_seen_device_id, devices);
