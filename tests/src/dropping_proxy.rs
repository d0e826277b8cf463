//! A forwarding proxy in front of a real HTTP/1.1 server (OpenBao) that loses answers:
//! a write to a managed secret (`POST`/`PUT` to a path containing `/data/patchbay/`) is
//! forwarded and performed, its whole answer is read, and then the client's connection is
//! closed without it, as when a network drops between a store and Patchbay. Everything
//! else is forwarded and answered. Stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The requests whose answers are lost.
const DROPPED_PATH: &str = "/data/patchbay/";
/// No test waits longer on a socket.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DroppingProxy {
    /// `http://127.0.0.1:<port>`: the address to register a store with.
    pub address: String,
    state: Arc<State>,
}

struct State {
    /// The server behind it, as `host:port`.
    upstream: String,
    /// How long a lost answer is held before the connection is closed.
    hold: Mutex<Duration>,
    /// While set, every connection is closed at once, nothing forwarded.
    offline: AtomicBool,
    dropped: Mutex<Vec<String>>,
    stopped: AtomicBool,
}

impl DroppingProxy {
    /// A proxy on a free loopback port in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(State {
            upstream: upstream.trim_start_matches("http://").trim_end_matches('/').to_owned(),
            hold: Mutex::new(Duration::ZERO),
            offline: AtomicBool::new(false),
            dropped: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let state = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = state.serve(client);
                });
            }
        });
        Self { address, state }
    }

    /// Holds each lost answer this long before closing the connection (so a caller can
    /// give up while its write has already landed).
    pub fn hold_lost_answers(&self, hold: Duration) {
        *self.state.hold.lock().unwrap() = hold;
    }

    /// Offline: every connection is closed at once and nothing reaches the server.
    pub fn set_offline(&self, offline: bool) {
        self.state.offline.store(offline, Ordering::SeqCst);
    }

    /// The paths (`/v1/<mount>/data/patchbay/<id>`) of the writes whose answers were lost.
    pub fn lost_answers(&self) -> Vec<String> {
        self.state.dropped.lock().unwrap().clone()
    }
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the stop.
        let _ = TcpStream::connect(self.address.trim_start_matches("http://"));
    }
}

/// One request as read from the client: its head (request line and headers, without
/// the blank line) and its body.
struct Request {
    method: String,
    path: String,
    headers: Vec<String>,
    body: Vec<u8>,
}

impl State {
    /// Serves the client's requests one by one until it closes, or an answer is lost.
    fn serve(&self, client: TcpStream) -> std::io::Result<()> {
        client.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut reader = BufReader::new(client.try_clone()?);
        let mut client = client;
        while let Some(request) = read_request(&mut reader)? {
            if self.offline.load(Ordering::SeqCst) {
                return Ok(());
            }
            let answer = self.forward(&request)?;
            let loses = matches!(request.method.as_str(), "POST" | "PUT") && request.path.contains(DROPPED_PATH);
            if loses {
                self.dropped.lock().unwrap().push(request.path.split('?').next().unwrap_or_default().to_owned());
                std::thread::sleep(*self.hold.lock().unwrap());
                return Ok(());
            }
            client.write_all(&answer)?;
            client.flush()?;
        }
        Ok(())
    }

    /// Sends the request upstream on a connection of its own and returns the whole answer.
    fn forward(&self, request: &Request) -> std::io::Result<Vec<u8>> {
        let mut upstream = TcpStream::connect(&self.upstream)?;
        upstream.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
        for header in &request.headers {
            if !header.to_ascii_lowercase().starts_with("connection:") {
                head.push_str(header);
                head.push_str("\r\n");
            }
        }
        // The server then ends the answer by closing: read to the end, it is whole.
        head.push_str("Connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes())?;
        upstream.write_all(&request.body)?;
        let mut answer = Vec::new();
        upstream.read_to_end(&mut answer)?;
        Ok(answer)
    }
}

/// The next request, or None when the client closed its connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned());
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end().to_owned();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        headers.push(header);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, headers, body }))
}
