//! The token-protected JSON API, compatible with the Django REST framework
//! original.

use actix_web::{HttpRequest, web};

use super::RouteInfo;
use crate::web::error::ApiError;

/// Every API route (filled in by the API module's handlers).
pub const ROUTES: &[RouteInfo] = &[];

pub fn register(_cfg: &mut web::ServiceConfig) {}

/// Unknown API paths answer DRF's JSON 404.
pub async fn not_found(_req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found.".into()))
}
