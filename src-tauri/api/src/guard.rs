//! What every request passes before a handler sees it: the Host header (on loopback,
//! only loopback names, so a web page cannot reach the API through DNS rebinding), the
//! body read within a time and size limit, and an answer within the request timeout.
//! Every refusal has the API's `{message, code, requestId}` body.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, MAX_BODY_BYTES};

#[derive(Clone, Copy)]
pub struct Guard {
    /// Where the server listens: a loopback listener serves loopback names only.
    pub listen: SocketAddr,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
}

pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if guard.listen.ip().is_loopback() && !loopback_host(&request) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            "this API answers on 127.0.0.1, localhost or [::1] only; send the Host header of one of those",
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(guard.body_read_timeout, to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {} KiB", MAX_BODY_BYTES / 1024),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request body did not arrive within {} s", guard.body_read_timeout.as_secs_f32()),
            )
            .into_response();
        }
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request could not be answered within {} s; its outcome is unknown, check with GET before retrying",
                guard.request_timeout.as_secs_f32()
            ),
        )
        .into_response(),
    }
}

fn loopback_host(request: &Request) -> bool {
    // HTTP/2 carries the authority in the URI instead of a Host header.
    let host = match request.headers().get(HOST).and_then(|value| value.to_str().ok()) {
        Some(host) => host,
        None => match request.uri().authority() {
            Some(authority) => authority.as_str(),
            None => return false,
        },
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').map_or("", |(inside, _)| inside),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "::1")
}

/// 405 with the API's error body (axum's own has none).
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see docs/openapi.yaml",
    )
}
