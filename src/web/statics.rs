//! Static assets, embedded in the binary (no file-system access at run
//! time, nothing from a CDN).

use actix_web::{HttpResponse, web};

use super::error::PageError;

const FILES: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../static/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
];

pub async fn serve(file: web::Path<String>) -> Result<HttpResponse, PageError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .ok_or(PageError::NotFound)?;
    Ok(HttpResponse::Ok().content_type(*content_type).body(*body))
}
