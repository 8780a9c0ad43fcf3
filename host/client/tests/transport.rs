//! The client against a scripted in-process HTTP responder: signing, response checks, error
//! decoding, retries, and batch writes that resend only the failed rows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ots_client::rows::ReadOptions;
use ots_client::{Client, ClientConfig, ClientError, RetryPolicy};
use ots_protocol::auth::{self, Credentials};
use ots_protocol::error::ErrorCode;
use ots_protocol::model::{Cell, PrimaryKey, PrimaryKeyColumn, PrimaryKeyValue, RowChange, Value};
use ots_protocol::pb::table::*;
use ots_protocol::plainbuffer;
use prost::Message;

fn credentials() -> Credentials {
    Credentials {
        access_key_id: "ak".into(),
        access_key_secret: "sk".into(),
        security_token: None,
    }
}

/// What the responder saw and what it answers next.
#[derive(Default)]
struct Script {
    /// Bodies received, per path, in order.
    requests: Vec<(String, Vec<u8>)>,
    /// Answers to give, consumed front to back: (status, body). Empty: 200 with empty body.
    answers: Vec<(u16, Vec<u8>)>,
    /// Break the body digest of successful answers.
    corrupt_md5: bool,
    /// How many requests carried a V4 signature.
    v4_signed: usize,
    /// Leave the `Authorization` signature off answers.
    omit_authorization: bool,
    /// Shift the answers' `x-ots-date` from the real time.
    date_offset: chrono::TimeDelta,
}

type Shared = Arc<Mutex<Script>>;

async fn handle(state: Shared, path: String, headers: HeaderMap, body: Bytes) -> Response {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    let verified = auth::verify_request(&path, &pairs, &body, chrono::Utc::now(), |id| {
        (id == "ak").then(|| "sk".to_owned())
    });
    let (status, answer, script) = {
        let mut script = state.lock().unwrap();
        script.requests.push((path.clone(), body.to_vec()));
        script.v4_signed += usize::from(headers.contains_key(auth::HEADER_SIGNATURE_V4));
        let (status, answer) = if script.answers.is_empty() {
            (200, Vec::new())
        } else {
            script.answers.remove(0)
        };
        let flags = (
            script.corrupt_md5,
            script.omit_authorization,
            script.date_offset,
        );
        (status, answer, flags)
    };
    let (corrupt, omit_authorization, date_offset) = script;
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => {
            let body = Error {
                code: "OTSAuthFailed".into(),
                message: Some(e.to_string()),
            }
            .encode_to_vec();
            return (StatusCode::FORBIDDEN, body).into_response();
        }
    };
    let mut response_headers = auth::sign_response(
        &path,
        &answer,
        "req-1",
        &verified.access_key_id,
        &verified.signing_key,
        chrono::Utc::now() + date_offset,
        [],
    );
    if omit_authorization {
        response_headers.retain(|(k, _)| k != auth::HEADER_AUTHORIZATION);
    }
    if corrupt {
        for (k, v) in &mut response_headers {
            if k == auth::HEADER_CONTENT_MD5 {
                *v = auth::content_md5(b"something else");
            }
        }
    }
    let mut response = (StatusCode::from_u16(status).unwrap(), answer).into_response();
    for (k, v) in &response_headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}

async fn start(script: Script) -> (Client, Shared) {
    let state: Shared = Arc::new(Mutex::new(script));
    let app = axum::Router::new().fallback({
        let state = state.clone();
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            handle(state.clone(), uri.path().to_owned(), headers, body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut config = ClientConfig::new(format!("http://{addr}"), "inst", credentials());
    config.retry = RetryPolicy {
        base: Duration::from_millis(1),
        throttled_base: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retries: 5,
    };
    (Client::new(config).unwrap(), state)
}

fn error_body(code: &str) -> Vec<u8> {
    Error {
        code: code.into(),
        message: Some(format!("{code} from the test")),
    }
    .encode_to_vec()
}

fn key(i: i64) -> PrimaryKey {
    PrimaryKey(vec![PrimaryKeyColumn {
        name: "id".into(),
        value: PrimaryKeyValue::Integer(i),
    }])
}

fn put(i: i64) -> RowChange {
    RowChange::Put {
        primary_key: key(i),
        cells: vec![Cell {
            name: "v".into(),
            value: Value::Integer(i),
            timestamp: Some(1000),
        }],
    }
}

#[tokio::test]
async fn signed_request_and_verified_response() {
    let answer = ListTableResponse {
        table_names: vec!["a".into(), "b".into()],
    };
    let (client, state) = start(Script {
        answers: vec![(200, answer.encode_to_vec())],
        ..Script::default()
    })
    .await;
    assert_eq!(client.list_table().await.unwrap(), vec!["a", "b"]);
    assert_eq!(state.lock().unwrap().requests[0].0, "/ListTable");
    assert_eq!(state.lock().unwrap().v4_signed, 0);
}

#[tokio::test]
async fn wrong_secret_is_rejected_with_the_service_error() {
    let (client, _) = start(Script::default()).await;
    let mut config = client.config().clone();
    config.credentials.access_key_secret = "wrong".into();
    let err = Client::new(config).unwrap().list_table().await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::AuthFailed), "{err}");
}

#[tokio::test]
async fn v4_signed_requests_get_answers_signed_with_the_derived_key() {
    let answer = ListTableResponse {
        table_names: vec!["v4".into()],
    };
    let (client, state) = start(Script {
        answers: vec![(200, answer.encode_to_vec())],
        ..Script::default()
    })
    .await;
    let mut config = client.config().clone();
    config.region = Some("cn-test".into());
    let client = Client::new(config).unwrap();
    assert_eq!(client.list_table().await.unwrap(), vec!["v4"]);
    assert_eq!(state.lock().unwrap().v4_signed, 1);
}

#[tokio::test]
async fn unsigned_or_stale_answers_are_rejected() {
    let (client, _) = start(Script {
        omit_authorization: true,
        ..Script::default()
    })
    .await;
    let err = client.list_table().await.unwrap_err();
    assert!(err.to_string().contains("authorization"), "{err}");

    let (client, _) = start(Script {
        date_offset: chrono::TimeDelta::minutes(20),
        ..Script::default()
    })
    .await;
    let err = client.list_table().await.unwrap_err();
    assert!(err.to_string().contains("from the local clock"), "{err}");
}

#[tokio::test]
async fn corrupted_answer_is_detected() {
    let (client, _) = start(Script {
        corrupt_md5: true,
        ..Script::default()
    })
    .await;
    let err = client.list_table().await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidResponse(_)), "{err}");
}

#[tokio::test]
async fn retriable_errors_are_retried_and_others_are_not() {
    let answer = ListTableResponse {
        table_names: vec!["t".into()],
    };
    let (client, state) = start(Script {
        answers: vec![
            (503, error_body("OTSServerBusy")),
            (500, error_body("OTSInternalServerError")),
            (200, answer.encode_to_vec()),
        ],
        ..Script::default()
    })
    .await;
    assert_eq!(client.list_table().await.unwrap(), vec!["t"]);
    assert_eq!(state.lock().unwrap().requests.len(), 3);

    // A write whose outcome is unknown is not resent by the generic transport.
    state.lock().unwrap().answers = vec![(500, error_body("OTSInternalServerError"))];
    let err = client
        .write_row("t", &put(1), Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InternalServerError));
    assert_eq!(state.lock().unwrap().requests.len(), 4);

    state.lock().unwrap().answers = vec![(400, error_body("OTSParameterInvalid"))];
    let err = client
        .get_row("t", &key(1), &ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ParameterInvalid));
    assert_eq!(state.lock().unwrap().requests.len(), 5);
}

fn batch_answer(ok: &[bool]) -> Vec<u8> {
    BatchWriteRowResponse {
        tables: vec![TableInBatchWriteRowResponse {
            table_name: "t".into(),
            rows: ok
                .iter()
                .map(|&ok| RowInBatchWriteRowResponse {
                    is_ok: ok,
                    error: (!ok).then(|| Error {
                        code: "OTSServerBusy".into(),
                        message: None,
                    }),
                    ..Default::default()
                })
                .collect(),
        }],
    }
    .encode_to_vec()
}

#[tokio::test]
async fn batch_write_resends_only_failed_rows() {
    let (client, state) = start(Script {
        answers: vec![
            (200, batch_answer(&[true, false, true, false])),
            (200, batch_answer(&[true, false])),
            (200, batch_answer(&[true])),
        ],
        ..Script::default()
    })
    .await;
    let changes: Vec<_> = (0..4).map(put).collect();
    let outcomes = client
        .write_rows_with_retry("t", &changes, true)
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));

    let requests = state.lock().unwrap().requests.clone();
    let sent: Vec<Vec<RowChange>> = requests
        .iter()
        .map(|(_, body)| {
            BatchWriteRowRequest::decode(body.as_slice())
                .unwrap()
                .tables[0]
                .rows
                .iter()
                .map(|r| {
                    plainbuffer::decode_row_change(&r.row_change, plainbuffer::RowChangeKind::Put)
                        .unwrap()
                })
                .collect()
        })
        .collect();
    assert_eq!(
        sent,
        vec![changes.clone(), vec![put(1), put(3)], vec![put(3)]]
    );
}

#[tokio::test]
async fn batch_size_limits_are_checked_before_sending() {
    let (client, state) = start(Script::default()).await;
    let changes: Vec<_> = (0..201).map(put).collect();
    let err = client.batch_write_row("t", &changes).await.unwrap_err();
    assert!(err.to_string().contains("1 to 200 rows, got 201"), "{err}");
    assert!(
        client
            .batch_write_row("t", &[] as &[RowChange])
            .await
            .is_err()
    );
    assert!(state.lock().unwrap().requests.is_empty());
}

#[tokio::test]
async fn a_failed_resend_is_reported_on_the_resent_rows_only() {
    let (client, state) = start(Script {
        answers: vec![
            (200, batch_answer(&[true, false, true])),
            (400, error_body("OTSParameterInvalid")),
        ],
        ..Script::default()
    })
    .await;
    let changes: Vec<_> = (0..3).map(put).collect();
    let outcomes = client
        .write_rows_with_retry("t", &changes, true)
        .await
        .unwrap();
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().code(),
        Some(&ErrorCode::ParameterInvalid)
    );
    assert_eq!(state.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn a_first_request_with_an_unknown_outcome_is_resent_only_when_idempotent() {
    let script = || Script {
        answers: vec![
            (500, error_body("OTSInternalServerError")),
            (200, batch_answer(&[true, true])),
        ],
        ..Script::default()
    };
    let changes: Vec<_> = (0..2).map(put).collect();

    let (client, state) = start(script()).await;
    let outcomes = client
        .write_rows_with_retry("t", &changes, true)
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(state.lock().unwrap().requests.len(), 2);

    let (client, state) = start(script()).await;
    let err = client
        .write_rows_with_retry("t", &changes, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::InternalServerError));
    assert_eq!(state.lock().unwrap().requests.len(), 1);
}
