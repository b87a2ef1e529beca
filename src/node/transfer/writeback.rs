//! Writing a big file's verified chunks to the disk while the rest still arrives. A received
//! file is fsynced before it gets its name; without this, all of its bytes waited in the page
//! cache for that one fsync (for 1 GiB, seconds after the last byte came). A thread of its own
//! asks the kernel to write out what is there so far (`fdatasync` of a second handle), at most
//! one request at a time; the disk thread never waits for it.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::node::lock;

/// Bytes written between two requests.
pub(crate) const EVERY: u64 = 32 << 20;

#[derive(Default)]
pub(crate) struct Writeback {
    worker: Mutex<Option<(mpsc::Sender<File>, std::thread::JoinHandle<()>)>>,
    busy: Arc<AtomicBool>,
}

impl Writeback {
    /// Start writing out `file`'s dirty bytes, unless a request is still running (the next one
    /// then covers these bytes too).
    pub fn request(&self, file: &File) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let sent = file.try_clone().ok().is_some_and(|copy| {
            let mut worker = lock(&self.worker);
            if worker.is_none() {
                let (tx, rx) = mpsc::channel::<File>();
                let busy = self.busy.clone();
                let thread = std::thread::Builder::new().name("lanyard-writeback".into()).spawn(move || {
                    for f in rx {
                        // Errors show in the fsync before the file is placed.
                        let _ = f.sync_data();
                        busy.store(false, Ordering::Release);
                    }
                });
                *worker = thread.ok().map(|t| (tx, t));
            }
            worker.as_ref().is_some_and(|(tx, _)| tx.send(copy).is_ok())
        });
        if !sent {
            self.busy.store(false, Ordering::Release);
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        if let Some((tx, thread)) = lock(&self.worker).take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn requests_while_one_runs_are_folded_and_drop_waits_for_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("f")).unwrap();
        let writeback = Writeback::default();
        for _ in 0..50 {
            file.write_all(&[7u8; 4096]).unwrap();
            writeback.request(&file);
        }
        drop(writeback);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), vec![7u8; 50 * 4096]);
    }
}
