//! Reading timestamps fast: SQLite stores them as text, and diesel parses
//! that text by trying chrono format strings one after another, which is a
//! fifth of the work of reading a results page. `Timestamp` reads the form
//! Custos itself writes (`YYYY-MM-DD HH:MM:SS[.ffffff]`) by hand and hands
//! anything else to diesel's own parser, so every stored form still reads.
//!
//! Models use it with `#[diesel(deserialize_as = Timestamp)]`: their field
//! stays a `NaiveDateTime`.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::sql_types;
use diesel::sqlite::Sqlite;

/// A `NaiveDateTime` read from a `Timestamp` column.
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct Timestamp(pub NaiveDateTime);

impl From<Timestamp> for NaiveDateTime {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

/// The number in `digits` (all ASCII digits), if it is one.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DD HH:MM:SS` (or with `T`), then optionally `.` and 1 to 9
/// digits of the second; None for anything else.
pub fn parse(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?;
    let (hour, minute, second) = (
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    );
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    date.and_hms_nano_opt(hour, minute, second, nanos)
}

impl FromSql<sql_types::Timestamp, Sqlite> for Timestamp {
    fn from_sql(
        mut value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        if let Some(t) = parse(value.read_text()) {
            return Ok(Self(t));
        }
        <NaiveDateTime as FromSql<sql_types::Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<sql_types::Timestamp, Pg> for Timestamp {
    fn from_sql(
        value: <Pg as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<sql_types::Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

/// Through `DbConn`'s backend: each backend's own reading above.
impl FromSql<sql_types::Timestamp, super::MultiBackend> for Timestamp {
    fn from_sql(
        value: <super::MultiBackend as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        value.from_sql::<Self, sql_types::Timestamp>()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chrono_parse(text: &str) -> Option<NaiveDateTime> {
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    }

    #[test]
    fn the_forms_custos_writes_read_as_chrono_reads_them() {
        for text in [
            "2024-05-01 12:30:00",
            "2024-05-01 12:30:00.5",
            "2024-05-01 12:30:00.123456",
            "2024-05-01T12:30:00.123456789",
            "1999-12-31 23:59:59.000001",
            "2024-02-29 00:00:00",
        ] {
            assert_eq!(parse(text), chrono_parse(text), "{text}");
            assert!(parse(text).is_some(), "{text}");
        }
    }

    #[test]
    fn other_text_is_left_to_diesel() {
        for text in [
            "",
            "2024-05-01",
            "2024-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2024-05-01 24:00:00",
            "2024-05-01 12:30:00.",
            "2024-05-01 12:30:00.1234567890",
            "2024-05-01 12:30:00Z",
            "2024-05-01 12:30:0x",
            "+024-05-01 12:30:00",
            "2460000.5",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
