//! Fake services' servers: axum routers served on loopback, in a thread (and runtime) of
//! their own so that both plain and async tests can use them, until dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

pub struct LoopbackServer {
    addresses: Vec<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Serves each router on its address (port 0: a free one); the bound addresses are
    /// in [`LoopbackServer::base`] in the same order.
    pub fn start(servers: Vec<(SocketAddr, axum::Router)>) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime for a fake service");
            runtime.block_on(async move {
                let mut addresses = Vec::new();
                let mut serving = tokio::task::JoinSet::new();
                for (address, router) in servers {
                    let listener = tokio::net::TcpListener::bind(address).await.expect("bind a loopback port");
                    addresses.push(listener.local_addr().expect("a bound address"));
                    serving.spawn(async move { axum::serve(listener, router).await });
                }
                ready_tx.send(addresses).expect("the starter waits");
                tokio::select! {
                    _ = serving.join_next() => {}
                    _ = shutdown_rx => {}
                }
            });
        });
        let addresses = ready_rx.recv_timeout(Duration::from_secs(10)).expect("the fake service started");
        Self { addresses, shutdown: Some(shutdown_tx), thread: Some(thread) }
    }

    /// `http://<address>` of the `index`th router.
    pub fn base(&self, index: usize) -> String {
        format!("http://{}", self.addresses[index])
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Faults a test queued for a fake's next requests: each for so many requests, in order.
#[derive(Debug)]
pub struct Faults<F>(Vec<(F, u32)>);

impl<F> Default for Faults<F> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<F: Copy> Faults<F> {
    pub fn push(&mut self, fault: F, times: u32) {
        self.0.push((fault, times));
    }

    /// The fault the next request meets, if any.
    pub fn take(&mut self) -> Option<F> {
        let (fault, times) = self.0.first_mut()?;
        let fault = *fault;
        *times = times.saturating_sub(1);
        if *times == 0 {
            self.0.remove(0);
        }
        Some(fault)
    }
}

/// A loopback port of the test's own that answers every request 200 and counts the
/// connections it accepted: "anywhere" for a test that shows nothing reached it.
pub struct CountingListener {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.read(&mut [0; 8192]);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Self { port, accepted }
    }

    /// How many connections it accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
