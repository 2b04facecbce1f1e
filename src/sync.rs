//! The locks that the concurrency checkers drive: `parking_lot`'s normally, shuttle's in a
//! `RUSTFLAGS="--cfg shuttle"` build, loom's in the loom models.
//!
//! Code whose interleavings are checked (the shard locks of the keyspace, the AOF's
//! group-commit hand-off) takes its `Mutex`, `MutexGuard` and `Condvar` from here, so a
//! checker runs the production code itself, not a copy. The normal build re-exports
//! `parking_lot` unchanged: no wrapper, no cost. The checkers' locks have std's API (a
//! `LockResult`, a `wait` that takes the guard by value); [`parking_lot_api!`] wraps them in
//! `parking_lot`'s, the one the code is written against.
//!
//! loom cannot be switched on crate-wide: `--cfg loom` is also read by tokio, which then fails
//! to build as a dependency. A loom model instead compiles the module under test on its own
//! (`#[path]`) beside a `sync` module made with `parking_lot_api!(loom)`; see
//! `tests/loom_aof_handoff.rs`. Such a module names nothing of the crate but `crate::sync`.

#[cfg(not(shuttle))]
pub use parking_lot::{Condvar, Mutex, MutexGuard};

#[cfg(shuttle)]
mod checked {
    crate::parking_lot_api!(shuttle);
}
#[cfg(shuttle)]
pub use checked::{Condvar, Mutex, MutexGuard};

pub use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where the AOF publishes its durable offset for the clients waiting on it.
pub type Watch<T> = tokio::sync::watch::Sender<T>;

/// Defines `Mutex`, `MutexGuard` and `Condvar` with `parking_lot`'s API over the std-like
/// ones of `$checker::sync` (`shuttle` or `loom`). A poisoned lock means a checked thread
/// panicked, which has already failed the check, so poisoning is passed over.
#[doc(hidden)]
#[macro_export]
macro_rules! parking_lot_api {
    ($checker:ident) => {
        /// A mutex with `parking_lot`'s API.
        #[derive(Debug, Default)]
        pub struct Mutex<T>($checker::sync::Mutex<T>);

        impl<T> Mutex<T> {
            pub fn new(value: T) -> Mutex<T> {
                Mutex($checker::sync::Mutex::new(value))
            }

            pub fn lock(&self) -> MutexGuard<'_, T> {
                let guard = self
                    .0
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                MutexGuard(Some(guard))
            }

            pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
                self.0.try_lock().ok().map(|guard| MutexGuard(Some(guard)))
            }

            pub fn get_mut(&mut self) -> &mut T {
                self.0
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            }
        }

        /// Held while `Some`; `None` only inside [`Condvar`]'s waits, which take the inner
        /// guard by value and put the reacquired one back.
        pub struct MutexGuard<'a, T>(Option<$checker::sync::MutexGuard<'a, T>>);

        impl<T> std::ops::Deref for MutexGuard<'_, T> {
            type Target = T;
            fn deref(&self) -> &T {
                self.0.as_ref().expect("a guard outside a wait")
            }
        }

        impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                self.0.as_mut().expect("a guard outside a wait")
            }
        }

        /// A condition variable with `parking_lot`'s API.
        #[derive(Debug, Default)]
        pub struct Condvar($checker::sync::Condvar);

        impl Condvar {
            pub fn new() -> Condvar {
                Condvar($checker::sync::Condvar::new())
            }

            pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
                let inner = guard.0.take().expect("a held guard");
                let inner = self
                    .0
                    .wait(inner)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                guard.0 = Some(inner);
            }

            /// Waits without the time-out: under a checker a wait that only a time-out ends
            /// is a lost wake-up, which must show as a deadlock rather than be papered over.
            pub fn wait_for<T>(
                &self,
                guard: &mut MutexGuard<'_, T>,
                _timeout: std::time::Duration,
            ) {
                self.wait(guard);
            }

            pub fn notify_one(&self) -> bool {
                self.0.notify_one();
                true
            }

            pub fn notify_all(&self) -> usize {
                self.0.notify_all();
                0
            }
        }
    };
}
