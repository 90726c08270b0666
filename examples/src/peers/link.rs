//! A TCP forwarder on 127.0.0.1 that can cut its connections abruptly, the way a network
//! failure does: both sockets are reset (`SO_LINGER` 0), no WebSocket close frame is sent by
//! anyone, so the relay sees a lost socket (and keeps the peer's place for the resume grace),
//! and the client's connection fails.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The forwarder. Dropping it stops it and cuts what it carries.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    live: Arc<Mutex<Vec<Pipe>>>,
}

#[derive(Debug)]
struct Pipe {
    task: JoinHandle<()>,
    sockets: [Arc<TcpStream>; 2],
}

impl Link {
    /// Listens on `127.0.0.1:0` and forwards each connection to `target`, carrying at most
    /// `max_connections` at once (more are closed at once).
    pub async fn start(target: SocketAddr, max_connections: usize) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let live: Arc<Mutex<Vec<Pipe>>> = Arc::default();
        let pipes = live.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client, server) = (Arc::new(client), Arc::new(server));
                let task = tokio::spawn(pipe(client.clone(), server.clone()));
                let Ok(mut pipes) = pipes.lock() else { return };
                pipes.retain(|p| !p.task.is_finished());
                if pipes.len() >= max_connections {
                    task.abort();
                    continue;
                }
                pipes.push(Pipe {
                    task,
                    sockets: [client, server],
                });
            }
        });
        Ok(Self { addr, accept, live })
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets every connection carried now; later ones are carried as before.
    pub fn cut(&self) {
        let pipes = match self.live.lock() {
            Ok(mut pipes) => std::mem::take(&mut *pipes),
            Err(_) => return,
        };
        for pipe in pipes {
            pipe.task.abort();
            for socket in &pipe.sockets {
                // A zero linger makes the close a reset.
                let _ = socket.set_zero_linger();
            }
            // The sockets close (with a reset) when the last reference, here, is dropped; the
            // aborted task drops its own on its thread.
            drop(pipe.sockets);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies both ways until either side ends.
async fn pipe(a: Arc<TcpStream>, b: Arc<TcpStream>) {
    let one = copy(a.clone(), b.clone());
    let other = copy(b, a);
    tokio::select! {
        () = one => {}
        () = other => {}
    }
}

async fn copy(from: Arc<TcpStream>, to: Arc<TcpStream>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let mut sent = 0;
        while sent < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        // Yield between chunks so that a cut is never starved.
        tokio::task::yield_now().await;
    }
}
