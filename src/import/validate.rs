//! Field rules shared by CSV import, seeding and the query parameters.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

pub use super::countries::is_country_code;

pub const PLANS: [&str; 3] = ["basic", "plus", "pro"];
pub const STATUSES: [&str; 3] = ["active", "suspended", "closed"];

pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A required single-line text of at most `max` characters.
pub fn text(value: &str, max: usize, required: bool) -> Result<String, String> {
    if required && value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if has_control_chars(value) {
        return Err("must not contain control characters or line breaks".into());
    }
    Ok(value.to_owned())
}

/// An e-mail address of the usual shape `local@domain.tld`.
pub fn email(value: &str) -> Result<String, String> {
    let bad = || Err(format!("{value:?} is not an e-mail address"));
    if value.len() > 254 || has_control_chars(value) || value.contains(char::is_whitespace) {
        return bad();
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return bad();
    };
    if local.is_empty()
        || local.contains('@')
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return bad();
    }
    Ok(value.to_owned())
}

/// A phone number: digits with optional `+`, spaces, dashes, dots and
/// parentheses; may be empty.
pub fn phone(value: &str) -> Result<String, String> {
    if value.chars().count() > 40 {
        return Err("is longer than 40 characters".into());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/'))
    {
        return Err(format!(
            "{value:?} is not a phone number (digits, spaces and + - ( ) . / only)"
        ));
    }
    Ok(value.to_owned())
}

pub fn country(value: &str) -> Result<String, String> {
    if is_country_code(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not an ISO 3166-1 alpha-2 country code (such as DE or US)"
        ))
    }
}

pub fn choice(value: &str, choices: &[&str]) -> Result<String, String> {
    if choices.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not one of {}", choices.join(", ")))
    }
}

pub fn positive_id(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{value:?} is not a positive whole number")),
    }
}

/// An RFC 3339 timestamp, converted to UTC.
pub fn timestamp(value: &str) -> Result<NaiveDateTime, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc).naive_utc())
        .map_err(|_| format!("{value:?} is not an RFC 3339 time such as 2024-05-01T12:30:00Z"))
}

/// The RFC 3339 UTC form used in CSV exports and the API.
pub fn format_timestamp(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(email("a@b.co").is_ok());
        assert!(email("o'brien@example.com").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b..de", "a@b.de.",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_round_trip_in_utc() {
        let t = timestamp("2024-05-01T14:30:00+02:00").unwrap();
        assert_eq!(format_timestamp(&t), "2024-05-01T12:30:00Z");
        assert!(timestamp("2024-05-01").is_err());
        assert!(timestamp("2024-13-01T00:00:00Z").is_err());
    }
}
