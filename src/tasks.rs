//! The tasks a node runs, each with a name: shutdown waits for all of them, and when one does
//! not end in time it can say which, not only how many.
//!
//! A name is a fixed string chosen where the task is spawned (never text from a peer), so a
//! log line that names late tasks cannot carry anything hostile. Imports nothing from the
//! crate.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// A `TaskTracker` whose tasks carry names. Clones share the same tasks.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    running: Arc<Running>,
}

#[derive(Default)]
struct Running {
    next: AtomicU64,
    names: Mutex<HashMap<u64, &'static str>>,
}

impl Running {
    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<u64, &'static str>> {
        // A panic while the map was held leaves it whole (inserts and removes are single
        // calls), so a poisoned lock is still right to read.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Holds a task's name in the running set for as long as the task's future exists: dropped
/// when it finishes, panics or is aborted.
struct Named {
    running: Arc<Running>,
    key: u64,
}

impl Drop for Named {
    fn drop(&mut self) {
        self.running.names().remove(&self.key);
    }
}

impl Tasks {
    /// Run `task` as one of these tasks, known as `name` until it ends.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let key = self.running.next.fetch_add(1, Ordering::Relaxed);
        self.running.names().insert(key, name);
        let named = Named {
            running: self.running.clone(),
            key,
        };
        self.tracker.spawn(async move {
            let _named = named;
            task.await
        })
    }

    /// No task may be added after this: `wait` returns once the ones there are have ended.
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Until `close` was called and every task ended.
    pub async fn wait(&self) {
        self.tracker.wait().await
    }

    /// The names of the tasks still running, sorted, one entry per task.
    pub fn running(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.running.names().values().copied().collect();
        names.sort_unstable();
        names
    }
}

/// `running`'s list said shortly: each name once, with how many run under it when more than one.
pub fn summary(names: &[&'static str]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let n = names[i..].iter().take_while(|&&x| x == names[i]).count();
        out.push(if n == 1 {
            names[i].to_string()
        } else {
            format!("{} ×{n}", names[i])
        });
        i += n;
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_is_named_while_it_runs_and_forgotten_when_it_ends() {
        let tasks = Tasks::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tasks.spawn("stuck", async move { s.cancelled().await });
        tasks.spawn("quick", async {}).await.unwrap();
        let aborted = tasks.spawn("aborted", std::future::pending::<()>());
        aborted.abort();
        let _ = aborted.await;
        assert_eq!(tasks.running(), ["stuck"]);
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        assert!(tasks.running().is_empty());
    }

    #[test]
    fn the_summary_counts_names_that_repeat() {
        assert_eq!(summary(&["a", "b", "b", "c"]), "a, b ×2, c");
        assert_eq!(summary(&[]), "");
    }
}
