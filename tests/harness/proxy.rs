//! A TCP proxy between a store's connection pool and PostgreSQL that a test can break: cut
//! every live connection at once (what a server restart or a network drop does to a client),
//! and refuse new connections for a while (a server still starting). The shared PostgreSQL
//! server itself is never touched: other tests run against it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; it stops when dropped.
pub struct PgProxy {
    address: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: SocketAddr,
    refusing: AtomicBool,
    /// Bumped to cut every connection open at that moment.
    cuts: watch::Sender<u64>,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl PgProxy {
    /// Listens on a free local port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream,
            refusing: AtomicBool::new(false),
            cuts: watch::channel(0).0,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        Self {
            address,
            state,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Closes every connection open now, both ways; later connections go through.
    pub fn cut_all(&self) {
        self.state.cuts.send_modify(|cuts| *cuts += 1);
    }

    /// While `refusing`, a new connection is closed as soon as it is accepted.
    pub fn refuse(&self, refusing: bool) {
        self.state.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Connections forwarded and refused so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.state.accepted.load(Ordering::SeqCst),
            self.state.refused.load(Ordering::SeqCst),
        )
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn accept(listener: TcpListener, state: Arc<ProxyState>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if state.refusing.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let mut cut = state.cuts.subscribe();
        let upstream = state.upstream;
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let mut client = client;
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
            // Dropping both ends resets them: the client sees its connection lost mid-query,
            // the server sees its client gone and ends that backend (rolling back its open
            // transaction).
        });
    }
}
