//! Moving over from the Django original: accounts from Django's
//! `auth_user` and API keys from Django REST framework's
//! `authtoken_token`, all or nothing, like the other imports.
//!
//! Password hashes are kept exactly as Django stored them
//! (`pbkdf2_sha256$<iterations>$<salt>$<base64>`): they verify as Django
//! verifies them and are replaced by argon2id at the user's next
//! successful sign-in. API keys are stored only as SHA-256 hashes (plus
//! the first characters for display), so existing scripts keep working
//! and the database never holds a usable key.

use std::collections::HashSet;
use std::io::Read;

use base64::Engine;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{ImportError, Imported, Progress, for_each_record, row_error};
use crate::auth::{tokens, users};
use crate::db::models::{NewUser, Role};
use crate::db::schema::{api_tokens, users as users_table};
use crate::db::{DbConn, now, write_transaction};

/// Columns of the accounts file (from `auth_user`).
pub const USER_COLUMNS: [&str; 5] = [
    "username",
    "password",
    "is_active",
    "is_staff",
    "is_superuser",
];

/// Columns of the API keys file (`authtoken_token` joined to `auth_user`).
pub const TOKEN_COLUMNS: [&str; 2] = ["key", "username"];

/// Django's and PostgreSQL's spellings of a boolean.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Ok(true),
        "false" | "f" | "0" => Ok(false),
        _ => Err(format!(
            "{raw:?} is not a boolean; use True/False, t/f or 1/0"
        )),
    }
}

/// Accepts a Django password field that Custos can verify (or an unusable
/// password, `!…`, which never verifies: such an account needs a password
/// set by an administrator).
pub fn check_django_hash(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    if raw.starts_with('!') {
        return Ok(());
    }
    let mut parts = raw.split('$');
    let algorithm = parts.next().unwrap_or_default();
    if algorithm != "pbkdf2_sha256" {
        return Err(format!(
            "{algorithm:?} hashes are not supported, only Django's default pbkdf2_sha256; \
             replace this hash by ! to import the account without a usable password"
        ));
    }
    let (Some(iterations), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("is not in the form pbkdf2_sha256$<iterations>$<salt>$<hash>".into());
    };
    match iterations.parse::<u32>() {
        Ok(n) if (1..=10_000_000).contains(&n) => {}
        _ => return Err(format!("has an invalid iteration count {iterations:?}")),
    }
    if salt.is_empty() {
        return Err("has an empty salt".into());
    }
    match base64::engine::general_purpose::STANDARD.decode(hash) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err("has a hash that is not 32 bytes of base64".into()),
    }
}

/// Imports accounts from Django's `auth_user` export. A superuser becomes
/// an admin, everyone else staff. Fails on the first bad row, writing
/// nothing.
pub fn import_users<R: Read>(
    conn: &mut DbConn,
    input: R,
    progress: &dyn Progress,
) -> Result<Imported, ImportError> {
    let result = write_transaction(conn, |conn| {
        let mut seen = HashSet::new();
        let at = now();
        for_each_record(input, &USER_COLUMNS, progress, |line, f| {
            let [username, password, is_active, is_staff, is_superuser] = f;
            users::check_username(username).map_err(|e| row_error(line, "username", e))?;
            check_django_hash(password).map_err(|e| row_error(line, "password", e))?;
            let is_active = parse_bool(is_active).map_err(|e| row_error(line, "is_active", e))?;
            parse_bool(is_staff).map_err(|e| row_error(line, "is_staff", e))?;
            let is_superuser =
                parse_bool(is_superuser).map_err(|e| row_error(line, "is_superuser", e))?;
            if !seen.insert(username.to_owned()) {
                return Err(row_error(
                    line,
                    "username",
                    format!("{username:?} appears twice in the file"),
                ));
            }
            if users::find_by_username(conn, username)?.is_some() {
                return Err(row_error(
                    line,
                    "username",
                    format!("an account named {username:?} already exists"),
                ));
            }
            let role = if is_superuser {
                Role::Admin
            } else {
                Role::Staff
            };
            diesel::insert_into(users_table::table)
                .values(NewUser {
                    username,
                    password_hash: password,
                    role: role.as_str(),
                    is_active,
                    must_change_password: false,
                    created_at: at,
                    updated_at: at,
                })
                .execute(conn)?;
            Ok(())
        })
    });
    progress.finish();
    result.map(|rows| Imported { rows })
}

/// DRF's key form: 40 hexadecimal characters.
fn check_key(key: &str) -> Result<(), String> {
    if key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("is not a DRF key (40 hexadecimal characters)".into())
    }
}

/// Imports DRF API keys for accounts that already exist (import the users
/// first). Only hashes are stored; the keys are never echoed in errors.
pub fn import_tokens<R: Read>(
    conn: &mut DbConn,
    input: R,
    progress: &dyn Progress,
    expires_at: Option<NaiveDateTime>,
) -> Result<Imported, ImportError> {
    let result = write_transaction(conn, |conn| {
        let mut seen = HashSet::new();
        for_each_record(input, &TOKEN_COLUMNS, progress, |line, f| {
            let [key, username] = f;
            check_key(key).map_err(|e| row_error(line, "key", e))?;
            let hash = tokens::token_hash(key);
            if !seen.insert(hash.clone()) {
                return Err(row_error(line, "key", "appears twice in the file"));
            }
            let exists: i64 = api_tokens::table
                .filter(api_tokens::token_hash.eq(&hash))
                .count()
                .get_result(conn)?;
            if exists > 0 {
                return Err(row_error(
                    line,
                    "key",
                    "is already stored (imported before?)",
                ));
            }
            let Some(user) = users::find_by_username(conn, username)? else {
                return Err(row_error(
                    line,
                    "username",
                    format!("there is no account named {username:?}; import the users first"),
                ));
            };
            tokens::store_token(conn, user.id, key, expires_at)?;
            Ok(())
        })
    });
    progress.finish();
    result.map(|rows| Imported { rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_booleans_are_understood() {
        for t in ["True", "true", "t", "T", "1"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["False", "f", "0", " false "] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn only_verifiable_django_hashes_are_accepted() {
        let ok = "pbkdf2_sha256$600000$abcdefghijklmnopqrstuv$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(check_django_hash(ok), Ok(()));
        assert_eq!(check_django_hash("!unusable0123456789"), Ok(()));
        for bad in [
            "",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA",
            "bcrypt_sha256$$2b$12$abc",
            "pbkdf2_sha256$many$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "pbkdf2_sha256$1000$$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "pbkdf2_sha256$1000$salt$short",
            "pbkdf2_sha256$1000$salt",
        ] {
            assert!(check_django_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_must_look_like_drf_keys() {
        assert!(check_key("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b").is_ok());
        assert!(check_key("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4").is_err());
        assert!(check_key("zz44b09199c62bcf9418ad846dd0e4bbdfc6ee4b").is_err());
    }
}
