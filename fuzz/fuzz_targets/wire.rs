//! Every ThingSpace reply parser on arbitrary bytes: none may panic, and a failure
//! must name a well-formed field path.
#![no_main]

use devicegraph_upstream::wire::{
    DecodeError, parse_campaign_page, parse_check_in_history, parse_device_details_page,
    parse_error_body, parse_oauth_token, parse_provisioning_page, parse_session_token,
    parse_upgrade_history,
};
use libfuzzer_sys::fuzz_target;

fn check(err: Option<DecodeError>) {
    if let Some(err) = err {
        assert!(
            !err.field.starts_with('.') && !err.field.contains(".."),
            "malformed field path: {err:?}"
        );
    }
}

fuzz_target!(|body: &[u8]| {
    check(parse_device_details_page(body).err());
    check(parse_upgrade_history(body).err());
    check(parse_check_in_history(body).err());
    check(parse_campaign_page(body).err());
    check(parse_provisioning_page(body).err());
    check(parse_oauth_token(body).err());
    check(parse_session_token(body).err());
    let _ = parse_error_body(body);
});
