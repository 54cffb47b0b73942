//! Fuzzes DRF rate strings (`custos::config::Rate::parse`), the form of
//! `CUSTOS_API_USER_RATE` and `CUSTOS_API_ANON_RATE`.
//!
//! Invariant: never panics; an accepted rate allows at least one request
//! in a period of one second, minute, hour or day, and its canonical text
//! parses back to the same rate.
#![no_main]

use custos::config::Rate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rate) = Rate::parse(text) {
        assert!(rate.requests > 0, "{text:?} gave a zero rate");
        assert!(
            [1, 60, 3600, 86_400].contains(&rate.period_secs),
            "{text:?} gave a period of {} s",
            rate.period_secs
        );
        assert_eq!(rate.period().as_secs(), rate.period_secs);
        assert_eq!(Rate::parse(&rate.to_string()), Ok(rate), "{text:?}");
    }
});
