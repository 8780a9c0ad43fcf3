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
use ots_protocol::error::Retriability;
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
            let retry = match err.retriability() {
                Retriability::Always => true,
                Retriability::IfIdempotent => idempotent,
                Retriability::Never => false,
            };
            match self.config.retry.delay(attempt, &err) {
                Some(delay) if retry => {
                    tracing::debug!(path, attempt, error = %err, ?delay, "retrying request");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    async fn send_once(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let headers = auth::request_headers(
            &self.config.credentials,
            &self.config.instance_name,
            path,
            body,
            chrono::Utc::now(),
        );
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
        let header = |name: &str| {
            response_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let request_id = header(auth::HEADER_REQUEST_ID).map(str::to_owned);
        if (200..300).contains(&status) {
            self.check_response(path, &response_headers, &bytes)?;
            return Ok(bytes);
        }
        match PbError::decode(bytes.as_slice()) {
            Ok(e) => Err(ClientError::Service {
                code: e.code,
                message: e.message.unwrap_or_default(),
                request_id,
                http_status: status,
            }),
            Err(_) => Err(ClientError::Service {
                code: String::new(),
                message: format!(
                    "HTTP {status} with a body that is not a Tablestore error ({} bytes)",
                    bytes.len()
                ),
                request_id,
                http_status: status,
            }),
        }
    }

    /// The checks the SDKs make on a successful answer: its body digest and, when present,
    /// its signature.
    fn check_response(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), ClientError> {
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if let Some(md5) = find(auth::HEADER_CONTENT_MD5)
            && md5 != auth::content_md5(body)
        {
            return Err(ClientError::InvalidResponse(format!(
                "{path}: body does not match its x-ots-contentmd5"
            )));
        }
        if let Some(authorization) = find("authorization") {
            let expected = auth::response_authorization(
                path,
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &self.config.credentials,
            );
            if authorization != expected {
                return Err(ClientError::InvalidResponse(format!(
                    "{path}: response signature does not verify"
                )));
            }
        }
        Ok(())
    }
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
