//! The connection threads: one single-threaded tokio runtime per core, each with its own
//! event loop (its own epoll, its own timers), and the accepted connections dealt to them,
//! to the thread serving the fewest. A connection lives on one thread for its whole life.
//!
//! Why not tokio's multi-threaded runtime, where every connection was a task any worker could
//! run: its workers share one I/O driver and steal each other's tasks, so a wave of readiness
//! events seen by one worker wakes another to share it (a futex wake and a cross-CPU
//! interrupt), and the tasks of one connection wander between the cores. With a thread per
//! core each thread waits in its own `epoll_wait` and runs what it finds, as Redis's event
//! loop does (and Dragonfly's threads).
//!
//! The cost: a command that runs long (KEYS over millions of keys, a foreground SAVE) holds up
//! the other clients of its thread, as any command holds up every client in Redis, while the
//! other threads go on. Work that is not a connection's (the accept loop, the cron, loading)
//! stays on the main runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `io-threads`' upper bound, as in Redis.
const IO_THREADS_MAX: usize = 128;
/// How long stopping waits for the threads to drop their connections.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Connection loop iterations (`tick`) after which a turn ends even though the event loop
/// still has work. The turn ends when nothing is left to run, which a client streaming
/// requests that get no reply (a large value arriving in pieces, `CLIENT REPLY OFF`) can put
/// off for as long as it streams: everyone else's replies, and the AOF's fsync under
/// `always`, would wait that long. Fifty busy clients make about a hundred ticks a turn.
const TURN_TICKS_MAX: u32 = 256;

/// What a connection thread does at the end of each turn of its event loop.
pub type TurnEnds = Arc<dyn Fn() + Send + Sync>;

/// The connection threads of a running server.
pub struct ConnThreads {
    threads: Vec<ConnThread>,
}

struct ConnThread {
    handle: tokio::runtime::Handle,
    /// Connections this thread serves now.
    clients: Arc<AtomicUsize>,
    /// Dropping it ends the thread's runtime, and with it the connections it still serves.
    stop: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    join: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ConnThreads {
    /// Starts `count` threads (at least one). Each calls `turn_ends` when its event loop has
    /// run everything ready and is about to wait for more (where Redis's `beforeSleep` runs),
    /// or, on a thread that stays busy, every `TURN_TICKS_MAX` connection-loop iterations.
    pub fn start(count: usize, turn_ends: TurnEnds) -> std::io::Result<ConnThreads> {
        let threads = (0..count.max(1))
            .map(|index| ConnThread::start(index, turn_ends.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(ConnThreads { threads })
    }

    /// `io-threads`: how many connection threads to start. When neither the file nor the
    /// command line gives it, Redis's advice for its own I/O threads decides: threads only on
    /// machines of 4 cores or more, leaving one core spare. The threads share the cores with
    /// the AOF's fsyncs, the saves and, often, the clients; see the README for what a second
    /// thread costs on 2 cores.
    pub fn configured(config: &crate::config::Config) -> usize {
        if config.given("io-threads") {
            return config.int("io-threads").max(1) as usize;
        }
        let cores = std::thread::available_parallelism()
            .map(|cores| cores.get())
            .unwrap_or(1);
        if cores >= 4 {
            (cores - 1).min(IO_THREADS_MAX)
        } else {
            1
        }
    }

    /// Moves an accepted connection to the thread serving the fewest and serves it there with
    /// `serve`. Fails only when the thread's event loop cannot take the socket.
    pub fn serve<F, S>(&self, stream: tokio::net::TcpStream, serve: S) -> std::io::Result<()>
    where
        S: FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let thread = self
            .threads
            .iter()
            .min_by_key(|thread| thread.clients.load(Ordering::Relaxed))
            .expect("at least one connection thread");
        // The socket leaves this runtime's event loop and joins the chosen thread's.
        let stream = stream.into_std()?;
        let stream = {
            let _entered = thread.handle.enter();
            tokio::net::TcpStream::from_std(stream)?
        };
        let clients = thread.clients.clone();
        clients.fetch_add(1, Ordering::Relaxed);
        thread.handle.spawn(async move {
            let _served = Served(clients);
            serve(stream).await;
        });
        Ok(())
    }

    /// Ends the threads, dropping the connections they still serve, and waits a little for
    /// them to finish.
    pub fn stop(&self) {
        for thread in &self.threads {
            thread.stop.lock().take();
        }
        let deadline = std::time::Instant::now() + STOP_WAIT;
        for thread in &self.threads {
            let Some(join) = thread.join.lock().take() else {
                continue;
            };
            while !join.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if join.is_finished() {
                let _ = join.join();
            }
        }
    }
}

impl ConnThread {
    fn start(index: usize, turn_ends: TurnEnds) -> std::io::Result<ConnThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(end_turn)
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let join = std::thread::Builder::new()
            .name(format!("strata-conn-{index}"))
            .spawn(move || {
                // A fresh thread: nothing set it before.
                TURN_ENDS.with(|hook| {
                    let _ = hook.set(turn_ends);
                });
                // Ends when the sender is dropped (`stop`) or sends.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(ConnThread {
            handle,
            clients: Arc::new(AtomicUsize::new(0)),
            stop: parking_lot::Mutex::new(Some(stop)),
            join: parking_lot::Mutex::new(Some(join)),
        })
    }
}

thread_local! {
    /// What ends a turn on this thread besides the replies (`ConnThreads::start`'s argument);
    /// set on connection threads only.
    static TURN_ENDS: std::cell::OnceCell<TurnEnds> = const { std::cell::OnceCell::new() };
    /// Connection loop iterations since the turn last ended (`tick`).
    static TICKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Tasks of this thread waiting for the end of its turn (`turn_end`).
    static TURN_END_WAITERS: std::cell::RefCell<Vec<std::task::Waker>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Ends this thread's turn: runs what the thread was started with (the AOF's nudge) and
/// wakes the tasks waiting in `turn_end`. The park hook calls it when the event loop has
/// nothing left to run (the tasks woken run before it waits: tokio looks at its queue again
/// after the hook), and `tick` when a busy thread has not got there for a while.
fn end_turn() {
    TICKS.set(0);
    TURN_ENDS.with(|hook| {
        if let Some(turn_ends) = hook.get() {
            turn_ends();
        }
    });
    let mut waiters = TURN_END_WAITERS.with(|waiters| std::mem::take(&mut *waiters.borrow_mut()));
    if waiters.is_empty() {
        return;
    }
    // A wake only queues the task: none registers again until the loop polls it.
    for waiter in waiters.drain(..) {
        waiter.wake();
    }
    // The emptied vector goes back, so a busy thread does not allocate one per turn.
    TURN_END_WAITERS.with(|current| {
        let mut current = current.borrow_mut();
        if current.is_empty() {
            *current = waiters;
        }
    });
}

/// Counts one iteration of a connection's loop; past `TURN_TICKS_MAX` since the turn last
/// ended, ends it without waiting for the event loop to run out of work.
pub fn tick() {
    let ticks = TICKS.get() + 1;
    if ticks < TURN_TICKS_MAX {
        TICKS.set(ticks);
        return;
    }
    end_turn();
}

/// Completes once the connection thread has run everything else that was ready: Redis's
/// `beforeSleep`, where it writes the replies of the whole turn. It costs the task one more
/// poll, and saves the client a wake-up per reply. On a thread that is not a connection
/// thread nothing would wake it, so there it completes at once.
pub async fn turn_end() {
    if TURN_ENDS.with(|hook| hook.get().is_none()) {
        return;
    }
    let mut registered = false;
    std::future::poll_fn(|context| {
        if registered {
            return std::task::Poll::Ready(());
        }
        registered = true;
        TURN_END_WAITERS.with(|waiters| waiters.borrow_mut().push(context.waker().clone()));
        std::task::Poll::Pending
    })
    .await
}

/// Counts a connection out of its thread when its task ends, however it ends.
struct Served(Arc<AtomicUsize>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `turn_end` lets every other ready task of the thread run first, and then completes
    /// without any outside event; off a connection thread it completes at once.
    #[test]
    fn turn_end_waits_for_the_rest_of_the_turn() {
        let threads = ConnThreads::start(1, Arc::new(|| {})).expect("threads");
        let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (done, finished) = std::sync::mpsc::channel();
        let handle = &threads.threads[0].handle;
        // Both tasks are queued before the thread runs either: spawned from inside the thread.
        let spawner = handle.clone();
        let (first, second) = (order.clone(), order.clone());
        handle.spawn(async move {
            spawner.spawn(async move {
                first.lock().push("first starts");
                turn_end().await;
                first.lock().push("first ends");
                let _ = done.send(());
            });
            spawner.spawn(async move {
                second.lock().push("second runs");
            });
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the turn ended");
        assert_eq!(*order.lock(), ["first starts", "second runs", "first ends"]);
        threads.stop();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(turn_end());
    }

    /// A task that never lets the thread run out of work (it yields, as a client streaming
    /// input does when its read budget runs out) would keep the turn from ending; `tick`
    /// ends it instead: the waiters are woken and the thread's hook runs.
    #[test]
    fn a_busy_thread_still_ends_turns() {
        let ended = Arc::new(AtomicUsize::new(0));
        let counting = ended.clone();
        let threads = ConnThreads::start(
            1,
            Arc::new(move || {
                counting.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .expect("threads");
        let (done, finished) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicUsize::new(0));
        let spinning = stop.clone();
        threads.threads[0].handle.spawn(async move {
            while spinning.load(Ordering::Relaxed) == 0 {
                tick();
                tokio::task::yield_now().await;
            }
        });
        threads.threads[0].handle.spawn(async move {
            turn_end().await;
            let _ = done.send(());
        });
        let woken = finished.recv_timeout(std::time::Duration::from_secs(10));
        // Read before the spinner stops: from then on the thread parks and ends turns anyway.
        let ends_while_busy = ended.load(Ordering::Relaxed);
        stop.store(1, Ordering::Relaxed);
        woken.expect("the waiter was woken while the other task kept the thread busy");
        assert!(
            ends_while_busy > 0,
            "the thread's own end of turn (the AOF's nudge) ran too"
        );
        threads.stop();
    }

    /// Connections go to the thread serving the fewest, are served on it (not on the runtime
    /// that accepted them), and leave the count when they end.
    #[test]
    fn connections_are_dealt_to_the_least_loaded_thread() {
        let threads = ConnThreads::start(2, Arc::new(|| {})).expect("threads");
        let accepting = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let served_on = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        accepting.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
                let (stream, _) = listener.accept().await.expect("accept");
                let served_on = served_on.clone();
                let mut released = released.clone();
                threads
                    .serve(stream, move |mut stream| async move {
                        served_on
                            .lock()
                            .push(std::thread::current().name().map(str::to_owned));
                        use tokio::io::AsyncWriteExt;
                        let _ = stream.write_all(b"+OK\r\n").await;
                        let _ = released.wait_for(|released| *released).await;
                    })
                    .expect("serve");
            }
            for mut client in clients {
                use tokio::io::AsyncReadExt;
                let mut reply = [0u8; 5];
                client.read_exact(&mut reply).await.expect("reply");
                assert_eq!(&reply, b"+OK\r\n");
            }
        });
        let mut names = served_on.lock().clone();
        names.sort();
        let expected = [
            "strata-conn-0",
            "strata-conn-0",
            "strata-conn-1",
            "strata-conn-1",
        ];
        assert_eq!(names, expected.map(|name| Some(name.to_owned())));
        let counts = || {
            threads
                .threads
                .iter()
                .map(|thread| thread.clients.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(), [2, 2]);
        release.send_replace(true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while counts() != [0, 0] && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(counts(), [0, 0]);
        threads.stop();
    }
}
