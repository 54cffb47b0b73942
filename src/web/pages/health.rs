//! `/healthz`: no data, no authentication; says whether the database answers.

use actix_web::HttpResponse;
use actix_web::web;
use diesel::connection::SimpleConnection;

use crate::db::DbError;
use crate::web::AppState;

pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let db = state
        .db
        .run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
        .await;
    match db {
        Ok(()) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ok"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .body(r#"{"status":"unavailable"}"#)
        }
    }
}
