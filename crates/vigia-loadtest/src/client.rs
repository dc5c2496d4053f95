//! A minimal WebSocket client for the load test: the opening handshake, masked text frames
//! out, unmasked frames in. Ten thousand of them share the machine with the server under test,
//! so each costs one `read` per message and nothing else: no per-message allocation, no
//! buffer clearing, no wakers of its own.

use std::io;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A client connection after the handshake.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

/// A frame from the server.
pub enum Incoming<'a> {
    Text(&'a str),
    /// A close frame, or the connection ended.
    Closed,
    /// A frame this client does not use (ping, pong, binary).
    Other,
}

impl Client {
    /// Connects to `ws://host:port/path`, authenticating with a bearer token.
    pub async fn connect(url: &str, token: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs"))?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let stream = TcpStream::connect(host)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        stream.set_nodelay(true)?;
        let key = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
        };
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        let mut client = Client {
            stream,
            buf: vec![0; 2048],
            start: 0,
            end: 0,
        };
        client.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = find(&client.buf[..client.end], b"\r\n\r\n") {
                break i + 4;
            }
            if client.fill().await? == 0 {
                bail!("the server closed the connection during the handshake");
            }
        };
        let head = std::str::from_utf8(&client.buf[..head_end]).context("handshake reply")?;
        let status = head.lines().next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 101") {
            bail!("handshake refused: {status}");
        }
        let accept = derive_accept_key(key.as_bytes());
        let accepted = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
            })
        });
        if !accepted {
            bail!("the handshake reply lacks the expected Sec-WebSocket-Accept");
        }
        client.start = head_end;
        Ok(client)
    }

    /// Sends a text frame (masked, as every client frame must be).
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let payload = text.as_bytes();
        let mask: [u8; 4] = rand::random();
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x81);
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else if let Ok(len) = u16::try_from(payload.len()) {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&len.to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await
    }

    /// The next frame from the server.
    pub async fn next(&mut self) -> io::Result<Incoming<'_>> {
        let (opcode, payload) = loop {
            match parse(&self.buf[self.start..self.end])? {
                Some((opcode, header, len)) => {
                    let payload = self.start + header..self.start + header + len;
                    self.start = payload.end;
                    break (opcode, payload);
                }
                None => {
                    if self.fill().await? == 0 {
                        return Ok(Incoming::Closed);
                    }
                }
            }
        };
        Ok(match opcode {
            0x1 => Incoming::Text(
                std::str::from_utf8(&self.buf[payload])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            ),
            0x8 => Incoming::Closed,
            _ => Incoming::Other,
        })
    }

    /// Reads more bytes, first moving unread ones to the front (and growing the buffer if
    /// they fill it); the number read, 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// A whole frame at the start of `bytes`: its opcode, header length and payload length.
fn parse(bytes: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x80 == 0 || b1 & 0x80 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "fragmented or masked frame from the server",
        ));
    }
    let (header, len) = match b1 & 0x7f {
        126 if bytes.len() >= 4 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
        127 if bytes.len() >= 10 => {
            let mut len = [0; 8];
            len.copy_from_slice(&bytes[2..10]);
            (10, u64::from_be_bytes(len) as usize)
        }
        126 | 127 => return Ok(None),
        short => (2, short as usize),
    };
    Ok((bytes.len() >= header + len).then_some((b0 & 0x0f, header, len)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
