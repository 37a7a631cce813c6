//! Any bytes given to the three webhook payload parsers: each must answer with deliveries or
//! an error, never panic, and a delivery always carries a dedup key.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use salesdept_agents::linkedin::webhooks::{parse_dripify, parse_generic, parse_unipile};

fuzz_target!(|data: &[u8]| {
    let received_at = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
    for parse in [parse_unipile, parse_dripify, parse_generic] {
        if let Ok(deliveries) = parse(data, received_at) {
            for delivery in deliveries {
                assert!(!delivery.dedup_key.is_empty());
            }
        }
    }
});
