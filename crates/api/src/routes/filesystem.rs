//! `/filesystem/{system_name}/ops/…`: blocking, bounded file operations as the calling
//! user (wire reference §2.3).

use axum::Router;

use crate::AppState;

#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct FilesystemDoc;

pub fn router() -> Router<AppState> {
    Router::new()
}
