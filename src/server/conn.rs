//! The connection loop: read, parse, dispatch, encode, write; pipelined and bounded.
//!
//! A client's cost is bounded by what it sends and reads: the query buffer grows only with
//! bytes that arrive (and `client-query-buffer-limit` closes it past 1 GB by default), replies
//! of one pipelined batch are flushed every `OUTPUT_FLUSH_BYTES`, and a client that stops
//! reading stops being served (its task waits on the socket) without holding any lock.

use super::clients::{ReplyMode, Session};
use super::state::{Server, ShutdownRequest};
use crate::command::{dispatch, Action};
use crate::protocol::parser::{Limits, RequestParser};
use crate::protocol::Reply;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// How much to read at a time; the buffer grows by this much only when it is full.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Pending replies are written out once they pass this, even mid-pipeline.
const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;

/// Serves one client until it quits, is killed, errs, or the server stops.
pub async fn serve<S>(
    server: Arc<Server>,
    stream: S,
    mut session: Session,
    mut outbox: mpsc::UnboundedReceiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut output = BytesMut::new();
    let mut parser = RequestParser::new();
    let handle = session.handle.clone();
    loop {
        input.reserve(READ_CHUNK_BYTES);
        tokio::select! {
            _ = handle.killed() => break,
            message = outbox.recv() => {
                let Some(message) = message else { break };
                handle.outbox_bytes.fetch_sub(message.len(), Ordering::Relaxed);
                if writer.write_all(&message).await.is_err() {
                    break;
                }
            }
            read = reader.read_buf(&mut input) => {
                let read = match read {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                server.stats.net_input_bytes.fetch_add(read as u64, Ordering::Relaxed);
                let keep_going = process_input(&server, &mut session, &mut parser, &mut input, &mut output, &mut writer).await;
                if !output.is_empty() {
                    server.stats.net_output_bytes.fetch_add(output.len() as u64, Ordering::Relaxed);
                    if writer.write_all(&output).await.is_err() {
                        break;
                    }
                    output.clear();
                }
                if !keep_going {
                    break;
                }
                let limit = server.config.int("client-query-buffer-limit").max(0) as usize;
                if input.len() > limit {
                    tracing::warn!(client = %handle.addr, "closing client that reached max query buffer length");
                    break;
                }
                handle.info.lock().query_buffer_bytes = input.len();
            }
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    server.monitors.remove(session.id);
    server.clients.unregister(session.id);
}

/// Runs every complete request in `input`; false when the connection must close.
async fn process_input<W: AsyncWrite + Unpin>(
    server: &Server,
    session: &mut Session,
    parser: &mut RequestParser,
    input: &mut BytesMut,
    output: &mut BytesMut,
    writer: &mut W,
) -> bool {
    loop {
        let limits = Limits {
            bulk_bytes_max: server.config.int("proto-max-bulk-len"),
            authenticated: session.authenticated || !server.requires_auth(),
        };
        let args = match parser.parse(input, limits) {
            Ok(Some(args)) => args,
            Ok(None) => {
                note_activity(server, session);
                return true;
            }
            Err(error) => {
                tracing::debug!(client = %session.handle.addr, "{}", error.0);
                Reply::Error(format!("ERR {}", error.0)).encode(session.resp3, output);
                return false;
            }
        };
        wait_if_paused(server, &args).await;
        let (reply, action) = dispatch(server, session, args);
        if let Some(Action::Sleep(duration)) = &action {
            tokio::time::sleep(*duration).await;
        }
        match session.reply_mode {
            ReplyMode::On => reply.encode(session.resp3, output),
            ReplyMode::Off => {}
            ReplyMode::Skip => session.reply_mode = ReplyMode::On,
            ReplyMode::SkipNext => session.reply_mode = ReplyMode::Skip,
        }
        match action {
            Some(Action::Close) => return false,
            Some(Action::Shutdown { save, .. }) => {
                server.request_shutdown(ShutdownRequest { save });
                output.clear();
                return false;
            }
            Some(Action::Monitor) => {
                session.handle.info.lock().monitor = true;
                server.monitors.add(session.handle.clone());
            }
            _ => {}
        }
        if output.len() >= OUTPUT_FLUSH_BYTES {
            server
                .stats
                .net_output_bytes
                .fetch_add(output.len() as u64, Ordering::Relaxed);
            if writer.write_all(output).await.is_err() {
                return false;
            }
            output.clear();
        }
    }
}

/// Records what CLIENT LIST shows, once per batch of pipelined commands.
fn note_activity(server: &Server, session: &Session) {
    let mut info = session.handle.info.lock();
    info.last_interaction_ms = server.clock.now_ms();
    info.db = session.db;
    info.resp = if session.resp3 { 3 } else { 2 };
}

/// CLIENT PAUSE: holds the client while a pause is in force (for writes only, or all).
async fn wait_if_paused(server: &Server, args: &[Bytes]) {
    if !server.pause_active.load(Ordering::Acquire) {
        return;
    }
    loop {
        let Some((until_ms, all)) = *server.pause.lock() else {
            return;
        };
        let now_ms = server.clock.now_ms();
        if now_ms >= until_ms {
            server.set_pause(None);
            return;
        }
        if !all {
            let is_write = crate::command::table()
                .get(&args[0])
                .map(|command| {
                    command.is_write() || command.has(crate::command::table::flags::MAY_REPLICATE)
                })
                .unwrap_or(false);
            if !is_write {
                return;
            }
        }
        let wait = std::time::Duration::from_millis((until_ms - now_ms).min(100));
        tokio::select! {
            _ = server.unpaused.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
