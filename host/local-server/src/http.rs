//! The HTTP face of the server: `POST /<Api>` with protobuf bodies, request authentication,
//! signed responses, error bodies with the service's codes and statuses, and fault injection.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ots_protocol::auth::{self, VerifiedRequest};
use ots_protocol::error::ErrorCode;
use ots_protocol::pb::table::Error as PbError;
use prost::Message;

use crate::api;
use crate::error::ApiError;
use crate::state::ServerState;

/// The largest request body accepted: 4 MB of row data (the service's limit per write, checked
/// by the APIs) plus room for the protobuf around it.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Builds the router serving every API.
pub fn router(state: Arc<ServerState>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        // Bodies are read with the server's own limit, so an oversized one gets the service's
        // error body rather than a plain-text 413.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().to_owned();
    let request_id = format!("{:032x}", rand::random::<u128>());
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(err) => return error_response(&path, &request_id, None, err),
    };
    let header_pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let verified = auth::verify_request(&path, &header_pairs, &body, chrono::Utc::now(), |id| {
        state.access_keys.get(id).cloned()
    });
    let signer = match verified {
        Ok(v) if v.instance_name != state.instance_name => {
            return error_response(
                &path,
                &request_id,
                None,
                ApiError::new(
                    ErrorCode::AuthFailed,
                    format!("The instance '{}' is not found.", v.instance_name),
                ),
            );
        }
        Ok(v) => v,
        Err(e) => {
            return error_response(
                &path,
                &request_id,
                None,
                ApiError::new(ErrorCode::AuthFailed, e.to_string()),
            );
        }
    };
    if !state.faults.latency.is_zero() {
        tokio::time::sleep(state.faults.latency).await;
    }
    if state.faults.error_rate > 0.0 && rand::random::<f64>() < state.faults.error_rate {
        // The tunnel service's own "busy" is OTSTunnelServerUnavailable.
        let code = match path.starts_with("/tunnel/") {
            true => ErrorCode::TunnelServerUnavailable,
            false => ErrorCode::ServerBusy,
        };
        let err = ApiError::new(code, "Server is busy (injected fault).");
        return error_response(&path, &request_id, Some(&signer), err);
    }
    let handler_state = state.clone();
    let handler_path = path.clone();
    let result =
        tokio::task::spawn_blocking(move || api::dispatch(&handler_state, &handler_path, &body))
            .await
            .unwrap_or_else(|e| Err(ApiError::new(ErrorCode::InternalServerError, e.to_string())));
    match result {
        Ok(bytes) => signed_response(&path, &request_id, &signer, StatusCode::OK, bytes),
        Err(err) => error_response(&path, &request_id, Some(&signer), err),
    }
}

/// Most bytes read of an oversized body before the connection is given up: reading the rest
/// lets the client finish sending and read the error instead of a broken pipe.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

/// Reads a request body of at most [`MAX_REQUEST_BYTES`]; a longer one is read to its end (up
/// to [`MAX_DRAINED_BYTES`]) and answered with `OTSRequestBodyTooLarge`.
async fn read_body(mut body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut data = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::invalid(format!("Cannot read the request body: {e}.")))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        seen += chunk.len();
        if seen <= MAX_REQUEST_BYTES {
            data.extend_from_slice(&chunk);
        } else if seen > MAX_DRAINED_BYTES {
            break;
        }
    }
    if seen > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            ErrorCode::RequestTooLarge,
            "The size of POST data is too large.",
        ));
    }
    Ok(Bytes::from(data))
}

fn error_response(
    path: &str,
    request_id: &str,
    signer: Option<&VerifiedRequest>,
    err: ApiError,
) -> Response {
    tracing::debug!(path, code = %err.code, message = %err.message, "request failed");
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = PbError {
        code: err.code.as_str().to_owned(),
        message: Some(err.message),
    }
    .encode_to_vec();
    match signer {
        Some(signer) => signed_response(path, request_id, signer, status, body),
        None => {
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(auth::HEADER_REQUEST_ID, request_id.parse().expect("hex"));
            response
        }
    }
}

/// A response with the headers the SDKs check: body digest, request id, date, content type
/// and the `Authorization` signature.
fn signed_response(
    path: &str,
    request_id: &str,
    signer: &VerifiedRequest,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    let headers = auth::sign_response(
        path,
        &body,
        request_id,
        &signer.access_key_id,
        &signer.signing_key,
        chrono::Utc::now(),
        [],
    );
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(name),
            axum::http::HeaderValue::try_from(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
