//! Lenient parsing of the upstream's JSON into the public models.
//!
//! ThingSpace's documentation, its own SDK and its examples disagree on field
//! names and value formats (see UPSTREAM.md), so every parser accepts all of them:
//! both field-name variants, numbers as strings, booleans as strings, four
//! timestamp shapes, `"N/A"`/`""` as absent, `null` lists as empty, unknown
//! fields ignored and unknown status or code values kept.
//!
//! This module only re-exports: each endpoint's parser is defined with its model and
//! request in `endpoints/<endpoint>.rs`, the token and error-body parsers and
//! [`DecodeError`] in the private `decode` module, which also holds the toolkit they
//! share (body checks, the path-tracking accessors that hold every leniency rule once).
//!
//! What is an error (a [`DecodeError`] naming the field path):
//! - a body that is not JSON or whose top level has the wrong shape (`field` empty);
//! - a required field missing: `deviceId` in device details and campaign reports,
//!   `status` in upgrade history and campaign reports, `occurredAt` and
//!   `eventType` in provisioning events, the token of a token response;
//! - a value of the wrong JSON type that no leniency rule covers (an object where
//!   a string is expected, `"12a"` for a count);
//! - an optional timestamp that is present but unparseable. Absent, `null`, `""`
//!   and `"N/A"` are `None`, but an unknown format fails the response rather than
//!   silently dropping data and hiding an upstream change.
//!
//! Errors never contain a token: messages describe JSON types, not values
//! (timestamps excepted, and token bodies contain none).

#[cfg(test)]
mod tests;

pub use crate::decode::DecodeError;
pub use crate::decode::bodies::{parse_error_body, parse_oauth_token, parse_session_token};
pub use crate::endpoints::account_devices::parse_account_devices_page;
pub use crate::endpoints::campaign_devices::parse_campaign_page;
pub use crate::endpoints::check_ins::parse_check_in_history;
pub use crate::endpoints::device_details::parse_device_details_page;
pub use crate::endpoints::provisioning::parse_provisioning_page;
pub use crate::endpoints::upgrade_history::parse_upgrade_history;
