//! The reference server for benches/run.sh: actix-web answering every GET
//! with a small JSON body, on the address given as the first argument.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn answer() -> HttpResponse {
    let body = serde_json::json!({"id": 1, "name": "reference", "ok": true});
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    HttpServer::new(|| App::new().default_service(web::to(answer)))
        .bind(addr)?
        .run()
        .await
}
