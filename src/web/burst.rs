//! The per-address burst limiter in front of everything (actix-governor).
//!
//! A GCRA limiter in memory: it refuses a flood from one client address
//! cheaply, before any session, token or database work. The key is the
//! client address that `middleware::request_context` resolved (the socket
//! peer, or the forwarded client when the peer is a trusted proxy), so the
//! `Governor` wrap must sit inside `request_context`. The configuration is
//! built once and shared by every worker; `retain_recent` is called
//! periodically so the key map does not grow without bound.

use std::net::IpAddr;
use std::time::Duration;

use actix_governor::governor::clock::{Clock, DefaultClock};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::{NotUntil, clock::QuantaInstant};
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpResponse, HttpResponseBuilder};

use crate::config::{Settings, canonical_ip};
use crate::quota::ceil_duration;
use crate::web::error::throttle_message;
use crate::web::middleware::ClientInfo;

/// Keys the limiter by the trusted client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIpKey;

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        if let Some(info) = req.extensions().get::<ClientInfo>() {
            return Ok(info.ip);
        }
        // Only reached if the wrap order is wrong: fall back to the peer,
        // never to a header.
        Ok(req
            .peer_addr()
            .map(|a| canonical_ip(a.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = ceil_duration(negative.wait_time_from(DefaultClock::default().now()));
        let body = serde_json::json!({ "detail": throttle_message(wait) });
        response
            .insert_header((header::RETRY_AFTER, wait.to_string()))
            .content_type("application/json")
            .body(body.to_string())
    }
}

/// The shared limiter configuration.
pub type BurstConfig = GovernorConfig<ClientIpKey, NoOpMiddleware>;

/// Builds the limiter: `burst_per_second` sustained, `burst_size` at once.
pub fn config(settings: &Settings) -> Option<BurstConfig> {
    let per_second = u64::from(settings.burst_per_second.max(1));
    GovernorConfigBuilder::default()
        .period(Duration::from_nanos((1_000_000_000 / per_second).max(1)))
        .burst_size(settings.burst_size.max(1))
        .key_extractor(ClientIpKey)
        .finish()
}

/// Forgets addresses that are back to a full burst, every minute.
pub fn spawn_cleanup(config: &BurstConfig) {
    let limiter = config.limiter();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn limiter_entries_of_quiet_addresses_are_forgotten_by_the_cleanup() {
        let env = std::collections::HashMap::from([
            ("CUSTOS_SECRET_KEY", "k".repeat(64)),
            ("CUSTOS_BURST_PER_SECOND", "1000".to_owned()),
            ("CUSTOS_BURST_SIZE", "2".to_owned()),
        ]);
        let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
        let config = config(&settings).unwrap();
        let limiter = config.limiter();
        for i in 0..5000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(limiter.check_key(&ip).is_ok());
        }
        assert_eq!(limiter.len(), 5000);
        // Each address is back to a full burst within milliseconds.
        std::thread::sleep(Duration::from_millis(50));
        limiter.retain_recent();
        limiter.shrink_to_fit();
        assert_eq!(limiter.len(), 0, "stale limiter entries were kept");
    }
}
