//! Password hashing and the password policy.
//!
//! argon2id with OWASP's minimum parameters (m=19 MiB, t=2, p=1), run on
//! the blocking pool behind a semaphore so a burst of logins can neither
//! starve the async workers nor exhaust memory. Hashes imported from the
//! Django original (`pbkdf2_sha256$…`) verify as Django does and are
//! upgraded to argon2id after the next successful login.

use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

const MIN_LENGTH: usize = 12;
const MAX_LENGTH: usize = 1024;

fn argon2() -> Argon2<'static> {
    // Params::DEFAULT is m=19456 KiB, t=2, p=1: OWASP's recommendation.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// Hashes a password with argon2id (CPU-heavy: call off the executor).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored hash of either supported form.
/// Any malformed hash simply does not verify.
pub fn verify_password(stored: &str, password: &str) -> bool {
    if stored.starts_with("pbkdf2_sha256$") {
        return verify_django_pbkdf2(stored, password);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// [`verify_password`] with the caller's argon2 working memory, so that
/// repeated verifications reuse one buffer instead of allocating 19 MiB
/// each time (which the allocator tends to keep per thread).
pub fn verify_password_with_memory(stored: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return verify_password(stored, password);
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return verify_password(stored, password);
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    // Only the versions argon2 itself accepts (the current one, 0x13).
    if parsed
        .version
        .is_some_and(|v| v != u32::from(Version::V0x13))
    {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// True when a verified hash should be replaced by a fresh argon2id one
/// (a Django hash, or argon2 parameters weaker than today's).
pub fn needs_rehash(stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => {
            parsed.algorithm.as_str() != "argon2id"
                || Params::try_from(&parsed)
                    .map(|p| {
                        p.m_cost() < Params::DEFAULT_M_COST || p.t_cost() < Params::DEFAULT_T_COST
                    })
                    .unwrap_or(true)
        }
        Err(_) => true,
    }
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
pub fn verify_django_pbkdf2(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    // Django never uses fewer than 10k; cap work an attacker-supplied
    // fixture could demand.
    if !(1..=10_000_000).contains(&iterations) || salt.is_empty() || salt.contains('$') {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut derived,
    );
    derived.ct_eq(&expected).into()
}

/// A fixed argon2id hash verified when a username is unknown, so the
/// answer takes as long as for a real account.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("custos-dummy-password-for-timing")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$invalid".into())
    })
}

/// Bounds how many argon2 computations run at once (19 MiB each), and
/// runs them on threads of their own at a lower scheduling priority.
///
/// A password check is ~20 ms of one core. Run at normal priority, a burst
/// of logins takes the CPU from every API request for as long as it lasts;
/// on the `custos-argon2` threads (nice ~9) the scheduler gives requests
/// the CPU first and logins what remains (still several a second on a busy
/// machine, all of it on an idle one). Their count is the permit count, so
/// the semaphore is what queues further attempts.
#[derive(Clone)]
pub struct PasswordWork {
    permits: Arc<Semaphore>,
    /// argon2 working memory, one buffer per permit, reused: the memory
    /// for password checks stays at permits × 19 MiB however many logins
    /// come.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// The hashing threads' queue; they end when the last clone is gone.
    jobs: crossbeam_channel::Sender<Box<dyn FnOnce() + Send>>,
}

/// Niceness of the hashing threads, as `thread_priority`'s 0..=99 scale
/// (25 is about nice 9).
const HASHING_PRIORITY: u8 = 25;

impl PasswordWork {
    pub fn new(parallel: usize) -> Self {
        let parallel = parallel.max(1);
        let (jobs, queue) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        for i in 0..parallel {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name("custos-argon2".into())
                .spawn(move || {
                    if let Err(e) = lower_priority() {
                        tracing::debug!(error = %e, "argon2 thread keeps normal priority");
                    }
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                });
            if let Err(e) = started {
                tracing::error!(error = %e, thread = i, "could not start an argon2 thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(parallel)),
            memory: Arc::new(Mutex::new(Vec::new())),
            jobs,
        }
    }

    fn take_memory(&self) -> Vec<Block> {
        self.memory
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn give_back(memory: &Mutex<Vec<Vec<Block>>>, buffer: Vec<Block>) {
        if let Ok(mut pool) = memory.lock() {
            pool.push(buffer);
        }
    }

    /// Runs `f` on a hashing thread; `None` if none is running or `f`
    /// panicked.
    async fn on_hashing_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result.ok());
        };
        self.jobs.send(Box::new(job)).ok()?;
        rx.await.ok().flatten()
    }

    /// Verifies on a hashing thread. `stored` of `None` verifies against
    /// the dummy hash and always fails.
    pub async fn verify(&self, stored: Option<String>, password: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let mut buffer = self.take_memory();
        let pool = Arc::clone(&self.memory);
        self.on_hashing_thread(move || {
            let verified = match stored {
                Some(hash) => verify_password_with_memory(&hash, &password, &mut buffer),
                None => {
                    verify_password_with_memory(dummy_hash(), &password, &mut buffer);
                    false
                }
            };
            Self::give_back(&pool, buffer);
            verified
        })
        .await
        .unwrap_or(false)
    }

    /// Hashes on a hashing thread.
    pub async fn hash(&self, password: String) -> Option<String> {
        let _permit = self.permits.acquire().await.ok()?;
        self.on_hashing_thread(move || hash_password(&password).ok())
            .await
            .flatten()
    }
}

/// Lowers the calling thread's scheduling priority (never needs a
/// privilege; raising it back would, so only dedicated threads call this).
fn lower_priority() -> Result<(), thread_priority::Error> {
    let priority = thread_priority::ThreadPriorityValue::try_from(HASHING_PRIORITY)
        .map_err(|_| thread_priority::Error::Priority("out of range"))?;
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Crossplatform(
        priority,
    ))
}

/// Passwords that meet the length rule but are among the first guesses of
/// any attacker. Compared case-insensitively.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// A new password typed twice in a form: the two must agree and the policy
/// must accept it (setup and the admin pages).
pub fn check_new_password(username: &str, password: &str, again: &str) -> Result<(), String> {
    if password != again {
        return Err("The two passwords differ.".into());
    }
    check_policy(username, password)
}

/// The one password policy used by setup, the CLI, account and admin pages.
pub fn check_policy(username: &str, password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!(
            "The password must be at least {MIN_LENGTH} characters long."
        ));
    }
    if length > MAX_LENGTH {
        return Err(format!(
            "The password must be at most {MAX_LENGTH} characters long."
        ));
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err("The password must not contain the username.".into());
    }
    if COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .any(|common| !common.is_empty() && common == lower)
    {
        return Err("This password is too common; choose another.".into());
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return Err("The password must not be one character repeated.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_with_reused_memory_agrees_with_the_plain_check() {
        let hash = hash_password("correct horse battery").unwrap();
        let mut memory = Vec::new();
        assert!(verify_password_with_memory(
            &hash,
            "correct horse battery",
            &mut memory
        ));
        let size = memory.len();
        assert_eq!(
            size,
            Params::DEFAULT.block_count(),
            "one argon2 working set"
        );
        assert!(!verify_password_with_memory(
            &hash,
            "correct horse batterY",
            &mut memory
        ));
        assert_eq!(memory.len(), size, "the buffer is reused, not grown");
        assert!(!verify_password_with_memory(
            dummy_hash(),
            "anything at all",
            &mut memory
        ));
        assert!(!verify_password_with_memory(
            "$argon2id$garbage",
            "x",
            &mut memory
        ));
        // Other formats take the ordinary path.
        let django = "pbkdf2_sha256$1000$salt$".to_owned()
            + &base64::engine::general_purpose::STANDARD.encode({
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pw-123456789012", b"salt", 1000, &mut out);
                out
            });
        assert!(verify_password_with_memory(
            &django,
            "pw-123456789012",
            &mut memory
        ));
        assert!(!verify_password_with_memory(
            &django,
            "pw-123456789013",
            &mut memory
        ));
    }

    #[test]
    fn argon2id_hashes_verify_and_use_owasp_parameters() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "wrong"));
        assert!(!needs_rehash(&hash));
    }

    #[test]
    fn django_pbkdf2_hashes_verify_like_django() {
        // Made with Django's algorithm: PBKDF2-HMAC-SHA256, 1000 iterations.
        let salt = "somesalt";
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"hunter2hunter2", salt.as_bytes(), 1000, &mut out);
        let stored = format!(
            "pbkdf2_sha256$1000${salt}${}",
            base64::engine::general_purpose::STANDARD.encode(out)
        );
        assert!(verify_password(&stored, "hunter2hunter2"));
        assert!(!verify_password(&stored, "hunter2"));
        assert!(needs_rehash(&stored));
        assert!(!verify_password("pbkdf2_sha256$x$salt$abc", "x"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn the_policy_refuses_short_common_and_username_passwords() {
        assert!(check_policy("alice", "short").is_err());
        assert!(check_policy("alice", "alice-in-wonderland").is_err());
        assert!(check_policy("alice", "passwordpassword").is_err());
        assert!(check_policy("alice", "aaaaaaaaaaaaaaaa").is_err());
        assert!(check_policy("alice", "violet-kettle-93-drum").is_ok());
    }
}
