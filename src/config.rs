//! Typed settings read once at start from the environment.
//!
//! Every value is validated here, so a mistake stops the program with a
//! message naming the variable and the expected form instead of surfacing
//! later as a confusing runtime error. Secrets are never printed: `Settings`
//! has a hand-written `Debug` that redacts the key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;

/// Which database the program talks to, decided by the form of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "is empty; give a postgres:// URL or a SQLite file path",
            ));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if raw.contains("://") {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "has an unsupported scheme; use postgres://… or a SQLite file path",
            ));
        }
        let path = raw.strip_prefix("sqlite:").unwrap_or(raw);
        if path == ":memory:" {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "cannot be :memory: (every pooled connection would see a different database)",
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Shows a PostgreSQL URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact_url_password(url)),
        }
    }
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

/// A request rate in Django REST framework's `N/period` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub period_secs: u64,
}

impl Rate {
    /// Parses `200/day`, `60/minute`, `5/s`... Like DRF, only the first letter
    /// of the period counts (`s`, `m`, `h`, `d`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (num, period) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| "expected N/second|minute|hour|day, e.g. 200/day".to_owned())?;
        let requests: u32 = num
            .trim()
            .parse()
            .map_err(|_| format!("{num:?} is not a whole number of requests"))?;
        if requests == 0 {
            return Err("the number of requests must be at least 1".into());
        }
        let period_secs = match period.trim().chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86400,
            _ => {
                return Err(format!(
                    "{period:?} is not a period; use second, minute, hour or day"
                ));
            }
        };
        Ok(Self {
            requests,
            period_secs,
        })
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period_secs {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{}", self.requests, unit)
    }
}

/// An address or CIDR block whose forwarding headers are believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{raw:?} has an invalid prefix length")),
            },
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) to plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A configuration value that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {} {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Limits on login attempts (see `auth::login_guard`).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures per account inside `window` before delays start.
    pub account_failures: u32,
    /// Failures from one client address inside `window` before it is slowed.
    pub address_failures: u32,
    pub window: Duration,
}

/// Everything the program needs to know, validated.
#[derive(Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub bind: SocketAddr,
    pub secret_key: Vec<u8>,
    pub tls: Option<TlsFiles>,
    pub http_redirect_bind: Option<SocketAddr>,
    pub trusted_proxies: Vec<IpNet>,
    pub api_user_rate: Rate,
    pub api_anon_rate: Rate,
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    pub token_lifetime: Duration,
    pub db_pool_size: u32,
    pub login_limits: LoginLimits,
    pub audit_retention_days: u32,
    /// Per-address request burst allowed by the in-memory limiter in front of
    /// everything (requests per second, sustained, and burst size).
    pub burst_per_second: u32,
    pub burst_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &self.database_url)
            .field("bind", &self.bind)
            .field("secret_key", &"<redacted>")
            .field("tls", &self.tls)
            .field("http_redirect_bind", &self.http_redirect_bind)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("api_user_rate", &self.api_user_rate)
            .field("api_anon_rate", &self.api_anon_rate)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_absolute_timeout", &self.session_absolute_timeout)
            .field("token_lifetime", &self.token_lifetime)
            .field("db_pool_size", &self.db_pool_size)
            .field("login_limits", &self.login_limits)
            .field("audit_retention_days", &self.audit_retention_days)
            .finish()
    }
}

const SECRET_FILE_NAME: &str = "custos.secret";
const MIN_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let database_url =
            DatabaseUrl::parse(&get("DATABASE_URL").unwrap_or_else(|| "custos.db".into()))?;

        let bind = parse_socket_addr("CUSTOS_BIND", get("CUSTOS_BIND").as_deref())?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let http_redirect_bind = parse_socket_addr(
            "CUSTOS_HTTP_REDIRECT_BIND",
            get("CUSTOS_HTTP_REDIRECT_BIND").as_deref(),
        )?;

        let tls = match (get("CUSTOS_TLS_CERT"), get("CUSTOS_TLS_KEY")) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "CUSTOS_TLS_KEY",
                    "is missing; CUSTOS_TLS_CERT and CUSTOS_TLS_KEY go together",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "CUSTOS_TLS_CERT",
                    "is missing; CUSTOS_TLS_CERT and CUSTOS_TLS_KEY go together",
                ));
            }
        };
        if http_redirect_bind.is_some() && tls.is_none() {
            return Err(ConfigError::new(
                "CUSTOS_HTTP_REDIRECT_BIND",
                "needs CUSTOS_TLS_CERT and CUSTOS_TLS_KEY (it redirects to HTTPS)",
            ));
        }

        let trusted_proxies = match get("CUSTOS_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    IpNet::parse(s).map_err(|e| {
                        ConfigError::new(
                            "CUSTOS_TRUSTED_PROXIES",
                            format!("has a bad entry: {e}; expected comma-separated IPs or CIDRs"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };

        let rate = |name: &str, default: &str| {
            Rate::parse(&get(name).unwrap_or_else(|| default.into()))
                .map_err(|e| ConfigError::new(name, format!("is not a rate: {e}")))
        };
        let api_user_rate = rate("CUSTOS_API_USER_RATE", "200/day")?;
        let api_anon_rate = rate("CUSTOS_API_ANON_RATE", "60/minute")?;

        let secs = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            parse_number::<u64>(name, get(name).as_deref(), default, 1, 10 * 365 * 86400)
                .map(Duration::from_secs)
        };
        let session_idle_timeout = secs("CUSTOS_SESSION_IDLE_SECONDS", 30 * 60)?;
        let session_absolute_timeout = secs("CUSTOS_SESSION_ABSOLUTE_SECONDS", 12 * 3600)?;
        let token_days = parse_number::<u64>(
            "CUSTOS_TOKEN_LIFETIME_DAYS",
            get("CUSTOS_TOKEN_LIFETIME_DAYS").as_deref(),
            90,
            1,
            3650,
        )?;
        let token_lifetime = Duration::from_secs(token_days * 86400);
        let db_pool_size = parse_number::<u32>(
            "CUSTOS_DB_POOL_SIZE",
            get("CUSTOS_DB_POOL_SIZE").as_deref(),
            10,
            1,
            500,
        )?;
        let login_limits = LoginLimits {
            account_failures: parse_number(
                "CUSTOS_LOGIN_MAX_FAILURES",
                get("CUSTOS_LOGIN_MAX_FAILURES").as_deref(),
                5,
                1,
                1000,
            )?,
            address_failures: parse_number(
                "CUSTOS_LOGIN_MAX_ADDRESS_FAILURES",
                get("CUSTOS_LOGIN_MAX_ADDRESS_FAILURES").as_deref(),
                20,
                1,
                100_000,
            )?,
            window: secs("CUSTOS_LOGIN_WINDOW_SECONDS", 15 * 60)?,
        };
        let audit_retention_days = parse_number(
            "CUSTOS_AUDIT_RETENTION_DAYS",
            get("CUSTOS_AUDIT_RETENTION_DAYS").as_deref(),
            365,
            1,
            36500,
        )?;
        let burst_per_second = parse_number(
            "CUSTOS_BURST_PER_SECOND",
            get("CUSTOS_BURST_PER_SECOND").as_deref(),
            50,
            1,
            1_000_000,
        )?;
        let burst_size = parse_number(
            "CUSTOS_BURST_SIZE",
            get("CUSTOS_BURST_SIZE").as_deref(),
            200,
            1,
            1_000_000,
        )?;

        let secret_key = match get("CUSTOS_SECRET_KEY") {
            Some(key) if key.len() >= MIN_SECRET_BYTES => key.into_bytes(),
            Some(_) => {
                return Err(ConfigError::new(
                    "CUSTOS_SECRET_KEY",
                    format!(
                        "is too short; use at least {MIN_SECRET_BYTES} random characters \
                         (for example: openssl rand -base64 48)"
                    ),
                ));
            }
            None => match &database_url {
                DatabaseUrl::Sqlite(db) => load_or_create_secret(&secret_path_beside(db))?,
                DatabaseUrl::Postgres(_) => {
                    return Err(ConfigError::new(
                        "CUSTOS_SECRET_KEY",
                        "must be set when DATABASE_URL is PostgreSQL, because every \
                         instance sharing the database must use the same key \
                         (for example: openssl rand -base64 48)",
                    ));
                }
            },
        };

        Ok(Self {
            database_url,
            bind,
            secret_key,
            tls,
            http_redirect_bind,
            trusted_proxies,
            api_user_rate,
            api_anon_rate,
            session_idle_timeout,
            session_absolute_timeout,
            token_lifetime,
            db_pool_size,
            login_limits,
            audit_retention_days,
            burst_per_second,
            burst_size,
        })
    }

    /// True when the listener or a trusted proxy in front of it provides TLS
    /// (the only situations in which cookies may be marked for HTTPS).
    pub fn serves_https(&self) -> bool {
        self.tls.is_some()
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

fn parse_socket_addr(name: &str, raw: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
            ConfigError::new(
                name,
                format!("{raw:?} is not an address; expected IP:PORT such as 127.0.0.1:8080"),
            )
        }),
    }
}

fn parse_number<T>(
    name: &str,
    raw: Option<&str>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError::new(
            name,
            format!("{raw:?} is not a whole number from {min} to {max}"),
        )),
    }
}

/// Where the generated secret lives: beside the SQLite database file.
pub fn secret_path_beside(db: &Path) -> PathBuf {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(SECRET_FILE_NAME),
        _ => PathBuf::from(SECRET_FILE_NAME),
    }
}

/// Reads the key file, or creates it (mode 0600) with 64 random bytes.
fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let var = "CUSTOS_SECRET_KEY";
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(ConfigError::new(
                    var,
                    format!(
                        "is unset and the key file {} is readable by others (mode {mode:o}); \
                         run chmod 600 on it",
                        path.display()
                    ),
                ));
            }
            if bytes.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::new(
                    var,
                    format!("is unset and the key file {} is too short", path.display()),
                ));
            }
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 64];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(&key).and_then(|_| f.sync_all()).map(|_| f));
            match file.as_mut() {
                Ok(_) => Ok(key),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(ConfigError::new(
                    var,
                    format!(
                        "is unset and the key file {} could not be created: {e}",
                        path.display()
                    ),
                )),
            }
        }
        Err(e) => Err(ConfigError::new(
            var,
            format!(
                "is unset and the key file {} could not be read: {e}",
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_drf_syntax() {
        assert_eq!(
            Rate::parse("200/day"),
            Ok(Rate {
                requests: 200,
                period_secs: 86400
            })
        );
        assert_eq!(Rate::parse("5/s").map(|r| r.period_secs), Ok(1));
        assert_eq!(Rate::parse("5/minute").map(|r| r.period_secs), Ok(60));
        assert!(Rate::parse("day").is_err());
        assert!(Rate::parse("0/day").is_err());
        assert!(Rate::parse("5/fortnight").is_err());
        assert!(Rate::parse("-5/day").is_err());
    }

    #[test]
    fn cidr_blocks_contain_their_addresses() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn postgres_passwords_are_redacted() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(format!("{url:?}"), "postgres://u:***@h/db");
    }
}
