//! The HTTP application: shared state, the route table, and how the
//! middleware is stacked.
//!
//! Every route is declared once in `route_table!`, with who may call it.
//! The same table registers the handlers and is exported as `ROUTES`, so a
//! test can walk it and prove every non-public route refuses anonymous
//! requests.

pub mod api;
pub mod burst;
pub mod error;
pub mod middleware;
pub mod pages;
pub mod statics;

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::password::PasswordWork;
use crate::config::Settings;
use crate::db::Database;

/// State shared by every worker.
pub struct AppState {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub passwords: PasswordWork,
    /// The one-time token for `/setup`, while no account exists.
    pub setup_token: Mutex<Option<String>>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, setup, health, static files).
    Public,
    /// A signed-in user (session cookie).
    User,
    /// A signed-in administrator.
    Admin,
    /// An API token.
    Token,
}

/// One registered route, for documentation and the route-table test.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub access: Access,
}

macro_rules! route_table {
    ($( $path:literal [$access:ident] { $( $method:ident => $handler:path ),+ $(,)? } )*) => {
        /// Every page route of the application (the API's are in `api::ROUTES`).
        pub const PAGE_ROUTES: &[RouteInfo] = &[
            $( RouteInfo { path: $path, methods: &[$( stringify!($method) ),+], access: Access::$access } ),*
        ];

        fn register_pages(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        $( .route(web::method(actix_web::http::Method::$method).to($handler)) )+
                        .default_service(web::to(pages::method_not_allowed)),
                );
            )*
        }
    };
}

route_table! {
    "/healthz" [Public] { GET => pages::health::healthz }
    "/login" [Public] { GET => pages::auth::login_form, POST => pages::auth::login_submit }
    "/logout" [User] { POST => pages::auth::logout }
    "/setup" [Public] { GET => pages::setup::setup_form, POST => pages::setup::setup_submit }
    "/" [User] { GET => pages::home::home }
    "/customers" [User] { GET => pages::customers::list }
    "/customers/export.csv" [User] { GET => pages::export::export_csv }
    "/customers/{id}" [User] { GET => pages::customers::detail }
    "/operators" [User] { GET => pages::operators::list }
    "/operators/{id}" [User] { GET => pages::operators::detail }
    "/account" [User] { GET => pages::account::account }
    "/account/password" [User] { POST => pages::account::change_password }
    "/account/tokens" [User] { POST => pages::account::create_token }
    "/account/tokens/revoke" [User] { POST => pages::account::revoke_token }
    "/admin" [Admin] { GET => crate::admin::index }
    "/admin/users" [Admin] { GET => crate::admin::users::list, POST => crate::admin::users::create }
    "/admin/users/{id}" [Admin] { GET => crate::admin::users::detail }
    "/admin/users/{id}/password" [Admin] { POST => crate::admin::users::reset_password }
    "/admin/users/{id}/deactivate" [Admin] { POST => crate::admin::users::deactivate }
    "/admin/users/{id}/activate" [Admin] { POST => crate::admin::users::activate }
    "/admin/users/{id}/role" [Admin] { POST => crate::admin::users::set_role }
    "/admin/users/{id}/end-sessions" [Admin] { POST => crate::admin::users::end_sessions }
    "/admin/users/{id}/tokens/{token_id}/revoke" [Admin] { POST => crate::admin::users::revoke_token }
    "/admin/audit" [Admin] { GET => crate::admin::audit::browse }
    "/admin/audit/export.csv" [Admin] { GET => crate::admin::audit::export }
}

/// All routes, pages and API.
pub fn all_routes() -> Vec<RouteInfo> {
    PAGE_ROUTES
        .iter()
        .chain(api::ROUTES.iter())
        .copied()
        .collect()
}

/// Registers every route. The session middleware wraps only the pages:
/// the API authenticates by token alone and never reads the cookie.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    session: actix_session::SessionMiddleware<crate::auth::session_store::DbSessionStore>,
) {
    cfg.service(
        web::scope("/api")
            .configure(api::register)
            .default_service(web::to(api::not_found)),
    )
    .service(web::resource("/static/{file}").route(web::get().to(statics::serve)))
    .service(
        web::scope("")
            .wrap(session)
            .wrap(actix_web::middleware::from_fn(
                middleware::session_store_errors,
            ))
            .configure(register_pages)
            .default_service(web::to(pages::not_found)),
    );
}

/// The absolute URL of this request (scheme from `ClientInfo`), as DRF's
/// `build_absolute_uri` gives for pagination links.
pub fn absolute_base(req: &HttpRequest) -> String {
    let scheme = middleware::ClientInfo::of(req).scheme();
    format!("{scheme}://{}", req.connection_info().host())
}

pub fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// A streamed CSV download named `<prefix>-<UTC timestamp>.csv` (customer
/// export and audit export). Caching headers come from the security
/// middleware like every other answer.
pub fn csv_attachment<S, E>(prefix: &str, body: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<web::Bytes, E>> + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    let filename = format!(
        "{prefix}-{}.csv",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body)
}
