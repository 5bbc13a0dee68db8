//! The threads that serve clients: one single-threaded runtime per core.
//!
//! On a work-stealing runtime a proxied request hops between cores: the client connection's
//! task wakes hyper's task for the backend connection, often on the other core, and is woken
//! back, a futex and a scheduler run each way (the profile in docs/benchmarks.md). Here each
//! worker thread accepts from the listening socket itself, and everything a connection starts
//! (backend connections, WebSocket tunnels) runs on that same thread; each worker keeps its
//! own idle backend connections (see `Backend`), so a request never leaves its thread.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// Which worker of its router this thread is (0 on any other thread).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the caller, for picking its share of per-worker state.
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers to run when the configuration leaves it to the machine: one per core.
pub(crate) fn count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Running worker threads. They run until this is dropped, which happens once the router's
/// last handle and last client connection are gone; tasks still running then (a WebSocket
/// tunnel) end with them.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Client connections open on each worker, for spreading new ones evenly.
    open: Vec<AtomicUsize>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    pub(crate) fn start(count: usize) -> std::io::Result<Arc<Workers>> {
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for index in 0..count {
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = std::sync::mpsc::channel();
            // The runtime is made on its own thread: a runtime dropped inside async code
            // (the caller's, should spawning fail) panics.
            std::thread::Builder::new().name(format!("paas-router-{index}")).spawn(move || {
                INDEX.with(|i| i.set(index));
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started.send(Err(err));
                        return;
                    }
                };
                runtime.spawn(keep_the_timer_awake());
                let _ = started.send(Ok(runtime.handle().clone()));
                // Runs what is spawned onto it until the router is gone (the sender dropped).
                let _ = runtime.block_on(stopped);
            })?;
            let handle = handle.recv().map_err(std::io::Error::other)??;
            handles.push(handle);
            stops.push(stop);
        }
        let open = (0..count).map(|_| AtomicUsize::new(0)).collect();
        Ok(Arc::new(Workers { handles, open, _stop: stops }))
    }

    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Counts a client connection on the calling worker until the guard is dropped.
    pub(crate) fn opened(self: &Arc<Self>) -> OpenConnection {
        let index = current() % self.open.len();
        self.open[index].fetch_add(1, Ordering::Relaxed);
        OpenConnection { workers: self.clone(), index }
    }

    /// Whether the calling worker holds more than its share of client connections, and
    /// should leave the next one to a less busy worker (as nginx's `accept_disabled`): with
    /// one socket shared by every worker, the first one awake would otherwise take a whole
    /// burst of new connections, and keep-alive connections stay where they landed.
    pub(crate) fn busier_than_others(&self) -> bool {
        let index = current() % self.open.len();
        let mine = self.open[index].load(Ordering::Relaxed);
        let least = self.open.iter().map(|n| n.load(Ordering::Relaxed)).min().unwrap_or(0);
        mine > least + 1
    }
}

/// A timer that fires every [`TICK`], forever, so that a request's own timers never wake
/// the thread's event loop.
///
/// Every request arms timers (hyper's header read timeout, the first-byte timeout), and tokio
/// writes to the loop's eventfd whenever a new timer falls due before the one the loop last
/// went to sleep for, even from the loop's own thread. With only the 30 to 55 s timers of
/// requests pending, nearly every new one does: a `write`, and an `epoll_wait` that returns
/// at once, for about half of all requests (strace in docs/benchmarks.md). With this tick
/// pending, the loop never sleeps longer than [`TICK`], which is shorter than any request's
/// timer, at the cost of ten wake-ups a second when idle.
async fn keep_the_timer_awake() {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

const TICK: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct OpenConnection {
    workers: Arc<Workers>,
    index: usize,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.workers.open[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_worker_with_more_connections_than_another_holds_back() {
        let workers = Workers::start(2).unwrap_or_else(|err| panic!("{err}"));
        let on = |index: usize, count: usize| {
            let workers = workers.clone();
            workers.handles()[index].clone().spawn(async move {
                let open: Vec<_> = (0..count).map(|_| workers.opened()).collect();
                (current(), workers.busier_than_others(), open)
            })
        };
        let (index, busier, first) = on(0, 1).await.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((index, busier), (0, false), "one ahead is even enough");
        let (index, busier, second) = on(0, 1).await.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((index, busier), (0, true), "two ahead of worker 1");
        let (index, busier, _third) = on(1, 1).await.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!((index, busier), (1, false));
        drop((first, second));
        let (_, busier, _) = on(1, 2).await.unwrap_or_else(|err| panic!("{err}"));
        assert!(busier, "closed connections no longer count: worker 1 has 2 against 0");
    }
}
