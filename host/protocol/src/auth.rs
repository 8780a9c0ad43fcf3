//! Request signing and verification: the `x-ots-*` headers and their HMAC-SHA1 signature
//! (the SDKs' default "V2" scheme), the "V4" scheme the SDKs switch to when given a region,
//! and the response signature clients check.
//!
//! The string to sign for a request is `path "\n" "POST" "\n" query "\n" headers "\n"`, where
//! `headers` is every `x-ots-*` header but the signature, lower-cased as `name:value`, sorted and
//! joined by newlines. A response is signed over `headers "\n" path` and returned as
//! `Authorization: OTS <access key id>:<signature>`.
//!
//! V4 signs `string_to_sign + "ots"` with HMAC-SHA256 (header `x-ots-signaturev4`, with
//! `x-ots-signdate` and `x-ots-signregion` among the signed headers). Its key is derived from the
//! secret, the UTC day and the region ([`v4_signing_key`]); responses to a V4 request are signed
//! with HMAC-SHA1 keyed by that derived key instead of the secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// The API version every request declares.
pub const API_VERSION: &str = "2015-12-31";
/// Request header: request time, `%Y-%m-%dT%H:%M:%S.000Z`.
pub const HEADER_DATE: &str = "x-ots-date";
/// Request header: API version.
pub const HEADER_API_VERSION: &str = "x-ots-apiversion";
/// Request header: access key id.
pub const HEADER_ACCESS_KEY_ID: &str = "x-ots-accesskeyid";
/// Request header: instance name.
pub const HEADER_INSTANCE_NAME: &str = "x-ots-instancename";
/// Request and response header: base64 MD5 of the body.
pub const HEADER_CONTENT_MD5: &str = "x-ots-contentmd5";
/// Request header: the signature.
pub const HEADER_SIGNATURE: &str = "x-ots-signature";
/// Request header: the V4 signature.
pub const HEADER_SIGNATURE_V4: &str = "x-ots-signaturev4";
/// Request header: the UTC day (`%Y%m%d`) a V4 key was derived for.
pub const HEADER_SIGN_DATE: &str = "x-ots-signdate";
/// Request header: the region a V4 key was derived for.
pub const HEADER_SIGN_REGION: &str = "x-ots-signregion";
/// Response header: `OTS <access key id>:<response signature>`.
pub const HEADER_AUTHORIZATION: &str = "authorization";
/// The value of [`HEADER_CONTENT_TYPE`] on the service's responses.
pub const RESPONSE_CONTENT_TYPE: &str = "protocol buffer";
/// Request header: STS security token.
pub const HEADER_STS_TOKEN: &str = "x-ots-ststoken";
/// Response header: request id.
pub const HEADER_REQUEST_ID: &str = "x-ots-requestid";
/// Response header: content type.
pub const HEADER_CONTENT_TYPE: &str = "x-ots-contenttype";
/// How far a request's date may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

const PREFIX: &str = "x-ots-";
/// `%.f` reads a fraction of any length (or none): the Go SDK's layout `...05.123Z` prints
/// month, day and hour digits where milliseconds were meant, 1 to 6 of them
/// (aliyun-tablestore-go-sdk `tablestore/util.go`, `tunnel/api.go`), and the other SDKs send 3.
const DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.fZ";

/// An access key pair, with an optional STS token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Access key secret.
    pub access_key_secret: String,
    /// STS security token, for temporary credentials.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a request's authentication was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The access key id is not configured.
    #[error("unknown access key id {0:?}")]
    UnknownAccessKey(String),
    /// The signature does not match.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// The request date cannot be parsed.
    #[error("invalid {HEADER_DATE} {0:?}")]
    BadDate(String),
    /// The request date is too far from the server clock.
    #[error(
        "request time {date} is {skew_secs} s from server time (limit {MAX_CLOCK_SKEW_SECS} s)"
    )]
    StaleDate {
        /// The date header.
        date: String,
        /// Distance from the server clock in seconds.
        skew_secs: i64,
    },
    /// The body does not match its declared MD5.
    #[error("content MD5 mismatch")]
    ContentMd5Mismatch,
}

/// Base64 of the MD5 of a body, as `x-ots-contentmd5` carries it.
pub fn content_md5(body: &[u8]) -> String {
    BASE64.encode(Md5::digest(body))
}

/// Formats a time as `x-ots-date` carries it.
pub fn format_date(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

/// Parses an `x-ots-date` value: `YYYY-MM-DDThh:mm:ss`, a fraction of 0 to 9 digits, `Z`.
pub fn parse_date(date: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(date, DATE_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

fn canonical_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut items: Vec<String> = headers
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            // The signatures are not part of what they sign; skipping both lets the server
            // recompute either from the headers it received.
            let signed = k.starts_with(PREFIX) && k != HEADER_SIGNATURE && k != HEADER_SIGNATURE_V4;
            signed.then(|| format!("{k}:{}", v.trim()))
        })
        .collect();
    items.sort();
    items.join("\n")
}

fn hmac_sha1(key: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The V4 signing key for one UTC day (`%Y%m%d`) and region. Like the SDKs, it is the base64
/// *text* of the derived digest, and that text is what keys the HMACs.
pub fn v4_signing_key(secret: &str, sign_date: &str, region: &str) -> String {
    let mut key = hmac_sha256(format!("aliyun_v4{secret}").as_bytes(), sign_date);
    for part in [region, "ots", "aliyun_v4_request"] {
        key = hmac_sha256(&key, part);
    }
    BASE64.encode(key)
}

/// The V4 request signature over a path and its `x-ots-*` headers (which must include
/// `x-ots-signdate` and `x-ots-signregion`), keyed with [`v4_signing_key`].
pub fn request_signature_v4<'a>(
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    signing_key: &str,
) -> String {
    let to_sign = format!("{path}\nPOST\n\n{}\nots", canonical_headers(headers));
    BASE64.encode(hmac_sha256(signing_key.as_bytes(), &to_sign))
}

/// The request signature over a path and its `x-ots-*` headers.
pub fn request_signature<'a>(
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let to_sign = format!("{path}\nPOST\n\n{}\n", canonical_headers(headers));
    hmac_sha1(secret, &to_sign)
}

/// The response signature over a response's `x-ots-*` headers and the request path.
pub fn response_signature<'a>(
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let to_sign = format!("{}\n{path}", canonical_headers(headers));
    hmac_sha1(secret, &to_sign)
}

/// The `Authorization` response header value, `OTS <access key id>:<signature>`, for a
/// response with these `x-ots-*` headers; `signing_key` is the one the request was signed with.
pub fn response_authorization<'a>(
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    access_key_id: &str,
    signing_key: &str,
) -> String {
    let signature = response_signature(path, headers, signing_key);
    format!("OTS {access_key_id}:{signature}")
}

/// Every header a signed request carries, signature included.
pub fn request_headers(
    credentials: &Credentials,
    instance_name: &str,
    path: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (HEADER_DATE, format_date(now)),
        (HEADER_API_VERSION, API_VERSION.to_owned()),
        (HEADER_ACCESS_KEY_ID, credentials.access_key_id.clone()),
        (HEADER_INSTANCE_NAME, instance_name.to_owned()),
        (HEADER_CONTENT_MD5, content_md5(body)),
    ];
    if let Some(token) = &credentials.security_token {
        headers.push((HEADER_STS_TOKEN, token.clone()));
    }
    let signature = request_signature(
        path,
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        &credentials.access_key_secret,
    );
    headers.push((HEADER_SIGNATURE, signature));
    headers
}

/// Every header a V4-signed request carries (what the SDKs send when configured with a
/// region), and the key the response to it is signed with.
pub fn request_headers_v4(
    credentials: &Credentials,
    instance_name: &str,
    region: &str,
    path: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> (Vec<(&'static str, String)>, String) {
    let mut headers = request_headers(credentials, instance_name, path, body, now);
    headers.retain(|(k, _)| *k != HEADER_SIGNATURE);
    let day = now.format("%Y%m%d").to_string();
    let key = v4_signing_key(&credentials.access_key_secret, &day, region);
    headers.push((HEADER_SIGN_DATE, day));
    headers.push((HEADER_SIGN_REGION, region.to_owned()));
    let signature = request_signature_v4(path, headers.iter().map(|(k, v)| (*k, v.as_str())), &key);
    headers.push((HEADER_SIGNATURE_V4, signature));
    (headers, key)
}

/// The headers a server adds to every answer so the SDKs accept it: the body digest, request
/// id, date and content type, then `Authorization` signing them (and any `x-ots-*` headers in
/// `extra`, which are returned too). `signing_key` is [`VerifiedRequest::signing_key`]. The
/// SDKs skip the signature check on 403 answers, so an answer to a request that failed
/// authentication needs no valid key.
pub fn sign_response<'a>(
    path: &str,
    body: &[u8],
    request_id: &str,
    access_key_id: &str,
    signing_key: &str,
    now: DateTime<Utc>,
    extra: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = [
        (HEADER_CONTENT_MD5, content_md5(body)),
        (HEADER_REQUEST_ID, request_id.to_owned()),
        (HEADER_DATE, format_date(now)),
        (HEADER_CONTENT_TYPE, RESPONSE_CONTENT_TYPE.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        extra
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())),
    )
    .collect();
    let authorization = response_authorization(
        path,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        access_key_id,
        signing_key,
    );
    headers.push((HEADER_AUTHORIZATION.to_owned(), authorization));
    headers
}

/// What a verified request proved about its sender.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The access key that signed it.
    pub access_key_id: String,
    /// The instance it addressed.
    pub instance_name: String,
    /// The key the response must be signed with ([`sign_response`]): the secret for V2, the
    /// derived key for V4.
    pub signing_key: String,
}

impl std::fmt::Debug for VerifiedRequest {
    // A V2 signing key is the secret itself; it must never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedRequest")
            .field("access_key_id", &self.access_key_id)
            .field("instance_name", &self.instance_name)
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

/// Checks a request's headers, body digest, date and signature (server side), accepting a V4
/// signature when `x-ots-signaturev4` is present and a V2 one otherwise. `secret_of` looks up
/// the secret of an access key id; `headers` yields `(name, value)` pairs with names in any
/// case.
pub fn verify_request<'a>(
    path: &str,
    headers: &[(&'a str, &'a str)],
    body: &[u8],
    now: DateTime<Utc>,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<VerifiedRequest, AuthError> {
    let get = |name: &'static str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .ok_or(AuthError::MissingHeader(name))
    };
    let access_key_id = get(HEADER_ACCESS_KEY_ID)?;
    let instance_name = get(HEADER_INSTANCE_NAME)?;
    let date = get(HEADER_DATE)?;
    let md5 = get(HEADER_CONTENT_MD5)?;
    let v4_signature = get(HEADER_SIGNATURE_V4).ok();
    let signature = match v4_signature {
        Some(signature) => signature,
        None => get(HEADER_SIGNATURE)?,
    };
    get(HEADER_API_VERSION)?;

    let secret = secret_of(access_key_id)
        .ok_or_else(|| AuthError::UnknownAccessKey(access_key_id.to_owned()))?;
    let (expected, signing_key) = if v4_signature.is_some() {
        let key = v4_signing_key(&secret, get(HEADER_SIGN_DATE)?, get(HEADER_SIGN_REGION)?);
        (
            request_signature_v4(path, headers.iter().copied(), &key),
            key,
        )
    } else {
        (
            request_signature(path, headers.iter().copied(), &secret),
            secret,
        )
    };
    if expected != signature {
        return Err(AuthError::SignatureMismatch);
    }
    let sent = parse_date(date).ok_or_else(|| AuthError::BadDate(date.to_owned()))?;
    let skew_secs = (now - sent).num_seconds().abs();
    if skew_secs > MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::StaleDate {
            date: date.to_owned(),
            skew_secs,
        });
    }
    if md5 != content_md5(body) {
        return Err(AuthError::ContentMd5Mismatch);
    }
    Ok(VerifiedRequest {
        access_key_id: access_key_id.to_owned(),
        instance_name: instance_name.to_owned(),
        signing_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "id".into(),
            access_key_secret: "secret".into(),
            security_token: None,
        }
    }

    fn secrets(id: &str) -> Option<String> {
        (id == "id").then(|| "secret".to_owned())
    }

    fn signed(body: &[u8], now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        request_headers(&creds(), "inst", "/PutRow", body, now)
    }

    fn verify(
        headers: &[(&'static str, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedRequest, AuthError> {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        verify_request("/PutRow", &pairs, body, now, secrets)
    }

    #[test]
    fn dates_carry_a_fraction_of_any_length() {
        // aliyun-tablestore-go-sdk tablestore/util.go formats "2006-01-02T15:04:05.123Z": Go
        // reads 1, 2 and 3 as month, day and hour, so 1 to 6 "fraction" digits arrive.
        let whole = parse_date("2026-12-01T21:49:59Z").unwrap();
        for (text, nanos) in [
            ("2026-12-01T21:49:59.1Z", 100_000_000),
            ("2026-12-01T21:49:59.465Z", 465_000_000),
            ("2026-12-01T21:49:59.12319Z", 123_190_000),
            ("2026-12-01T21:49:59.123456789Z", 123_456_789),
        ] {
            let parsed = parse_date(text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!((parsed - whole).num_nanoseconds(), Some(nanos), "{text}");
        }
        assert_eq!(parse_date("2026-12-01 21:49:59Z"), None);
        assert_eq!(parse_date("2026-12-01T21:49:59.5"), None, "no zone");
    }

    #[test]
    fn signed_requests_verify() {
        let now = Utc::now();
        let verified = verify(&signed(b"body", now), b"body", now).unwrap();
        assert_eq!(verified.instance_name, "inst");
        assert_eq!(verified.access_key_id, "id");
    }

    #[test]
    fn tampering_is_detected() {
        let now = Utc::now();
        let headers = signed(b"body", now);
        assert_eq!(
            verify(&headers, b"other", now),
            Err(AuthError::ContentMd5Mismatch)
        );
        let mut wrong = headers.clone();
        wrong[3].1 = "other-instance".into();
        assert_eq!(
            verify(&wrong, b"body", now),
            Err(AuthError::SignatureMismatch)
        );
        let missing: Vec<_> = headers
            .iter()
            .filter(|(k, _)| *k != HEADER_SIGNATURE)
            .cloned()
            .collect();
        assert_eq!(
            verify(&missing, b"body", now),
            Err(AuthError::MissingHeader(HEADER_SIGNATURE))
        );
    }

    #[test]
    fn stale_and_unknown_are_rejected() {
        let now = Utc::now();
        let old = now - chrono::Duration::minutes(16);
        assert!(matches!(
            verify(&signed(b"", old), b"", now),
            Err(AuthError::StaleDate { .. })
        ));
        let other = Credentials {
            access_key_id: "nobody".into(),
            ..creds()
        };
        let headers = request_headers(&other, "inst", "/PutRow", b"", now);
        assert_eq!(
            verify(&headers, b"", now),
            Err(AuthError::UnknownAccessKey("nobody".into()))
        );
    }

    #[test]
    fn v4_requests_verify_and_tampering_is_detected() {
        let now = Utc::now();
        let (headers, key) = request_headers_v4(&creds(), "inst", "cn-test", "/GetRow", b"b", now);
        assert!(headers.iter().all(|(k, _)| *k != HEADER_SIGNATURE));
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let verified = verify_request("/GetRow", &pairs, b"b", now, secrets).unwrap();
        assert_eq!(verified.signing_key, key);
        assert_ne!(key, "secret");

        let mut moved = pairs.clone();
        for (k, v) in &mut moved {
            if *k == HEADER_SIGN_REGION {
                *v = "cn-other";
            }
        }
        assert_eq!(
            verify_request("/GetRow", &moved, b"b", now, secrets),
            Err(AuthError::SignatureMismatch)
        );
        let no_region: Vec<_> = pairs
            .iter()
            .filter(|(k, _)| *k != HEADER_SIGN_REGION)
            .copied()
            .collect();
        assert_eq!(
            verify_request("/GetRow", &no_region, b"b", now, secrets),
            Err(AuthError::MissingHeader(HEADER_SIGN_REGION))
        );
    }

    #[test]
    fn v2_verification_yields_the_secret_as_response_key() {
        let now = Utc::now();
        let headers = signed(b"", now);
        let verified = verify(&headers, b"", now).unwrap();
        assert_eq!(verified.signing_key, "secret");
        assert!(!format!("{verified:?}").contains("secret"));
    }
}
