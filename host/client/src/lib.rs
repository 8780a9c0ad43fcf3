//! Async Tablestore client: table, row and tunnel APIs over the real wire
//! protocol, with request signing, response checks and retries.
//!
//! [`Client::call`] is the one transport every API goes through: it signs the protobuf body,
//! POSTs it, checks the response's digest and signature, decodes the service's error body and
//! retries what the retry policy allows. The typed methods in [`rows`], [`tables`] and [`tunnel`]
//! wrap it.

mod error;
pub mod retry;
pub mod rows;
pub mod tables;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use ots_protocol::auth::{self, Credentials};
use ots_protocol::error::ErrorCode;
use ots_protocol::pb::table::Error as PbError;
use prost::Message;

pub use error::ClientError;
pub use retry::RetryPolicy;

/// Where and as whom a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://inst.cn-hangzhou.ots.aliyuncs.com` or `http://127.0.0.1:8800`.
    pub endpoint: String,
    /// Instance name sent in `x-ots-instancename`.
    pub instance_name: String,
    /// Access key used to sign requests.
    pub credentials: Credentials,
    /// Region id (e.g. `cn-hangzhou`). Like the SDKs, requests are signed with the V4 scheme
    /// when a region is set and with the V2 scheme otherwise.
    pub region: Option<String>,
    /// Which failures are retried, how often and how long to wait.
    pub retry: RetryPolicy,
    /// Time limit of one HTTP exchange.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// A config with the default retry policy and a 30 s request timeout.
    pub fn new(
        endpoint: impl Into<String>,
        instance_name: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            instance_name: instance_name.into(),
            credentials,
            region: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A Tablestore client. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .field("instance_name", &self.config.instance_name)
            .finish()
    }
}

impl Client {
    /// Builds a client; fails only if the endpoint is not an http(s) URL.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ClientError::InvalidArgument(format!(
                "endpoint {endpoint:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            config: Arc::new(ClientConfig { endpoint, ..config }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// This client with another retry policy (sharing the connection pool).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            http: self.http.clone(),
            config: Arc::new(ClientConfig {
                retry,
                ..(*self.config).clone()
            }),
        }
    }

    /// Sends one API call, retrying per the retry policy. `path` is the API path, e.g.
    /// `"/PutRow"` or `"/tunnel/connect"`; `idempotent` says whether a request whose outcome is
    /// unknown (timeout, internal error, broken connection) may be sent again.
    pub async fn call<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        idempotent: bool,
    ) -> Result<Resp, ClientError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let body = request.encode_to_vec();
        let mut attempt = 0u32;
        loop {
            let err = match self.send_once(path, &body).await {
                Ok(bytes) => {
                    return Resp::decode(bytes.as_slice()).map_err(|e| ClientError::Decode {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    });
                }
                Err(err) => err,
            };
            let retry = err.retriability().allows_retry(idempotent);
            match self.config.retry.delay(attempt, &err) {
                Some(delay) if retry => {
                    // An unreachable server is an outage worth a line per attempt; a busy one
                    // answering is routine under load.
                    if matches!(err, ClientError::Transport(_)) {
                        tracing::warn!(endpoint = %self.config.endpoint, path, attempt, error = %err, ?delay, "request failed; retrying");
                    } else {
                        tracing::debug!(path, attempt, error = %err, ?delay, "retrying request");
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    async fn send_once(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let credentials = &self.config.credentials;
        let instance = &self.config.instance_name;
        let now = chrono::Utc::now();
        let (headers, signing_key) = match &self.config.region {
            Some(region) => {
                auth::request_headers_v4(credentials, instance, region, path, body, now)
            }
            None => (
                auth::request_headers(credentials, instance, path, body, now),
                credentials.access_key_secret.clone(),
            ),
        };
        let mut request = self
            .http
            .post(format!("{}{path}", self.config.endpoint))
            .body(body.to_vec());
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("{path}: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let response_headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(format!("{path}: {}", error_chain(&e))))?
            .to_vec();
        let request_id = find_header(&response_headers, auth::HEADER_REQUEST_ID).map(str::to_owned);
        check_response(
            path,
            status,
            &response_headers,
            &bytes,
            &credentials.access_key_id,
            &signing_key,
        )?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        match PbError::decode(bytes.as_slice()) {
            Ok(e) => Err(ClientError::Service {
                code: ErrorCode::parse(&e.code),
                message: e.message.unwrap_or_default(),
                request_id,
                http_status: status,
            }),
            Err(_) => Err(ClientError::Service {
                code: ErrorCode::Unknown(String::new()),
                message: format!(
                    "HTTP {status} with a body that is not a Tablestore error ({} bytes)",
                    bytes.len()
                ),
                request_id,
                http_status: status,
            }),
        }
    }
}

/// The checks the SDKs make on every answer before reading its body: on success the digest,
/// request id, date and content type headers and the `Authorization` signature must all be
/// present; the digest and date (within 15 minutes of the local clock) are checked whenever
/// present, and the signature too, except on 403 answers, which a server that could not
/// authenticate the request cannot sign.
fn check_response(
    path: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    access_key_id: &str,
    signing_key: &str,
) -> Result<(), ClientError> {
    let invalid = |what: String| ClientError::InvalidResponse(format!("{path}: {what}"));
    let find = |name: &str| find_header(headers, name);
    let success = (200..300).contains(&status);
    if success {
        for name in [
            auth::HEADER_CONTENT_MD5,
            auth::HEADER_REQUEST_ID,
            auth::HEADER_DATE,
            auth::HEADER_CONTENT_TYPE,
            auth::HEADER_AUTHORIZATION,
        ] {
            if find(name).is_none() {
                return Err(invalid(format!(
                    "HTTP {status} answer lacks the {name} header"
                )));
            }
        }
    }
    if let Some(md5) = find(auth::HEADER_CONTENT_MD5)
        && md5 != auth::content_md5(body)
    {
        return Err(invalid("body does not match its x-ots-contentmd5".into()));
    }
    if let Some(date) = find(auth::HEADER_DATE) {
        let sent = auth::parse_date(date)
            .ok_or_else(|| invalid(format!("x-ots-date {date:?} is not a valid date")))?;
        let skew = (chrono::Utc::now() - sent).num_seconds().abs();
        if skew > auth::MAX_CLOCK_SKEW_SECS {
            return Err(invalid(format!(
                "x-ots-date {date} is {skew} s from the local clock"
            )));
        }
    }
    if status == 403 {
        return Ok(());
    }
    if let Some(authorization) = find(auth::HEADER_AUTHORIZATION) {
        let expected = auth::response_authorization(
            path,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            access_key_id,
            signing_key,
        );
        if authorization != expected {
            return Err(invalid("response signature does not verify".into()));
        }
    }
    Ok(())
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
