//! Provisioning history per device, and its 500-record, status-202 paging.
//!
//! Ordinary devices have a few dozen events. The fleet's *boundary devices* have well
//! over 500, with groups of distinct events that share one timestamp placed across the
//! page boundaries a client meets when it follows the documented protocol (resend with
//! `earliest` = the last record's `occurredAt`, get that record again). A client that
//! de-duplicates by timestamp alone loses the group's later events.

use super::fleet::Fleet;
use super::rng::{Rng, domain};
use super::time::{DAY_MS, HOUR_MS, SECOND_MS, data_now_ms};

/// Records per response, as documented.
pub(crate) const PAGE_SIZE: usize = 500;

const EVENT_TYPES: [&str; 10] = [
    "Activate",
    "Activation Confirmed",
    "Suspend",
    "Restore",
    "Deactivate",
    "Device Move",
    "Change Service Plan",
    "Mobile Terminated SMS Message Sent",
    "Change MDN",
    "Change Device ID",
];
const EVENT_BY: [&str; 6] = [
    "Jordan Reyes",
    "Priya Natarajan",
    "ThingSpace Automation",
    "api-integration",
    "ops.portal",
    "Mei Tanaka",
];
const SERVICE_PLANS: [&str; 4] = [
    "Tablet5GB",
    "M2M_4G_1GB",
    "ThingSpace_IoT_50MB",
    "LTE-M_Flex_5MB",
];
/// The UTC offset `occurredAt` is written with, in minutes: most devices' events in US
/// Eastern time (daylight time roughly April to October, as the seed's `-05:00`
/// December example), some devices' in UTC. A function of the instant, so events that
/// share an instant share a string.
fn offset_minutes(utc_device: bool, occurred_ms: i64) -> i32 {
    use chrono::Datelike as _;
    if utc_device {
        return 0;
    }
    let month = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(occurred_ms)
        .map_or(1, |t| t.month());
    if (4..=10).contains(&month) {
        -240
    } else {
        -300
    }
}

/// Where the same-timestamp groups of a boundary device sit: the first covers records
/// 496..=504, straddling the first 500-record boundary; after the client's resend the
/// second page starts at 496 and ends at 995, which the second group (993..=998)
/// straddles.
const GROUPS: [(usize, usize); 2] = [(496, 9), (993, 6)];

/// One provisioning event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProvisioningEvent {
    /// Whole seconds, in milliseconds.
    pub(crate) occurred_ms: i64,
    pub(crate) offset_minutes: i32,
    pub(crate) status: &'static str,
    pub(crate) event_by: &'static str,
    pub(crate) event_type: &'static str,
    pub(crate) service_plan: &'static str,
    pub(crate) mdn: Option<u64>,
    pub(crate) msisdn: String,
    pub(crate) extended: Option<Vec<(&'static str, String)>>,
}

/// All events of a device, oldest first. `created_ms` is the device's creation time,
/// `mdn` its MDN and `account` its account name.
pub(crate) fn events(
    fleet: &Fleet,
    index: u64,
    created_ms: i64,
    mdn: u64,
    account: &str,
) -> Vec<ProvisioningEvent> {
    let mut r = Rng::new(fleet.seed, domain::PROVISIONING, index, 0);
    let boundary = fleet.is_boundary_device(index);
    let count = if boundary {
        r.range(1_200, 1_600) as usize
    } else {
        r.range(3, 40) as usize
    };
    let (min_gap, max_gap) = if boundary {
        (60 * SECOND_MS, 12 * HOUR_MS)
    } else {
        (HOUR_MS, 30 * DAY_MS)
    };
    let end = data_now_ms() - DAY_MS;
    let mut t = created_ms / SECOND_MS * SECOND_MS;
    let mut out = Vec::with_capacity(count);
    let utc_device = r.chance(250);
    let mut prev_type = 0usize;
    for k in 0..count {
        // Position inside a same-second group of a boundary device, if any.
        let group_pos = if boundary {
            GROUPS
                .iter()
                .find_map(|&(start, len)| (k >= start && k < start + len).then(|| k - start))
        } else {
            None
        };
        // Ordinary devices sometimes log two events in the same second too.
        let same_second =
            matches!(group_pos, Some(p) if p > 0) || (!boundary && k > 0 && r.chance(60));
        if k > 0 && !same_second {
            let remaining = (count - k) as i64;
            let gap = r.range(min_gap as u64, max_gap as u64) as i64 / SECOND_MS * SECOND_MS;
            // Never run past the data's end, whatever the gaps drew.
            t = (t + gap)
                .min(end - remaining * SECOND_MS)
                .max(t + SECOND_MS);
        }
        // Events sharing a second get distinct types, so they are distinct records.
        let type_index = if k == 0 {
            0
        } else if let Some(p) = group_pos {
            (p + 1) % EVENT_TYPES.len()
        } else if same_second {
            (prev_type + 1) % EVENT_TYPES.len()
        } else {
            r.range(0, EVENT_TYPES.len() as u64 - 1) as usize
        };
        prev_type = type_index;
        let event_type = EVENT_TYPES[type_index];
        let with_mdn = r.chance(750);
        let msisdn = if r.chance(500) {
            format!("1{mdn}")
        } else {
            mdn.to_string()
        };
        let extended = r.chance(500).then(|| {
            vec![
                ("AccountName", account.to_string()),
                ("RequestId", format!("{:016x}", r.next_u64())),
            ]
        });
        out.push(ProvisioningEvent {
            occurred_ms: t,
            offset_minutes: offset_minutes(utc_device, t),
            status: if r.chance(960) { "Success" } else { "Failed" },
            event_by: r.pick(&EVENT_BY).copied().unwrap_or("ops.portal"),
            event_type,
            service_plan: r.pick(&SERVICE_PLANS).copied().unwrap_or("Tablet5GB"),
            mdn: with_mdn.then_some(mdn),
            msisdn,
            extended,
        });
    }
    out
}

/// One response's worth of events: those with `earliest <= occurredAt <= latest`, at
/// most `page_size`, and whether more remain in the window.
pub(crate) fn page(
    events: &[ProvisioningEvent],
    earliest_ms: i64,
    latest_ms: i64,
    page_size: usize,
) -> (&[ProvisioningEvent], bool) {
    let from = events.partition_point(|e| e.occurred_ms < earliest_ms);
    let to = events
        .partition_point(|e| e.occurred_ms <= latest_ms)
        .max(from);
    let window = &events[from..to];
    let take = window.len().min(page_size);
    (&window[..take], window.len() > take)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::data::time::data_start_ms;

    #[test]
    fn boundary_device_has_distinct_same_second_events_across_the_page_boundary() {
        let fleet = Fleet::generate(42, 10_000);
        let index = fleet.boundary_devices[0];
        let ev = events(
            &fleet,
            index,
            data_start_ms(),
            2_025_550_000,
            "0000123456-00001",
        );
        assert!(ev.len() > 1_000);
        assert!(ev.windows(2).all(|w| w[0].occurred_ms <= w[1].occurred_ms));
        assert_eq!(ev[499].occurred_ms, ev[500].occurred_ms);
        assert_eq!(ev[496].occurred_ms, ev[504].occurred_ms);
        for i in 496..504 {
            assert_ne!(ev[i], ev[i + 1]);
        }
        assert!(ev.last().unwrap().occurred_ms < data_now_ms());

        // Walk the pages as the documented protocol says and check nothing is lost.
        let (first, more) = page(&ev, data_start_ms(), data_now_ms(), PAGE_SIZE);
        assert!(more);
        assert_eq!(first.len(), 500);
        let (second, more) = page(&ev, first[499].occurred_ms, data_now_ms(), PAGE_SIZE);
        assert!(more);
        assert_eq!(second[0], ev[496]);
        assert_eq!(second[499], ev[995]);
        assert_eq!(ev[995].occurred_ms, ev[998].occurred_ms);
    }

    #[test]
    fn ordinary_devices_have_a_few_events() {
        let fleet = Fleet::generate(42, 10_000);
        let index = (0..10_000).find(|i| !fleet.is_boundary_device(*i)).unwrap();
        let ev = events(&fleet, index, data_start_ms(), 2_025_550_000, "x");
        assert!((3..=40).contains(&ev.len()));
        let (all, more) = page(&ev, 0, i64::MAX, PAGE_SIZE);
        assert_eq!(all.len(), ev.len());
        assert!(!more);
    }
}
