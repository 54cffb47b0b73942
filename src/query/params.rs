//! Query-string parsing shared by the pages and the API.
//!
//! Decoding is strict: invalid percent-encoding or UTF-8 is refused with a
//! reason instead of being silently replaced.

/// The decoded `key=value` pairs of a query string, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Longest query string accepted at all.
pub const MAX_QUERY_LEN: usize = 8 * 1024;

fn decode(part: &str) -> Result<String, String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    // Two hex digits exactly (`from_str_radix` alone would
                    // also take a sign: `%+c`).
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {part:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query string is not valid UTF-8".to_owned())
}

impl Params {
    /// Parses a raw query string (without the `?`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(format!(
                "the query string is longer than {MAX_QUERY_LEN} characters"
            ));
        }
        let mut pairs = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Self { pairs })
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The last value given for `key`, as Django's `QueryDict.get` returns.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Like `get`, but an empty value counts as absent (django-filter
    /// ignores empty filter values, which HTML forms send for "any").
    pub fn get_non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_strict_and_last_value_wins() {
        let p = Params::parse("a=1&b=x+y%21&a=2&c").unwrap();
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("x y!"));
        assert_eq!(p.get("c"), Some(""));
        assert_eq!(p.get_non_empty("c"), None);
        assert!(Params::parse("a=%zz").is_err());
        assert!(Params::parse("a=%ff").is_err());
        assert!(Params::parse("a=%4").is_err());
        // Found by the query_params fuzz target: a sign is not a hex digit.
        assert!(Params::parse("a=%+c").is_err());
        assert!(Params::parse("a=%-1").is_err());
        assert_eq!(Params::parse("q=%C3%A9").unwrap().get("q"), Some("é"));
    }
}
