//! A real SMTP listener for tests: it speaks enough SMTP for lettre, keeps what it receives,
//! and can refuse service (421) or hang, to exercise retries and leases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Answer every connection with 421 and hang up.
    Refuse,
    /// Accept the connection and never greet.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct Shared {
    mode: Option<Mode>,
    received: Vec<Received>,
    connections: usize,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SmtpSink {
    pub async fn start(mode: Mode) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared { mode: Some(mode), ..Default::default() }));
        let sink = SmtpSink { port, shared: shared.clone() };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, shared).await;
                });
            }
        });
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = Some(mode);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.lock().unwrap().connections
    }

    /// Messages addressed to `to`, waiting up to `timeout` for at least `count` of them.
    pub async fn wait_for(&self, to: &str, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got: Vec<Received> =
                self.received().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).collect();
            if got.len() >= count || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn serve(stream: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) -> std::io::Result<()> {
    let mode = {
        let mut s = shared.lock().unwrap();
        s.connections += 1;
        s.mode.unwrap_or(Mode::Accept)
    };
    let (read, mut write) = stream.into_split();
    match mode {
        Mode::Refuse => {
            write.write_all(b"421 test sink refusing service\r\n").await?;
            return Ok(());
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return Ok(());
        }
        Mode::Accept => {}
    }
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&line[10..]);
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&line[8..]));
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            shared.lock().unwrap().received.push(Received { from: from.clone(), to: to.clone(), data });
            write.write_all(b"250 queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 OK\r\n").await?;
        }
    }
}

fn angle(s: &str) -> String {
    let s = s.trim();
    let start = s.find('<').map_or(0, |i| i + 1);
    let end = s[start..].find('>').map_or(s.len(), |i| start + i);
    s[start..end].to_owned()
}

/// The text of a MIME message with quoted-printable soft breaks and escapes undone, enough to
/// find links in it.
pub fn decoded(data: &str) -> String {
    let joined = data.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::with_capacity(joined.len());
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(v as char);
            i += 3;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// The `id` and `token` of the first front-end link to `page` in a received message.
pub fn link_params(data: &str, page: &str) -> (String, String) {
    let text = decoded(data);
    let marker = format!("/{page}?");
    let start = text.find(&marker).unwrap_or_else(|| panic!("no /{page} link in:\n{text}")) + marker.len();
    let query: String =
        text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "=&_-%".contains(*c)).collect();
    let mut id = String::new();
    let mut token = String::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("id", v)) => id = v.to_owned(),
            Some(("token", v)) => token = v.to_owned(),
            _ => {}
        }
    }
    (id, token)
}
