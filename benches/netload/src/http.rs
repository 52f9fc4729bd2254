//! HTTP/1.1: the closed-loop client for the `http_*` modes of
//! `python -m ferrio bench net` (an aiohttp or uvicorn app on each loop).
//!
//! `netload http-client HOST:PORT CONNS SIZE SECONDS [WARMUP]`: `CONNS`
//! keep-alive connections, each sending `POST /echo` with a `SIZE`-byte
//! body and waiting for the whole response before the next request. The
//! response must be `200` with a `Content-Length` body equal to the request
//! body, every byte checked (the app echoes the body). Chunked responses,
//! other statuses and closed connections end the run with an error: the
//! apps the bench starts never send them.

use crate::closedloop::{self, Exchange};
use crate::report::pattern;
use crate::sys::die;

/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// One keep-alive connection's request and the response coming back.
struct Post {
    /// The whole request: head and body.
    req: Vec<u8>,
    /// Where the body starts in `req`.
    body_at: usize,
    /// The response head so far (until its blank line).
    head: Vec<u8>,
    /// Body length from the response head, once parsed.
    body_len: Option<usize>,
    body_recvd: usize,
}

impl Post {
    fn new(size: usize) -> Self {
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        );
        let mut req = head.into_bytes();
        let body_at = req.len();
        req.resize(body_at + size, 0);
        Post {
            req,
            body_at,
            head: Vec::with_capacity(512),
            body_len: None,
            body_recvd: 0,
        }
    }
}

impl Exchange for Post {
    fn start(&mut self, id: usize, seq: u64) {
        for (i, b) in self.req[self.body_at..].iter_mut().enumerate() {
            *b = pattern(id, seq, i);
        }
        self.head.clear();
        self.body_len = None;
        self.body_recvd = 0;
    }

    fn request(&self) -> &[u8] {
        &self.req
    }

    /// Takes response bytes; true when the response is complete.
    fn take(&mut self, id: usize, seq: u64, mut data: &[u8], errors: &mut u64) -> bool {
        if self.body_len.is_none() {
            let old = self.head.len();
            self.head.extend_from_slice(data);
            let Some(end) = find_blank_line(&self.head, old.saturating_sub(3)) else {
                if self.head.len() > MAX_HEAD {
                    die("response head too long");
                }
                return false;
            };
            let len = parse_head(&self.head[..end]);
            let expected = self.req.len() - self.body_at;
            if len != expected {
                die(&format!("response body of {len} bytes, {expected} sent"));
            }
            self.body_len = Some(len);
            // What followed the head is body.
            let consumed = end + 4 - old;
            data = &data[consumed..];
        }
        let len = self.body_len.unwrap_or(0);
        if self.body_recvd + data.len() > len {
            die("more response bytes than the Content-Length");
        }
        for (j, b) in data.iter().enumerate() {
            if *b != pattern(id, seq, self.body_recvd + j) {
                *errors += 1;
                break;
            }
        }
        self.body_recvd += data.len();
        self.body_recvd == len
    }
}

/// Index of the `\r\n\r\n` ending the head, searching from `from`.
fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + from)
}

/// Checks the status line and returns the Content-Length.
fn parse_head(head: &[u8]) -> usize {
    let text = std::str::from_utf8(head).unwrap_or_else(|_| die("response head is not UTF-8"));
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200")) {
        die(&format!("unexpected status line: {status}"));
    }
    let mut len = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            die("chunked responses are not supported");
        } else if name.eq_ignore_ascii_case("connection")
            && value.trim().eq_ignore_ascii_case("close")
        {
            die("the server closes the connection");
        }
    }
    len.unwrap_or_else(|| die("response without Content-Length"))
}

pub fn client(args: &[String]) {
    let usage = "usage: netload http-client HOST:PORT CONNS SIZE SECONDS [WARMUP]";
    closedloop::run(args, usage, 1..=64 * 1024 * 1024, Post::new);
}
