//! Who may start a plugin call now, and who waits.
//!
//! Two bounds stand between a caller and a fresh instance:
//!
//! 1. The plugin's **share**: at most `limits.concurrency` of its calls run
//!    at once (the manifest asks, the policy caps), and at most
//!    `policy.max-queued-calls` more wait for a place. A caller that finds
//!    the queue full, or waits longer than the plugin's own deadline, is
//!    refused with [`Refusal`] (the API answers 503), so a slow or hostile
//!    plugin costs its own callers and nobody else's.
//! 2. The node's **pool**: at most `engine.pool-slots` instances exist at
//!    once (the pooling allocator's size). A call takes a pool slot only
//!    after it has its place in its plugin's share, so one plugin never
//!    holds more than its share of the pool, and waiters are served in order.
//!
//! Waiting is asynchronous: the API admits a call on its async task and only
//! then moves to a blocking thread to run it ([`Admission::run`]), so a queue
//! of a thousand waiting calls costs a thousand small futures, not a thousand
//! threads. Callers outside the API (the CLI, installs) admit synchronously
//! inside the invoker.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a call was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "busy: all {running} of its call places are taken and {waiting} more calls are waiting; \
         try again shortly (the operator can raise policy.max-queued-calls, or the plugin's \
         limits.concurrency within policy.max-concurrency)"
    )]
    QueueFull { running: u32, waiting: u32 },
    #[error(
        "busy: waited {}ms for a place to run (it may run {running} calls at once, and the \
         node's pool of calls was full or its own places taken); try again shortly",
        .waited.as_millis()
    )]
    WaitedTooLong { running: u32, waited: Duration },
    #[error("the node is shutting down")]
    Closed,
}

/// The node's instance pool, shared by every plugin.
#[derive(Debug, Clone)]
pub struct Pool {
    slots: Arc<Semaphore>,
    size: u32,
}

impl Pool {
    pub fn new(slots: u32) -> Pool {
        Pool {
            slots: Arc::new(Semaphore::new(slots as usize)),
            size: slots,
        }
    }

    /// Instances that may exist at once.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Slots taken now.
    pub fn in_use(&self) -> u32 {
        self.size
            .saturating_sub(self.slots.available_permits() as u32)
    }
}

/// One plugin version's places: how many of its calls may run, and how
/// many may wait.
#[derive(Debug)]
pub struct Share {
    places: Arc<Semaphore>,
    size: u32,
    waiting: AtomicU32,
    max_waiting: u32,
}

impl Share {
    pub fn new(concurrency: u32, max_waiting: u32) -> Share {
        Share {
            places: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
            size: concurrency.max(1),
            waiting: AtomicU32::new(0),
            max_waiting,
        }
    }

    /// Calls of this plugin running now.
    pub fn running(&self) -> u32 {
        self.size - self.places.available_permits() as u32
    }

    /// Calls of this plugin waiting for a place now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Takes a place in the queue, or refuses at once when it is full.
    fn enqueue(&self) -> Result<QueuePlace<'_>, Refusal> {
        let mut waiting = self.waiting.load(Ordering::Relaxed);
        loop {
            // A free place means no queue: the call goes straight in.
            if waiting >= self.max_waiting && self.places.available_permits() == 0 {
                return Err(Refusal::QueueFull {
                    running: self.size,
                    waiting,
                });
            }
            match self.waiting.compare_exchange_weak(
                waiting,
                waiting + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(QueuePlace(self)),
                Err(now) => waiting = now,
            }
        }
    }
}

/// A place in a plugin's queue, given back when the call gets in or gives up.
struct QueuePlace<'a>(&'a Share);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call that was let in: its place in its plugin's share and a pool slot,
/// both given back when it is dropped.
#[derive(Debug)]
pub struct Admission {
    _place: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
    /// Identifies the share the place was taken in (see [`Admission::run`]).
    share: usize,
}

fn share_key(share: &Share) -> usize {
    std::ptr::from_ref(share) as usize
}

impl Admission {
    /// A place in `share`, then a pool slot, in that order.
    async fn take(pool: &Pool, share: &Share) -> Result<Admission, Refusal> {
        let place = share.places.clone().acquire_owned().await;
        let slot = pool.slots.clone().acquire_owned().await;
        match (place, slot) {
            (Ok(place), Ok(slot)) => Ok(Admission {
                _place: place,
                _slot: slot,
                share: share_key(share),
            }),
            _ => Err(Refusal::Closed),
        }
    }

    /// Waits, without holding a thread, until the call may run: at most
    /// `patience`, and not at all when the plugin's queue is full.
    pub async fn wait(pool: &Pool, share: &Share, patience: Duration) -> Result<Self, Refusal> {
        let started = Instant::now();
        let queued = share.enqueue()?;
        let admitted = Admission::take(pool, share);
        let outcome = match tokio::time::timeout(patience, admitted).await {
            Ok(admitted) => admitted,
            Err(_) => Err(Refusal::WaitedTooLong {
                running: share.size,
                waited: started.elapsed(),
            }),
        };
        drop(queued);
        outcome
    }

    /// [`Admission::wait`] for callers on a plain thread.
    pub fn wait_blocking(pool: &Pool, share: &Share, patience: Duration) -> Result<Self, Refusal> {
        let started = Instant::now();
        let queued = share.enqueue()?;
        let admitted = Admission::take(pool, share);
        let outcome = block_on_until(admitted, started + patience).unwrap_or_else(|| {
            Err(Refusal::WaitedTooLong {
                running: share.size,
                waited: started.elapsed(),
            })
        });
        drop(queued);
        outcome
    }

    /// Runs `work` on a blocking thread with this admission held. Plugin
    /// calls that `work` makes to the admitted plugin go straight in instead
    /// of queueing a second time.
    pub async fn run<R: Send + 'static>(
        self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Refusal> {
        tokio::task::spawn_blocking(move || {
            let _held = HeldOnThisThread::enter(self.share);
            let result = work();
            drop(self);
            result
        })
        .await
        .map_err(|_| Refusal::Closed)
    }
}

thread_local! {
    /// The share whose admission this thread holds inside [`Admission::run`],
    /// if any.
    static HELD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

struct HeldOnThisThread(Option<usize>);

impl HeldOnThisThread {
    fn enter(share: usize) -> HeldOnThisThread {
        HeldOnThisThread(HELD.with(|held| held.replace(Some(share))))
    }
}

impl Drop for HeldOnThisThread {
    fn drop(&mut self) {
        HELD.with(|held| held.set(self.0));
    }
}

/// `work`, made to hold on whatever thread runs it the admission this thread
/// holds now (for calls that step onto another thread to block).
pub fn carried<R>(work: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let held = HELD.with(std::cell::Cell::get);
    move || {
        let _held = HeldOnThisThread(HELD.with(|slot| slot.replace(held)));
        work()
    }
}

/// True when this thread runs inside an [`Admission::run`] for `share`.
pub fn held_for(share: &Share) -> bool {
    HELD.with(|held| held.get() == Some(share_key(share)))
}

/// Polls `future` on this thread until it is ready or `until` passes. Only
/// for futures that need no runtime (a semaphore's acquire), which is why
/// the node needs no executor crate for it.
fn block_on_until<F: Future>(future: F, until: Instant) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        std::thread::park_timeout(until - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_other_shares_go_in() {
        let pool = Pool::new(8);
        let slow = Share::new(2, 1);
        let other = Share::new(2, 1);
        let patience = Duration::from_secs(5);
        let _a = Admission::wait(&pool, &slow, patience).await.expect("in");
        let _b = Admission::wait(&pool, &slow, patience).await.expect("in");
        // The third waits in the queue; the fourth finds it full.
        let queued = Admission::wait(&pool, &slow, Duration::from_millis(200));
        let mut queued = pin!(queued);
        assert!(futures_poll_once(queued.as_mut()).is_none(), "waits");
        assert_eq!(slow.waiting(), 1);
        let refused = Admission::wait(&pool, &slow, patience).await;
        assert!(
            matches!(
                refused,
                Err(Refusal::QueueFull {
                    running: 2,
                    waiting: 1
                })
            ),
            "{refused:?}"
        );
        // Another plugin is not held up by the first one's queue.
        let _c = Admission::wait(&pool, &other, patience).await.expect("in");
        // The queued one gives up after its patience, and leaves the queue.
        let gave_up = queued.await;
        assert!(
            matches!(gave_up, Err(Refusal::WaitedTooLong { .. })),
            "{gave_up:?}"
        );
        assert_eq!(slow.waiting(), 0);
    }

    #[test]
    fn blocking_callers_wait_for_a_place_and_get_it_when_one_is_freed() {
        let pool = Pool::new(1);
        let share = Arc::new(Share::new(4, 4));
        let first = Admission::wait_blocking(&pool, &share, Duration::from_secs(5)).expect("in");
        let waiter = std::thread::spawn({
            let pool = pool.clone();
            let share = share.clone();
            move || Admission::wait_blocking(&pool, &share, Duration::from_secs(30)).is_ok()
        });
        while share.waiting() == 0 {
            std::thread::yield_now();
        }
        drop(first);
        assert!(
            waiter.join().expect("joined"),
            "admitted once the slot was free"
        );
        let refused = Admission::wait_blocking(&Pool::new(0), &share, Duration::from_millis(20));
        assert!(
            matches!(refused, Err(Refusal::WaitedTooLong { .. })),
            "{refused:?}"
        );
    }

    fn futures_poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = Waker::noop();
        match future.poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }
}
