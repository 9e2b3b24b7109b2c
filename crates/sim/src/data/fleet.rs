//! The fleet's shape: device models, accounts, campaigns and the few devices with
//! deliberately long provisioning histories.
//!
//! Everything here is built once at start-up from `(seed, devices)` and is small
//! (a few dozen blocks, accounts and campaigns); per-device records are derived on
//! demand in [`super::records`].

use super::imei::Blocks;
use super::rng::{Rng, domain, hash};
use super::time::{DAY_MS, ms_from_ymd};

/// A device make/model as ThingSpace reports it.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) make: &'static str,
    pub(crate) model: &'static str,
    pub(crate) protocol: &'static str,
    /// Prefix of upgrade-history `firmwareName`s (the seed writes
    /// `SEQUANSCommunications_GM01Q_<from>_<to>`).
    pub(crate) firmware_label: &'static str,
    pub(crate) firmwares: &'static [&'static str],
    /// Relative share of the fleet.
    pub(crate) weight: u64,
}

/// Makes, models and firmware names taken from the seed pages.
pub(crate) const MODELS: [Model; 3] = [
    Model {
        make: "SEQUANS COMMUNICATIONS",
        model: "GM01Q",
        protocol: "LWM2M",
        firmware_label: "SEQUANSCommunications_GM01Q",
        firmwares: &["SR1.2.0.0-10512", "SR1.2.0.0-10657"],
        weight: 50,
    },
    Model {
        make: "NORDIC SEMICONDUCTOR ASA",
        model: "NRF9160",
        protocol: "LWM2M",
        firmware_label: "NordicSemiconductorASA_NRF9160",
        firmwares: &[
            "ee58ac77-f1fd-4960-8dc4-4d32e118a6d4",
            "3c1d6a90-55b2-4f0e-9a4e-0c7d2b8e91f3",
            "a4f0e2d1-7b6c-4e59-8d3a-2f1e0c9b8a76",
        ],
        weight: 35,
    },
    Model {
        make: "Generic",
        model: "Sensor",
        protocol: "HTTP",
        firmware_label: "Generic_Sensor",
        firmwares: &["SR1.2.0.0-10512", "SR1.2.0.0-10657"],
        weight: 15,
    },
];

/// The account every fleet has (the seed pages' example).
pub const SEED_ACCOUNT: &str = "0000123456-00001";

/// Share of the fleet per account, in the order accounts are created.
const ACCOUNT_SHARES: [u64; 4] = [60, 20, 15, 5];

/// A billing account owning the contiguous device indices `start..end`.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Account {
    pub(crate) fn contains(&self, index: u64) -> bool {
        (self.start..self.end).contains(&index)
    }
}

/// A firmware campaign: the devices of index range `start..end` of one account,
/// each kept with probability `keep_per_mille / 1000`.
#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    pub(crate) id: String,
    pub(crate) account: usize,
    /// Position in `Fleet::campaigns`, used to salt per-device hashes.
    pub(crate) ordinal: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) keep_per_mille: u64,
    pub(crate) model: usize,
    pub(crate) firmware_from: &'static str,
    pub(crate) firmware_to: &'static str,
    /// Campaign start, epoch milliseconds (a UTC midnight).
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    /// Number of member devices (counted at start-up).
    pub(crate) devices: u64,
}

/// The whole simulated fleet, minus per-device records.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) seed: u64,
    pub(crate) blocks: Blocks,
    pub(crate) accounts: Vec<Account>,
    pub(crate) campaigns: Vec<Campaign>,
    /// Devices whose provisioning history exceeds one 500-record page and has
    /// distinct events sharing the timestamp at a page boundary. Sorted.
    pub(crate) boundary_devices: Vec<u64>,
}

impl Fleet {
    pub(crate) fn generate(seed: u64, devices: u64) -> Self {
        let weights: Vec<u64> = MODELS.iter().map(|m| m.weight).collect();
        let blocks = Blocks::generate(seed, devices, &weights);
        let accounts = make_accounts(seed, devices);
        let mut fleet = Self {
            seed,
            blocks,
            accounts,
            campaigns: Vec::new(),
            boundary_devices: Vec::new(),
        };
        fleet.campaigns = make_campaigns(&fleet);
        fleet.boundary_devices = boundary_devices(&fleet.accounts);
        fleet
    }

    pub(crate) fn account(&self, name: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.name == name)
    }

    pub(crate) fn account_of(&self, index: u64) -> Option<usize> {
        self.accounts.iter().position(|a| a.contains(index))
    }

    pub(crate) fn campaign(&self, account: usize, id: &str) -> Option<&Campaign> {
        self.campaigns
            .iter()
            .find(|c| c.account == account && c.id.eq_ignore_ascii_case(id))
    }

    /// Whether device `index` is a member of campaign `c`.
    pub(crate) fn in_campaign(&self, c: &Campaign, index: u64) -> bool {
        (c.start..c.end).contains(&index)
            && (c.keep_per_mille >= 1000
                || hash(self.seed, domain::CAMPAIGN_KEEP, c.ordinal, index) % 1000
                    < c.keep_per_mille)
    }

    pub(crate) fn is_boundary_device(&self, index: u64) -> bool {
        self.boundary_devices.binary_search(&index).is_ok()
    }
}

fn make_accounts(seed: u64, devices: u64) -> Vec<Account> {
    let count = devices.clamp(1, ACCOUNT_SHARES.len() as u64) as usize;
    let shares = &ACCOUNT_SHARES[..count];
    let total: u64 = shares.iter().sum();
    let mut sizes: Vec<u64> = shares
        .iter()
        .map(|s| (devices * s / total).max(1))
        .collect();
    let others: u64 = sizes.iter().skip(1).sum();
    if let Some(first) = sizes.first_mut() {
        *first = devices.saturating_sub(others);
    }
    let mut rng = Rng::new(seed, domain::ACCOUNTS, 0, 0);
    let mut names: Vec<String> = vec![SEED_ACCOUNT.to_string(), "0000123456-00002".to_string()];
    while names.len() < count {
        // Leading zeros matter: account names are strings, never numbers.
        let name = format!(
            "0000{:06}-{:05}",
            rng.range(100_000, 999_999),
            rng.range(1, 3)
        );
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut start = 0;
    sizes
        .into_iter()
        .zip(names)
        .map(|(size, name)| {
            let account = Account {
                name,
                start,
                end: start + size,
            };
            start += size;
            account
        })
        .collect()
}

fn make_campaigns(fleet: &Fleet) -> Vec<Campaign> {
    let mut rng = Rng::new(fleet.seed, domain::CAMPAIGNS, 0, 0);
    let mut out = Vec::new();
    for (a, account) in fleet.accounts.iter().enumerate() {
        let n = account.end - account.start;
        if n == 0 {
            continue;
        }
        // (share of the account's devices, keep per mille): one fleet-wide campaign,
        // one medium one (a few thousand devices once the account is big enough) and
        // two small ones, so paging is exercised at every size.
        let big = (n * 9 / 10).max(1);
        let medium = n.min(6_000);
        let small = [rng.range(4, 60).min(n), rng.range(2, 12).min(n)];
        let shapes = [
            (big, 1000),
            (medium, 500),
            (small[0], 700),
            (small[1], 1000),
        ];
        for (len, keep) in shapes {
            let offset = rng.range(0, n - len);
            // A campaign targets the model of a device it covers, so its report mixes
            // upgrades of that model with rejections of the others.
            let model = fleet
                .blocks
                .model_of(account.start + offset + rng.range(0, len - 1));
            let firmwares = MODELS[model].firmwares;
            let from_i = rng.range(0, firmwares.len() as u64 - 1) as usize;
            let to_i =
                (from_i + 1 + rng.range(0, firmwares.len() as u64 - 2) as usize) % firmwares.len();
            let start_ms = ms_from_ymd(2021, 6, 1) + rng.range(0, 900) as i64 * DAY_MS;
            let mut campaign = Campaign {
                id: rng.uuid_v1(),
                account: a,
                ordinal: out.len() as u64,
                start: account.start + offset,
                end: account.start + offset + len,
                keep_per_mille: keep,
                model,
                firmware_from: firmwares[from_i],
                firmware_to: firmwares[to_i],
                start_ms,
                end_ms: start_ms + rng.range(7, 60) as i64 * DAY_MS,
                devices: 0,
            };
            campaign.devices = if keep >= 1000 {
                len
            } else {
                (campaign.start..campaign.end)
                    .filter(|&i| fleet.in_campaign(&campaign, i))
                    .count() as u64
            };
            if campaign.devices > 0 {
                out.push(campaign);
            }
        }
    }
    out
}

fn boundary_devices(accounts: &[Account]) -> Vec<u64> {
    let mut out = Vec::new();
    for (a, account) in accounts.iter().enumerate() {
        let n = account.end - account.start;
        if n == 0 {
            continue;
        }
        let picks: &[u64] = if a == 0 { &[1, n / 2, n - 1] } else { &[n / 3] };
        out.extend(picks.iter().map(|p| account.start + p.min(&(n - 1))));
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_partition_the_fleet() {
        for devices in [0, 1, 3, 4, 10, 5_000, 123_457] {
            let fleet = Fleet::generate(42, devices);
            assert_eq!(fleet.accounts[0].name, SEED_ACCOUNT);
            let mut next = 0;
            for a in &fleet.accounts {
                assert_eq!(a.start, next);
                next = a.end;
                if devices >= 4 {
                    assert!(a.end > a.start, "{devices}: empty account {}", a.name);
                }
            }
            assert_eq!(next, devices);
        }
    }

    #[test]
    fn big_fleets_have_big_campaigns() {
        let fleet = Fleet::generate(42, 5_000);
        assert!(fleet.campaigns.iter().any(|c| c.devices > 2_500));
        let fleet = Fleet::generate(7, 1_000_000);
        assert!(fleet.campaigns.iter().any(|c| c.devices >= 200_000));
        for c in &fleet.campaigns {
            assert!(c.firmware_from != c.firmware_to);
        }
    }

    #[test]
    fn campaign_counts_match_membership() {
        let fleet = Fleet::generate(3, 20_000);
        for c in &fleet.campaigns {
            let counted = (c.start..c.end)
                .filter(|&i| fleet.in_campaign(c, i))
                .count() as u64;
            assert_eq!(counted, c.devices);
        }
    }
}
