//! madsim: clients talk to the real connection code (`server::conn::serve`, the same function
//! the listener spawns for each accepted socket) over a simulated network with latency,
//! lost connections, clogged links and client nodes killed and restarted mid-pipeline.
//!
//! Checked: every reply a client reads answers the request it sent in that position (each
//! request carries a token its reply must echo), so no reply reaches the wrong request or
//! the wrong client and pipelines keep their order; a client killed or cut off mid-pipeline
//! leaves the server serving everyone else; everything ends (no connection hangs).
//!
//! Only the sockets are simulated: the library keeps real tokio (no `madsim-tokio` swap), so
//! nothing in the server changes. `conn::serve` is generic over the stream, and with blocking
//! time-outs, CLIENT PAUSE and DEBUG SLEEP left out it needs no tokio timer, so it runs on
//! madsim's executor as it is. madsim's stream only sends on `flush()`, which the real
//! socket does not need; [`Flushing`] flushes after every write, as the kernel would send.
//!
//! ```sh
//! RUSTFLAGS="--cfg madsim" cargo test --release --target-dir target/madsim --test madsim_network
//! MADSIM_TEST_NUM=100 ...             # seeds to run (each a different network history)
//! MADSIM_TEST_SEED=7 ...              # replay one
//! ```
//! The addresses are madsim's in-process simulation; no packet leaves the test.
#![cfg(madsim)]

use madsim::net::{TcpListener, TcpStream};
use madsim::runtime::Handle;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PORT: u16 = 6379;
const CLIENTS: u8 = 4;
/// Pipelines each client completes before it stops.
const PIPELINES_PER_CLIENT: u64 = 40;
/// Requests per pipeline: written in one go, then the replies read back.
const PIPELINE_REQUESTS: u64 = 8;
/// A client that sees no reply for this long gives up on the connection and reconnects.
const REPLY_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound on connection attempts per pipeline.
const CONNECT_ATTEMPTS_MAX: u32 = 200;

/// A stream that flushes after every write, so madsim sends what the server writes.
struct Flushing(TcpStream);

impl AsyncRead for Flushing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Flushing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = match Pin::new(&mut self.0).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => written,
            other => return other,
        };
        match Pin::new(&mut self.0).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(written)),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            // madsim's flush is immediate; a real one would be polled again by the caller.
            Poll::Pending => Poll::Ready(Ok(written)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The server node: the listener's accept loop, with madsim's listener.
async fn run_server() {
    let server = strata::server::Server::into_arc(strata::server::Server::new(
        strata::config::Config::default(),
        Arc::new(strata::io::SystemClock),
        Arc::new(strata::io::StdFileSystem),
        7,
    ));
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))
        .await
        .expect("bind");
    loop {
        let (stream, peer) = listener.accept().await.expect("accept");
        let (handle, outbox) = server.clients.register(
            peer.to_string(),
            format!("{SERVER_IP}:{PORT}"),
            -1,
            server.clock.now_ms(),
        );
        let session = strata::server::Session::new(handle, true);
        madsim::task::spawn(strata::server::conn::serve(
            server.clone(),
            Flushing(stream),
            session,
            outbox,
        ));
    }
}

/// A reply as read off the wire (the subset these requests get).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
}

/// Parses one reply from the front of `buffer`; None until it is complete.
fn parse_reply(buffer: &[u8]) -> Option<(Reply, usize)> {
    let line_end = buffer.windows(2).position(|pair| pair == b"\r\n")?;
    let line = std::str::from_utf8(&buffer[1..line_end]).expect("a text line");
    let after = line_end + 2;
    let reply = match buffer[0] {
        b'+' => (Reply::Status(line.into()), after),
        b'-' => (Reply::Error(line.into()), after),
        b':' => (Reply::Integer(line.parse().expect("an integer")), after),
        b'$' => {
            let len: i64 = line.parse().expect("a length");
            if len < 0 {
                (Reply::Bulk(None), after)
            } else {
                let end = after + len as usize;
                if buffer.len() < end + 2 {
                    return None;
                }
                (Reply::Bulk(Some(buffer[after..end].to_vec())), end + 2)
            }
        }
        other => panic!("unexpected reply type {:?}", other as char),
    };
    Some(reply)
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One pipeline's requests and the reply each must get. The token (client, pipeline,
/// position) is in every request, so a reply meant for another request cannot match.
fn pipeline(client: u8, number: u64) -> (Vec<u8>, Vec<Reply>) {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for position in 0..PIPELINE_REQUESTS {
        let token = format!("c{client}:p{number}:r{position}");
        let key = format!("key:c{client}:{}", position % 3);
        match position % 4 {
            0 | 3 => {
                bytes.extend(encode(&[b"ECHO", token.as_bytes()]));
                expected.push(Reply::Bulk(Some(token.into_bytes())));
            }
            1 => {
                bytes.extend(encode(&[b"SET", key.as_bytes(), token.as_bytes()]));
                expected.push(Reply::Status("OK".into()));
            }
            _ => {
                // Reads back the SET just before it, in the same pipeline.
                let key = format!("key:c{client}:{}", (position - 1) % 3);
                let written = format!("c{client}:p{number}:r{}", position - 1);
                bytes.extend(encode(&[b"GET", key.as_bytes()]));
                expected.push(Reply::Bulk(Some(written.into_bytes())));
            }
        }
    }
    (bytes, expected)
}

/// Outcome counts across all clients.
#[derive(Default)]
struct Counts {
    /// Pipelines whose every reply was checked, per client.
    pipelines: [AtomicU64; CLIENTS as usize],
    replies: AtomicU64,
    broken_connections: AtomicU64,
}

async fn connect() -> Option<TcpStream> {
    for _ in 0..CONNECT_ATTEMPTS_MAX {
        // A lost connect fails as "connection refused": retry.
        match TcpStream::connect(SocketAddr::new(SERVER_IP, PORT)).await {
            Ok(stream) => return Some(stream),
            Err(_) => madsim::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

/// Runs one pipeline on `stream`; false when the connection broke (then nothing is known of
/// the requests without replies, and the caller reconnects and sends a new pipeline).
async fn run_pipeline(stream: &mut TcpStream, client: u8, number: u64, counts: &Counts) -> bool {
    let (request, expected) = pipeline(client, number);
    if stream.write_all(&request).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    for (position, want) in expected.iter().enumerate() {
        let reply = loop {
            if let Some((reply, used)) = parse_reply(&buffer) {
                buffer.drain(..used);
                break reply;
            }
            let read = madsim::time::timeout(REPLY_TIMEOUT, stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(read)) if read > 0 => buffer.extend_from_slice(&chunk[..read]),
                // Closed, failed or silent: the connection is gone.
                _ => return false,
            }
        };
        assert_eq!(
            &reply, want,
            "client {client}, pipeline {number}, request {position}: a reply for another request"
        );
        counts.replies.fetch_add(1, Ordering::Relaxed);
    }
    assert!(buffer.is_empty(), "replies nobody asked for: {buffer:?}");
    true
}

async fn run_client(client: u8, counts: Arc<Counts>) {
    let mut number = 0;
    while number < PIPELINES_PER_CLIENT {
        let Some(mut stream) = connect().await else {
            panic!("client {client} could not reach the server");
        };
        while number < PIPELINES_PER_CLIENT {
            // Every pipeline gets a fresh number, so a retry never expects old tokens.
            let this = number;
            number += 1;
            if run_pipeline(&mut stream, client, this, &counts).await {
                counts.pipelines[client as usize].fetch_add(1, Ordering::Relaxed);
            } else {
                counts.broken_connections.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

#[madsim::test]
async fn replies_reach_their_own_requests_in_order_over_a_faulty_network() {
    let handle = Handle::current();
    let server = handle
        .create_node()
        .name("server")
        .ip(SERVER_IP)
        .init(run_server)
        .build();
    // Slow links, and now and then a connection that fails.
    let net = madsim::net::NetSim::current();
    net.update_config(|config| {
        config.send_latency = Duration::from_millis(1)..Duration::from_millis(30);
        config.packet_loss_rate = 0.02;
    });
    let counts = Arc::new(Counts::default());
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let counts = counts.clone();
        let node = handle
            .create_node()
            .name(format!("client-{client}"))
            .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + client)))
            .build();
        clients.push((node.id(), node.spawn(run_client(client, counts))));
    }
    // Chaos: kill one client mid-pipeline, and cut another off for longer than it waits for
    // a reply, so it drops that connection and reconnects.
    let started = madsim::time::Instant::now();
    madsim::time::sleep(Duration::from_millis(150)).await;
    handle.kill(clients[1].0);
    net.clog_node(clients[0].0);
    madsim::time::sleep(Duration::from_millis(1_500)).await;
    net.unclog_node(clients[0].0);
    let _ = server;
    for (index, (_, task)) in clients.into_iter().enumerate() {
        match task.await {
            Ok(()) => {}
            // The killed client's task ends with its node.
            Err(_) if index == 1 => {}
            Err(err) => panic!("client {index}: {err}"),
        }
    }
    let replies = counts.replies.load(Ordering::Relaxed);
    let broken = counts.broken_connections.load(Ordering::Relaxed);
    let pipelines: Vec<u64> = counts
        .pipelines
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    eprintln!(
        "pipelines per client {pipelines:?}, {replies} replies checked, {broken} connections \
         dropped, {:?} simulated",
        started.elapsed()
    );
    for (client, &completed) in pipelines.iter().enumerate() {
        if client == 1 {
            assert!(
                completed < PIPELINES_PER_CLIENT,
                "killed before it finished"
            );
        } else {
            // A pipeline cut short is not retried, so every client but the killed one ends
            // with most of its pipelines checked.
            assert!(
                completed + broken >= PIPELINES_PER_CLIENT,
                "client {client}"
            );
        }
    }
    assert!(broken >= 1, "the clogged client gave up on its connection");
    // No connection is left behind: the killed client's and the dropped one are closed on
    // the server too, once their ends are seen, so only the checker's own remains.
    let checker = handle
        .create_node()
        .name("checker")
        .ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)))
        .build();
    let connected = checker
        .spawn(async {
            let mut stream = connect().await.expect("the server is up");
            let mut connected = 0;
            for _ in 0..50 {
                stream
                    .write_all(&encode(&[b"INFO", b"clients"]))
                    .await
                    .unwrap();
                stream.flush().await.unwrap();
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let info = loop {
                    if let Some((Reply::Bulk(Some(info)), _)) = parse_reply(&buffer) {
                        break String::from_utf8(info).unwrap();
                    }
                    let read = stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "the server closed the checker");
                    buffer.extend_from_slice(&chunk[..read]);
                };
                connected = info
                    .lines()
                    .find_map(|line| line.strip_prefix("connected_clients:"))
                    .and_then(|count| count.trim().parse::<u64>().ok())
                    .expect("INFO clients has connected_clients");
                if connected == 1 {
                    break;
                }
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
            connected
        })
        .await
        .unwrap();
    assert_eq!(connected, 1, "connections left open on the server");
}
