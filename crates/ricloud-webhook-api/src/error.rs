//! What can go wrong talking to the API.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::transport::TransportError;

/// Why a request to the API failed.
///
/// No variant holds the token: it travels only in the `Authorization`
/// header, which reqwest marks sensitive and which no error reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The API answered with an error: its status and its error body
    /// (`{"error": "<code>", "message": "...", "params": {...}}`).
    #[error("the API answered {status}{}", api_detail(code, message, params))]
    Api {
        /// The HTTP status (400, 401, 403, 404, 429, 5xx, ...).
        status: StatusCode,
        /// The API's error code (`invalid-parameter`, `limit-exceeded`, ...);
        /// empty when the body was not an error object.
        code: String,
        /// The API's message, or the start of the body when it was not an
        /// error object.
        message: String,
        /// The API's `params`, `null` when there were none.
        params: serde_json::Value,
        /// What `Retry-After` asked for (seconds or an HTTP date), when it
        /// was sent.
        retry_after: Option<Duration>,
    },
    /// The answer was a success but not the resource expected.
    #[error("the API's answer is not {what}")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A webhook config that should have come with its secret came without.
    #[error("the API sent webhook config {id} without its secret")]
    NoSecret {
        /// The config's id.
        id: String,
    },
    /// The exchange itself failed: no connection, a timeout, a broken or
    /// oversized answer, or a transport that could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The client could not be built (no token, a bad base URL).
    #[error("cannot set up the API client: {message}")]
    Setup {
        /// What is wrong.
        message: String,
    },
    /// A list's paging went wrong: a page's cursor did not advance, came
    /// back, or the list ran past the client's page cap
    /// ([`ClientBuilder::max_pages`](crate::ClientBuilder::max_pages)).
    #[error("the API's list paging is broken: {message}")]
    Paging {
        /// What the API did.
        message: String,
    },
    /// A webhook config test did not finish within the time given.
    #[error("the webhook config test did not finish within {after:?}")]
    TestTimedOut {
        /// The time given.
        after: Duration,
    },
    /// A webhook config's test ended with the config in a state other
    /// than `valid`: the receiver did not answer the test event with 2xx.
    #[error(
        "webhook config {id} is {state} after its test: the receiver did not answer the test event with a 2xx"
    )]
    NotValid {
        /// The config's id.
        id: String,
        /// Its state.
        state: String,
    },
}

/// ` (<code>): <message> <params>`, each part only when there is one.
fn api_detail(code: &str, message: &str, params: &serde_json::Value) -> String {
    let mut text = String::new();
    if !code.is_empty() {
        text.push_str(&format!(" ({code})"));
    }
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    if !params.is_null() {
        text.push_str(&format!(" {params}"));
    }
    text
}

impl ApiError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What `Retry-After` asked for, on an API error that sent it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the resource does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Reads an error answer: the API's error object when it is one, else
    /// the start of the body as the message.
    pub(crate) fn from_answer(
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            params: serde_json::Value,
        }
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => Self::Api {
                status,
                code: e.error,
                message: e.message,
                params: e.params,
                retry_after,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                Self::Api {
                    status,
                    code: String::new(),
                    message: text.chars().take(200).collect(),
                    params: serde_json::Value::Null,
                    retry_after,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_error_object() {
        let e = ApiError::from_answer(
            StatusCode::BAD_REQUEST,
            br#"{"error": "invalid-parameter", "message": "Bad state.", "params": {"state": "x"}}"#,
            None,
        );
        assert_eq!(e.code(), Some("invalid-parameter"));
        assert_eq!(
            e.to_string(),
            r#"the API answered 400 Bad Request (invalid-parameter): Bad state. {"state":"x"}"#
        );
    }

    #[test]
    fn an_answer_that_is_not_an_error_object_keeps_its_start() {
        let e = ApiError::from_answer(StatusCode::BAD_GATEWAY, b"<html>upstream down", None);
        assert_eq!(e.code(), Some(""));
        assert_eq!(
            e.to_string(),
            "the API answered 502 Bad Gateway: <html>upstream down"
        );
    }
}
