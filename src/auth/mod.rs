//! Who is asking: passwords, sessions, API tokens, CSRF, and the
//! extractors that make a handler refuse anonymous requests by its type.

pub mod csrf;
pub mod extract;
pub mod login;
pub mod login_guard;
pub mod password;
pub mod session_store;
pub mod token_cache;
pub mod tokens;
pub mod users;

pub use extract::{AdminUser, AuthUser};
