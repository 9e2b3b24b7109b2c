//! The invariant of the `wire` fuzz target, shared with its corpus replay test
//! (`crates/upstream/tests/fuzz_corpus.rs`): every ThingSpace reply parser on
//! arbitrary bytes; none may panic, and a failure must name a well-formed field path.

use devicegraph_upstream::wire::{
    DecodeError, parse_account_devices_page, parse_campaign_page, parse_check_in_history,
    parse_device_details_page, parse_error_body, parse_oauth_token, parse_provisioning_page,
    parse_session_token, parse_upgrade_history,
};

fn field_path(err: Option<DecodeError>) {
    if let Some(err) = err {
        assert!(
            !err.field.starts_with('.') && !err.field.contains(".."),
            "malformed field path: {err:?}"
        );
    }
}

/// Runs every parser on `body`; panics on a violation.
pub(crate) fn check(body: &[u8]) {
    field_path(parse_device_details_page(body).err());
    field_path(parse_upgrade_history(body).err());
    field_path(parse_check_in_history(body).err());
    field_path(parse_campaign_page(body).err());
    field_path(parse_provisioning_page(body).err());
    field_path(parse_account_devices_page(body).err());
    field_path(parse_oauth_token(body).err());
    field_path(parse_session_token(body).err());
    let _ = parse_error_body(body);
}
