//! Why a body is not an event ([`EventError`]), and why an event's data
//! does not fit a typed view ([`ViewError`]).

use std::fmt;

use super::Event;

/// `data` does not fit the typed view of the event's slug.
///
/// `Display` names the problem without quoting the data; [`ViewError::detail`]
/// has serde_json's message, which may quote a fragment of the body (log it
/// at debug level only).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("event data does not fit the typed view of its slug")]
pub struct ViewError {
    pub(super) detail: String,
    pub(super) view: Option<&'static str>,
}

impl ViewError {
    /// The name of the view that did not fit (`"Task"`, ...), when a
    /// handler's argument was being built; `None` from [`Event::data_as`].
    pub fn view(&self) -> Option<&'static str> {
        self.view
    }

    /// Names the view, unless an inner one was named already.
    pub(crate) fn in_view(mut self, view: &'static str) -> Self {
        self.view.get_or_insert(view);
        self
    }

    /// serde_json's description, which may quote part of the event body.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Debug for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewError { .. }")
    }
}

/// Why a body is not an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body is not UTF-8.
    #[error("body is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is, in bytes from the start.
        offset: usize,
    },
    /// The body is not valid JSON.
    #[error("body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The JSON is valid but not an event: not an object, a required field
    /// missing, or an envelope field repeated or of the wrong type (`id`,
    /// `type` and `action` are strings; `retries` a non-negative integer or
    /// null; the other envelope fields strings or null; `data` anything).
    #[error(
        "body is not a ricloud event (line {line}, column {column}): it must be an object whose `id`, `type` and `action` are strings, `retries` a non-negative integer or null, and other envelope fields strings or null, each at most once"
    )]
    NotAnEvent {
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
    },
    /// The body ends before the JSON does (includes an empty body).
    #[error("body ends before the JSON event does")]
    Truncated,
    /// The `id` is an empty string.
    #[error("event `id` is empty")]
    EmptyId,
    /// The `id`, `type` or `action` holds a control character (a NUL, a
    /// newline, an escape, ...): such an event cannot be stored in a text
    /// column or named in a log line safely.
    #[error(
        "event `{field}` holds a control character: not an event that can be stored or logged"
    )]
    ControlCharacter {
        /// `id`, `type` or `action`.
        field: &'static str,
    },
    /// The `id`, `type` or `action` is longer than [`Event::MAX_NAME_LEN`]
    /// bytes.
    #[error("event `{field}` is longer than {} bytes", Event::MAX_NAME_LEN)]
    TooLong {
        /// `id`, `type` or `action`.
        field: &'static str,
    },
}

impl EventError {
    pub(super) fn from_json(e: serde_json::Error) -> Self {
        let (line, column) = (e.line(), e.column());
        match e.classify() {
            serde_json::error::Category::Eof => Self::Truncated,
            serde_json::error::Category::Data => Self::NotAnEvent { line, column },
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                Self::NotJson { line, column }
            }
        }
    }
}
