//! The API's error body: `{ "message", "code", "requestId" }`, plus `providerMessage`
//! when Twilio said something.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub message: String,
    pub code: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: code.to_owned(),
            request_id: uuid::Uuid::new_v4().to_string(),
            provider_message: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send 'Authorization: User <user secret>, Organization <organization secret>' (see `patchbay api credentials`), or 'User <user secret>, Element <instance token>' for one instance",
        )
    }
}

impl From<patchbay_core::Error> for ApiError {
    fn from(err: patchbay_core::Error) -> Self {
        let code = err.code();
        let status = match code {
            "not_found" => StatusCode::NOT_FOUND,
            "asset_destination_refused" => StatusCode::FORBIDDEN,
            "name_taken" | "store_version_conflict" => StatusCode::CONFLICT,
            "twilio_unreachable" | "twilio_server_error" | "twilio_rate_limited" | "store_unreachable" => {
                StatusCode::BAD_GATEWAY
            }
            "vault_unavailable" | "vault_locked" | "vault_secret_missing" | "store_failed" | "store_sealed" => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let mut api = Self::new(status, code, err.to_string());
        api.provider_message = err.provider_message();
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, request_id = %self.request_id, "{}", self.message);
        }
        (self.status, axum::Json(&self)).into_response()
    }
}
