//! Errors answered before a request reaches the router, as OperationOutcomes like every other
//! error (CONTRACT §2).
//!
//! Two kinds. A URI longer than this server accepts (`MAX_URI_BYTES`) is refused by the
//! request envelope (`envelope::around`) with a 414 and an OperationOutcome. Requests the HTTP
//! parser itself cannot take — a request line past hyper's own URI limit (64 KiB), a header
//! block past its buffer, a request line that is not HTTP — never reach any middleware: hyper
//! writes a `400`, `414` or `431` with an empty body and closes the connection. `OutcomeIo`
//! wraps each connection and gives those automatic answers the OperationOutcome body (and a
//! request id) they would otherwise lack; every other byte passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ApiError;

/// The longest request target (path and query) accepted, in bytes: the common limit of HTTP
/// servers and proxies (8 KiB). A search needs far less; anything longer is refused with 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The 414 for a request whose target is longer than `MAX_URI_BYTES`, if it is.
pub fn too_long(request: &Request) -> Option<Response> {
    let length = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    (length > MAX_URI_BYTES).then(|| too_long_uri().into_response())
}

fn too_long_uri() -> ApiError {
    ApiError::new(
        StatusCode::URI_TOO_LONG,
        "too-long",
        format!("the request URI is longer than this server accepts ({MAX_URI_BYTES} bytes)"),
    )
}

/// The listener the server accepts on: TCP connections wrapped in `OutcomeIo`.
pub struct OutcomeListener(pub TcpListener);

impl axum::serve::Listener for OutcomeListener {
    type Io = OutcomeIo<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.0).await;
        (OutcomeIo::new(stream), address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose automatic error answers from hyper are rewritten into OperationOutcomes.
pub struct OutcomeIo<I> {
    inner: I,
    /// A rewritten answer being written, how much of it is written, and how many bytes of the
    /// original answer to report as written once it is.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<I> OutcomeIo<I> {
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// hyper's automatic answers are a status line and two or three short headers.
const MAX_AUTOMATIC_HEAD: usize = 256;

/// hyper's automatic answer to a request it cannot parse, and what the body should say. Only
/// such answers match: a status line of 400, 414 or 431, `content-length: 0`, and nothing after
/// the header block. (The router's own 4xx answers always carry an OperationOutcome body.)
fn automatic_error(written: &[u8]) -> Option<(StatusCode, &'static str, &'static str)> {
    // Cheap tests first: this runs on every write of every connection.
    if written.len() > MAX_AUTOMATIC_HEAD || !written.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let (status, code, message) = match status {
        "400" => (
            StatusCode::BAD_REQUEST,
            "invalid",
            "the request is not well-formed HTTP",
        ),
        "414" => (
            StatusCode::URI_TOO_LONG,
            "too-long",
            "the request URI is longer than this server accepts",
        ),
        "431" => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too-long",
            "the request headers are larger than this server accepts",
        ),
        _ => return None,
    };
    lines
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"))
        .then_some((status, code, message))
}

/// The automatic answer `head` with an OperationOutcome body and a fresh request id.
fn with_outcome(head: &str, status: StatusCode, code: &'static str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": message}],
        "detail": message,
    })
    .to_string();
    let mut answer = String::with_capacity(head.len() + body.len() + 128);
    for line in head.trim_end().split("\r\n") {
        if !line.eq_ignore_ascii_case("content-length: 0") {
            answer.push_str(line);
            answer.push_str("\r\n");
        }
    }
    debug_assert!(status.is_client_error());
    answer.push_str("content-type: application/json\r\n");
    answer.push_str(&format!("x-request-id: {}\r\n", uuid::Uuid::new_v4()));
    answer.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    answer.push_str(&body);
    answer.into_bytes()
}

impl<I: AsyncWrite + Unpin> OutcomeIo<I> {
    /// Writes the pending rewritten answer; once all of it is out, reports the original
    /// answer's bytes as written.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, reported)) = &mut self.pending else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let reported = *reported;
        self.pending = None;
        Poll::Ready(Ok(reported))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for OutcomeIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for OutcomeIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let Some((status, code, message)) = automatic_error(buf) else {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            };
            let head = std::str::from_utf8(buf).unwrap_or_default();
            this.pending = Some((with_outcome(head, status, code, message), 0, buf.len()));
        }
        this.drain(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.pending.is_some() || first.is_some_and(|b| automatic_error(b).is_some()) {
            return Pin::new(this).poll_write(cx, first.map_or(&[][..], |b| &b[..]));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            if let Poll::Ready(Err(error)) = this.drain(cx) {
                return Poll::Ready(Err(error));
            }
            if this.pending.is_some() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const AUTOMATIC_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\n\
        content-length: 0\r\ndate: Sun, 29 Nov 2026 17:15:07 GMT\r\n\r\n";

    #[tokio::test]
    async fn hypers_automatic_answers_get_an_outcome_body() {
        let mut io = OutcomeIo::new(Vec::new());
        io.write_all(AUTOMATIC_414).await.unwrap();
        io.flush().await.unwrap();
        let written = String::from_utf8(io.inner).unwrap();
        let (head, body) = written.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("x-request-id: "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let outcome: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "too-long");
    }

    #[tokio::test]
    async fn every_other_answer_passes_untouched() {
        let answers: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n",
            b"{\"resourceType\": \"Individual\"}",
        ];
        for answer in answers {
            let mut io = OutcomeIo::new(Vec::new());
            io.write_all(answer).await.unwrap();
            assert_eq!(io.inner, answer);
        }
    }
}
