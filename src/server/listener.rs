//! Start-up and shut-down: binding the listeners, accepting clients under `maxclients`,
//! the cron, and stopping on SHUTDOWN, SIGTERM or SIGINT.

use super::clients::Session;
use super::conn::serve;
use super::cron;
use super::state::{Server, ShutdownRequest};
use super::threads::ConnThreads;
use crate::config::Config;
use crate::io::{FileSystem, StdFileSystem, SystemClock};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A started server: its state, the addresses it listens on and the threads serving its
/// connections.
pub struct Running {
    pub server: Arc<Server>,
    pub addrs: Vec<SocketAddr>,
    pub threads: Arc<ConnThreads>,
}

/// Prepares the data directory, binds the listeners and starts accepting.
pub async fn start(config: Config, config_file: Option<PathBuf>) -> Result<Running, String> {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
    let dir = PathBuf::from(config.text("dir"));
    fs.create_dir_all(&dir)
        .map_err(|err| format!("Can't create the data directory '{}': {err}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).map_err(|err| {
        format!(
            "Can't resolve the data directory '{}': {err}",
            dir.display()
        )
    })?;
    config
        .set(
            "dir",
            &[&dir.to_string_lossy()],
            crate::config::Source::Startup,
        )
        .map_err(|err| format!("dir: {err}"))?;
    let seed: u64 = rand::random();
    let mut server = Server::new(config, Arc::new(SystemClock), fs, seed);
    server.config_file = config_file
        .and_then(|path| std::fs::canonicalize(path).ok())
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::tier::memory::open_store(&server)?;
    let server = server.into_arc();
    // Clients may connect while the dataset loads; they get `-LOADING` until it is in.
    server.loading.begin(server.clock.now_ms(), 0);
    let count = ConnThreads::configured(&server.config);
    let threads = Arc::new(
        ConnThreads::start(count, {
            let server = Arc::downgrade(&server);
            Arc::new(move || {
                if let Some(server) = server.upgrade() {
                    server.aof.turn_ends();
                }
            })
        })
        .map_err(|err| format!("Can't start the connection threads: {err}"))?,
    );
    // CONFIG GET and INFO show the number in force.
    let _ = server.config.set(
        "io-threads",
        &[&count.to_string()],
        crate::config::Source::Startup,
    );
    let port = server.config.int("port") as u16;
    let mut addrs = Vec::new();
    if port != 0 {
        for word in server.config.text("bind").split_whitespace() {
            let (optional, host) = match word.strip_prefix('-') {
                Some(host) => (true, host),
                None => (false, word),
            };
            let host = match host {
                "*" => "0.0.0.0",
                "::*" => "::",
                other => other,
            };
            let target = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            match bind(&target, server.config.int("tcp-backlog")).await {
                Ok(listener) => {
                    let local = listener.local_addr().map_err(|err| err.to_string())?;
                    addrs.push(local);
                    tokio::spawn(accept_loop(server.clone(), listener, threads.clone()));
                }
                Err(err) if optional => {
                    tracing::debug!("optional bind {target} skipped: {err}");
                }
                Err(err) => {
                    return Err(format!(
                        "Warning: Could not create server TCP listening socket {target}: {err}"
                    ))
                }
            }
        }
        if addrs.is_empty() {
            return Err("Failed listening on any bind address".into());
        }
        server
            .bound_port
            .store(addrs[0].port() as u64, Ordering::Relaxed);
    }
    let loader = server.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let outcome = super::persistence::load_at_start(&loader);
        loader.loading.end();
        outcome
    })
    .await
    .map_err(|err| format!("the loader stopped: {err}"))?;
    loaded?;
    tokio::spawn(cron::run(server.clone()));
    crate::tier::compact::start(&server);
    tracing::info!(
        "Strata {} (Redis {} compatible) pid={} dir={}",
        env!("CARGO_PKG_VERSION"),
        crate::REDIS_VERSION,
        std::process::id(),
        server.config.text("dir")
    );
    tracing::info!("Ready to accept connections tcp on {:?}", addrs);
    Ok(Running {
        server,
        addrs,
        threads,
    })
}

/// Runs until a shutdown is requested (SHUTDOWN, SIGTERM, SIGINT).
pub async fn run(config: Config, config_file: Option<PathBuf>) -> Result<(), String> {
    let running = start(config, config_file).await?;
    let server = running.server;
    loop {
        let request = tokio::select! {
            request = server.shutdown_signal() => request,
            _ = terminate_signal() => {
                tracing::warn!("Received SIGTERM/SIGINT scheduling shutdown...");
                ShutdownRequest { save: None }
            }
        };
        if shutdown(&server, request) {
            running.threads.stop();
            return Ok(());
        }
    }
}

/// Stops: closes clients; saving joins here with the persistence work.
/// Stops the server: saves when asked (or by default with save points), then closes the
/// clients and the AOF. False when the save failed and the server must keep running, as
/// Redis does after a signal it cannot honour.
fn shutdown(server: &Server, request: ShutdownRequest) -> bool {
    tracing::warn!("User requested shutdown...");
    let save = request
        .save
        .unwrap_or_else(|| super::persistence::save_points_configured(server));
    if save {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(err) = super::persistence::save(server) {
            tracing::warn!("Error trying to save the DB, can't exit. ({err})");
            tracing::warn!("SIGTERM received but errors trying to shut down the server, check the logs for more information");
            server.clear_shutdown();
            return false;
        }
    }
    for client in server.clients.all() {
        client.kill();
    }
    if server.aof.is_enabled() {
        tracing::info!("Calling fsync() on the AOF file.");
        server.aof.close();
    }
    tracing::warn!("Strata is now ready to exit, bye bye...");
    true
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        let mut interrupt = match signal(SignalKind::interrupt()) {
            Ok(interrupt) => interrupt,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, threads: Arc<ConnThreads>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("Accepting client connection: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if server.shutdown_requested().is_some() {
            return;
        }
        server
            .stats
            .total_connections_received
            .fetch_add(1, Ordering::Relaxed);
        let maxclients = server.config.int("maxclients").max(1) as usize;
        if server.clients.len() >= maxclients {
            server
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(reject(stream));
            continue;
        }
        let _ = stream.set_nodelay(true);
        set_keepalive(&stream, server.config.int("tcp-keepalive"));
        let laddr = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let fd = raw_fd(&stream);
        let (handle, outbox) =
            server
                .clients
                .register(peer.to_string(), laddr, fd, server.clock.now_ms());
        let session = Session::new(handle, !server.requires_auth());
        let id = session.id;
        let serving = server.clone();
        let dealt = threads.serve(stream, move |stream| {
            serve(serving, stream, session, outbox)
        });
        if let Err(err) = dealt {
            tracing::warn!("Handing client connection to its thread: {err}");
            server.clients.unregister(id);
        }
    }
}

/// Binds with Redis's socket options: SO_REUSEADDR and the configured `tcp-backlog`.
async fn bind(target: &str, backlog: i64) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(target).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return socket.listen(backlog.clamp(1, u32::MAX as i64) as u32),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no address to bind")))
}

/// `tcp-keepalive`: probes idle peers so dead ones are noticed, as Redis does.
fn set_keepalive(stream: &TcpStream, seconds: i64) {
    if seconds <= 0 {
        return;
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(seconds as u64))
        .with_interval(std::time::Duration::from_secs((seconds as u64 / 3).max(1)));
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!("setting tcp-keepalive: {err}");
    }
}

/// Redis's reply to a client over `maxclients`, then close.
async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}

#[cfg(unix)]
fn raw_fd(stream: &TcpStream) -> i64 {
    use std::os::unix::io::AsRawFd;
    stream.as_raw_fd() as i64
}

#[cfg(not(unix))]
fn raw_fd(_stream: &TcpStream) -> i64 {
    -1
}
