//! The `custos` command line: argument parsing and each command's work.
//!
//! Passwords are read from standard input only, never from arguments
//! (which other users can see in the process list).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::auth::{password, users};
use crate::config::{ConfigError, Settings};
use crate::db::models::Role;
use crate::db::{Database, DbError};
use crate::import::{self, ImportError, Progress};
use crate::seed::{self, SeedPlan};
use crate::server::Application;

#[derive(Parser, Debug)]
#[command(
    name = "custos",
    version,
    about = "A secure customer-data query tool with a token-protected JSON API",
    long_about = "A secure customer-data query tool with a token-protected JSON API.\n\n\
Configuration comes from the environment: DATABASE_URL (a postgres:// URL or a \
SQLite file path; default custos.db), CUSTOS_BIND (default 127.0.0.1:8080), \
CUSTOS_SECRET_KEY, CUSTOS_TLS_CERT and CUSTOS_TLS_KEY, CUSTOS_TRUSTED_PROXIES, \
CUSTOS_API_USER_RATE (default 200/day), CUSTOS_API_ANON_RATE (default 60/minute). \
See the README for the rest."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Migrate the database, then serve the query tool and the API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Import operators or customers from CSV (all or nothing).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Fill an empty database with deterministic demo data.
    Seed(SeedArgs),
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    /// Allow plain HTTP on a non-loopback address (sends cookies and tokens
    /// in clear text; only for networks you fully trust).
    #[arg(long)]
    insecure_http: bool,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Make the account an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user choose a new password at first login.
        #[arg(long)]
        must_change: bool,
    },
    /// Set an account's password (read from standard input); ends its sessions and tokens.
    SetPassword {
        #[arg(long)]
        username: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user choose a new password at next login.
        #[arg(long)]
        must_change: bool,
    },
    /// Deactivate an account; ends its sessions and tokens at once.
    Deactivate {
        #[arg(long)]
        username: String,
    },
    /// Reactivate a deactivated account.
    Activate {
        #[arg(long)]
        username: String,
    },
    /// Change an account's role.
    SetRole {
        #[arg(long)]
        username: String,
        /// admin or staff
        #[arg(long, value_parser = ["admin", "staff"])]
        role: String,
    },
    /// End all sessions and revoke all API tokens of an account.
    EndSessions {
        #[arg(long)]
        username: String,
        /// End the sessions only; API tokens keep working.
        #[arg(long)]
        sessions_only: bool,
    },
    /// List an account's live API tokens (prefix and id; never the token).
    Tokens {
        #[arg(long)]
        username: String,
    },
    /// Revoke one API token of an account (ids from `custos user tokens`).
    RevokeToken {
        #[arg(long)]
        username: String,
        /// The token's id.
        #[arg(long)]
        id: i64,
    },
    /// List accounts.
    List,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Import operators: id,name,country,support_email,created_at
    Operators { file: PathBuf },
    /// Import customers: id,operator_id,full_name,email,phone,city,country,plan,status,created_at
    Customers { file: PathBuf },
    /// Import accounts from Django's auth_user: username,password,is_active,is_staff,is_superuser
    /// (pbkdf2_sha256 hashes kept as they are, upgraded to argon2id at the next login;
    /// superusers become admins, everyone else staff).
    Users { file: PathBuf },
    /// Import DRF API keys: key,username (accounts must exist; only hashes are stored).
    Tokens {
        file: PathBuf,
        /// Let the imported keys expire after this many days (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
}

#[derive(Args, Debug)]
struct SeedArgs {
    /// How many customers to make.
    #[arg(long)]
    customers: u64,
    /// How many operators to make.
    #[arg(long, default_value_t = 20)]
    operators: u64,
    /// Random seed: the same seed gives the same rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A failure of a command, printed as one clear line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Import(#[from] ImportError),
    #[error("{0}")]
    Account(#[from] users::AccountError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Start(#[from] crate::server::StartError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    let is_serve = matches!(command, Command::Serve(_));
    init_logging(if is_serve { "info" } else { "warn" });
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custos: {e}");
            match e {
                CliError::Config(_) | CliError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CUSTOS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CUSTOS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn open_db(settings: &Settings) -> Result<Database, CliError> {
    let db = Database::connect(&settings.database_url, settings.db_pool_size.min(4))?;
    db.migrate()?;
    Ok(db)
}

fn run(command: Command) -> Result<(), CliError> {
    let settings = Settings::from_env()?;
    match command {
        Command::Serve(args) => serve(settings, args),
        Command::Migrate => {
            let db = Database::connect(&settings.database_url, 1)?;
            let applied = db.migrate()?;
            if applied.is_empty() {
                println!("The database is up to date.");
            } else {
                for version in &applied {
                    println!("applied migration {version}");
                }
            }
            Ok(())
        }
        Command::User(cmd) => user_command(&open_db(&settings)?, cmd),
        Command::Import(cmd) => import_command(&open_db(&settings)?, cmd),
        Command::Seed(args) => seed_command(&open_db(&settings)?, args),
    }
}

fn serve(settings: Settings, args: ServeArgs) -> Result<(), CliError> {
    let loopback = settings.bind.ip().is_loopback();
    if !loopback && settings.tls.is_none() && settings.trusted_proxies.is_empty() {
        if !args.insecure_http {
            return Err(CliError::Usage(format!(
                "refusing to serve plain HTTP on {} (not a loopback address): session cookies and \
                 API tokens would cross the network in clear text. Set CUSTOS_TLS_CERT and \
                 CUSTOS_TLS_KEY, or CUSTOS_TRUSTED_PROXIES for a TLS-terminating proxy, or pass \
                 --insecure-http if you really mean it.",
                settings.bind
            )));
        }
        tracing::warn!(bind = %settings.bind, "INSECURE: serving plain HTTP on a non-loopback address (--insecure-http)");
    }
    tracing::info!(settings = ?settings, "starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!(port = app.port(), "listening");
        app.run().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn read_password_stdin() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password on standard input (pipe it in, e.g. printf '%s' \"$PW\" | custos ...)"
                .into(),
        ));
    }
    Ok(password)
}

fn find_user(db: &Database, username: &str) -> Result<crate::db::models::User, CliError> {
    let mut conn = db.get()?;
    users::find_by_username(&mut conn, username)
        .map_err(DbError::from)?
        .ok_or_else(|| users::AccountError::NotFound(username.to_owned()).into())
}

/// Records an administrative change made from the command line in the
/// audit trail (no web user: the actor is whoever ran the command).
fn cli_audit(db: &Database, command: &str, detail: String) -> Result<(), CliError> {
    let event = crate::audit::AuditEvent::new(crate::audit::AuditKind::Admin, None).detail(detail);
    let entry = crate::audit::system_entry(event, command);
    crate::audit::insert(&mut *db.get()?, &entry).map_err(|e| {
        CliError::Usage(format!(
            "the change was made, but recording it in the audit trail failed: {e}"
        ))
    })?;
    Ok(())
}

/// The plural "s" for a count.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn user_command(db: &Database, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Create {
            username,
            admin,
            must_change,
            ..
        } => {
            users::check_username(&username)?;
            let pw = read_password_stdin()?;
            password::check_policy(&username, &pw).map_err(CliError::Usage)?;
            let hash = password::hash_password(&pw)
                .map_err(|e| CliError::Usage(format!("could not hash the password: {e}")))?;
            let role = if admin { Role::Admin } else { Role::Staff };
            let user = users::create(&mut *db.get()?, &username, &hash, role, must_change)?;
            println!("created {} account {:?}", role.as_str(), user.username);
            cli_audit(
                db,
                "custos user create",
                format!("Created the {} account {:?}.", role.as_str(), user.username),
            )
        }
        UserCommand::SetPassword {
            username,
            must_change,
            ..
        } => {
            let user = find_user(db, &username)?;
            let pw = read_password_stdin()?;
            password::check_policy(&username, &pw).map_err(CliError::Usage)?;
            let hash = password::hash_password(&pw)
                .map_err(|e| CliError::Usage(format!("could not hash the password: {e}")))?;
            users::set_password(&mut *db.get()?, user.id, &hash, must_change, None)?;
            println!("password of {username:?} changed; its sessions and API tokens have ended");
            cli_audit(
                db,
                "custos user set-password",
                format!(
                    "Set the password of {username:?}{}; their sessions and API tokens have ended.",
                    if must_change {
                        " (must change it at next login)"
                    } else {
                        ""
                    }
                ),
            )
        }
        UserCommand::Deactivate { username } => {
            let user = find_user(db, &username)?;
            users::set_active(&mut *db.get()?, user.id, false)?;
            println!("deactivated {username:?}; its sessions and API tokens have ended");
            cli_audit(
                db,
                "custos user deactivate",
                format!("Deactivated {username:?}. Their sessions and API tokens have ended."),
            )
        }
        UserCommand::Activate { username } => {
            let user = find_user(db, &username)?;
            users::set_active(&mut *db.get()?, user.id, true)?;
            println!("activated {username:?}");
            cli_audit(
                db,
                "custos user activate",
                format!("Reactivated {username:?}."),
            )
        }
        UserCommand::SetRole { username, role } => {
            let user = find_user(db, &username)?;
            let role = Role::parse(&role)
                .ok_or_else(|| CliError::Usage("role is admin or staff".into()))?;
            users::set_role(&mut *db.get()?, user.id, role)?;
            println!("{username:?} is now {}", role.as_str());
            cli_audit(
                db,
                "custos user set-role",
                format!("{username:?} is now {}.", role.as_str()),
            )
        }
        UserCommand::EndSessions {
            username,
            sessions_only,
        } => {
            let user = find_user(db, &username)?;
            let message = if sessions_only {
                let sessions = crate::admin::accounts::end_sessions(&mut *db.get()?, user.id)
                    .map_err(DbError::from)?;
                format!(
                    "Ended {sessions} session{} of {username:?}.",
                    plural(sessions)
                )
            } else {
                let (sessions, tokens) =
                    users::end_access(&mut *db.get()?, user.id).map_err(DbError::from)?;
                format!(
                    "Ended {sessions} session{} and revoked {tokens} API token{} of {username:?}.",
                    plural(sessions),
                    plural(tokens)
                )
            };
            println!("{message}");
            cli_audit(db, "custos user end-sessions", message)
        }
        UserCommand::Tokens { username } => {
            let user = find_user(db, &username)?;
            let live = crate::admin::accounts::live_tokens(&mut *db.get()?, user.id)
                .map_err(DbError::from)?;
            if live.is_empty() {
                println!("{username:?} has no live API tokens.");
                return Ok(());
            }
            println!(
                "{:<8} {:<12} {:<17} {:<17} LAST USED (UTC)",
                "ID", "TOKEN", "CREATED (UTC)", "EXPIRES (UTC)"
            );
            let fmt = |t: &chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
            for t in live {
                println!(
                    "{:<8} {:<12} {:<17} {:<17} {}",
                    t.id,
                    format!("{}…", t.prefix),
                    fmt(&t.created_at),
                    t.expires_at
                        .as_ref()
                        .map(fmt)
                        .unwrap_or_else(|| "never".into()),
                    t.last_used_at
                        .as_ref()
                        .map(fmt)
                        .unwrap_or_else(|| "never".into()),
                );
            }
            Ok(())
        }
        UserCommand::RevokeToken { username, id } => {
            let user = find_user(db, &username)?;
            let mut conn = db.get()?;
            let token = crate::admin::accounts::find_token(&mut conn, user.id, id)
                .map_err(DbError::from)?
                .ok_or_else(|| {
                    CliError::Usage(format!("{username:?} has no API token with id {id}"))
                })?;
            if !crate::admin::accounts::revoke_token(&mut conn, user.id, id)
                .map_err(DbError::from)?
            {
                return Err(CliError::Usage(format!(
                    "the API token {id} of {username:?} was already revoked or expired"
                )));
            }
            drop(conn);
            let message = format!(
                "Revoked the API token {}… (#{id}) of {username:?}.",
                token.prefix
            );
            println!("{message}");
            cli_audit(db, "custos user revoke-token", message)
        }
        UserCommand::List => {
            let all = crate::admin::accounts::list(&mut *db.get()?).map_err(DbError::from)?;
            if all.is_empty() {
                println!(
                    "No accounts yet. Create one with: custos user create --username NAME --admin --password-stdin"
                );
                return Ok(());
            }
            println!(
                "{:<30} {:<6} {:<8} {:<17} {:<8} TOKENS",
                "USERNAME", "ROLE", "ACTIVE", "LAST LOGIN (UTC)", "SESSIONS"
            );
            for a in all {
                let u = a.user;
                println!(
                    "{:<30} {:<6} {:<8} {:<17} {:<8} {}",
                    u.username,
                    u.role,
                    if u.is_active { "yes" } else { "no" },
                    u.last_login_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into()),
                    a.sessions,
                    a.tokens,
                );
            }
            Ok(())
        }
    }
}

/// A progress bar on stderr when it is a terminal; silent otherwise.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn bytes(total: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self(bar)
    }
    fn rows(total: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn advance(&self, done: u64) {
        self.0.set_position(done);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn import_command(db: &Database, cmd: ImportCommand) -> Result<(), CliError> {
    let started = Instant::now();
    let (kind, path) = match &cmd {
        ImportCommand::Operators { file } => ("operators", file),
        ImportCommand::Customers { file } => ("customers", file),
        ImportCommand::Users { file } => ("accounts", file),
        ImportCommand::Tokens { file, .. } => ("API keys", file),
    };
    let (file, size) = import::open_file(path)?;
    let bar = Bar::bytes(size);
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut conn = db.get()?;
    let result = match cmd {
        ImportCommand::Operators { .. } => import::import_operators(&mut conn, reader, &bar),
        ImportCommand::Customers { .. } => import::import_customers(&mut conn, reader, &bar),
        ImportCommand::Users { .. } => import::django::import_users(&mut conn, reader, &bar),
        ImportCommand::Tokens {
            expires_in_days, ..
        } => {
            let expires_at = expires_in_days
                .map(|days| crate::db::now() + chrono::Duration::days(i64::from(days)));
            import::django::import_tokens(&mut conn, reader, &bar, expires_at)
        }
    };
    drop(conn);
    match result {
        Ok(done) => {
            println!(
                "imported {} {kind} from {} in {:.1} s",
                done.rows,
                path.display(),
                started.elapsed().as_secs_f64()
            );
            let command = match kind {
                "accounts" => "custos import users",
                "API keys" => "custos import tokens",
                _ => return Ok(()),
            };
            cli_audit(
                db,
                command,
                format!(
                    "Imported {} {kind} from the Django original ({}).",
                    done.rows,
                    path.display()
                ),
            )
        }
        Err(e @ ImportError::Row { .. }) => Err(CliError::Usage(format!(
            "{}: {e}; nothing was imported",
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

fn seed_command(db: &Database, args: SeedArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let plan = SeedPlan {
        customers: args.customers,
        operators: args.operators,
        seed: args.seed,
    };
    let bar = Bar::rows(args.customers);
    seed::seed(&mut *db.get()?, plan, &bar)?;
    println!(
        "seeded {} operators and {} customers (seed {}) in {:.1} s",
        args.operators,
        args.customers,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
