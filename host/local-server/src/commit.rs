//! Group commit: every hot write of the server (row writes, tunnel state) runs on one writer
//! thread, which applies in one redb transaction, in order, the writes waiting when it is free
//! and those that arrive while it applies them, then commits once. redb admits one writer and
//! each commit syncs the disk, so a commit per request made the commit, not the work, the
//! server's ceiling; grouped, the cost of a commit is shared by every write that waited for it.
//!
//! A write is acknowledged only after its group's commit returned, so an acknowledged write
//! survives a crash as before. A write that fails with the server's own failure (storage, a
//! panic) aborts its group, and every write of the group gets that failure: none of them was
//! applied, so none is lost; each write's own errors (a condition, a missing table) are its
//! alone, and such a write changes nothing before it fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use ots_protocol::error::ErrorCode;
use redb::{Database, WriteTransaction};

use crate::error::ApiError;

/// Most writes one group holds, so that one group's commit does not grow without bound under
/// a flood of writers.
const MAX_GROUP: usize = 256;

/// What a write did in its group's transaction: whether it asks the group to abort, and how to
/// answer its caller once the group's fate is known.
struct Done {
    aborts: Option<ApiError>,
    answer: Box<dyn FnOnce(Result<(), ApiError>) + Send>,
}

/// A queued write: runs in the group's transaction, or learns that the group has none.
type Job = Box<dyn FnOnce(Result<&WriteTransaction, &ApiError>) -> Done + Send>;

/// The writer thread and the queue to it.
pub struct GroupCommit {
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the writer of `db`.
    pub fn start(db: Arc<Database>) -> Self {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ots-group-commit".into())
            .spawn(move || run(&db, &jobs))
            .expect("the writer thread starts");
        Self {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Runs `write` in the transaction of the next group and returns what it returned once that
    /// group is committed, or the group's failure.
    pub fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&WriteTransaction) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |txn| {
            let result = match txn {
                Ok(txn) => catch_unwind(AssertUnwindSafe(|| write(txn))).unwrap_or_else(|panic| {
                    Err(ApiError::new(
                        ErrorCode::InternalServerError,
                        format!("a write panicked: {}", panic_message(&*panic)),
                    ))
                }),
                Err(e) => Err(e.clone()),
            };
            let aborts = match &result {
                Err(e) if e.code == ErrorCode::InternalServerError => Some(e.clone()),
                _ => None,
            };
            Done {
                aborts,
                answer: Box::new(move |commit| {
                    let _ = reply.send(commit.and(result));
                }),
            }
        });
        let stopped = || ApiError::internal("the writer has stopped");
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl Drop for GroupCommit {
    /// Waits for the writer to finish what is queued and let go of the database, so the same
    /// files can be opened again at once.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_owned(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".to_owned(),
    }
}

/// The writer: waits for a write, then commits a group that starts with it.
fn run(db: &Database, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        commit_group(db, first, jobs);
    }
}

/// Applies `first` and, while another write is already queued when one is done, that one too
/// (a write arriving while the group is applied shares its commit instead of waiting for the
/// next), then commits the group.
fn commit_group(db: &Database, first: Job, jobs: &Receiver<Job>) {
    let txn = db.begin_write().map_err(ApiError::from);
    let mut answers = Vec::new();
    let mut abort = None;
    let mut next = Some(first);
    while let Some(job) = next {
        let done = job(txn.as_ref());
        if abort.is_none() {
            abort = done.aborts;
        }
        answers.push(done.answer);
        next = match answers.len() < MAX_GROUP {
            true => jobs.try_recv().ok(),
            false => None,
        };
    }
    let outcome = match (txn, abort) {
        (Err(e), _) => Err(e),
        (Ok(txn), Some(e)) => {
            // Nothing of the group is kept; the abort's own failure adds nothing to `e`.
            let _ = txn.abort();
            Err(e)
        }
        (Ok(txn), None) => txn.commit().map_err(ApiError::from),
    };
    for answer in answers {
        answer(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn open() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap();
        txn.commit().unwrap();
        (dir, db)
    }

    fn insert(key: &'static str) -> impl FnOnce(&WriteTransaction) -> Result<(), ApiError> {
        move |txn| {
            txn.open_table(T)?.insert(key, 1)?;
            Ok(())
        }
    }

    fn present(db: &Database, key: &str) -> bool {
        let txn = db.begin_read().unwrap();
        txn.open_table(T).unwrap().get(key).unwrap().is_some()
    }

    /// Holds the writer in a write until the returned sender is used, so that the writes
    /// queued meanwhile join its group.
    fn hold_writer(
        writes: &Arc<GroupCommit>,
    ) -> (
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<(), ApiError>>,
    ) {
        let (release, held) = mpsc::channel::<()>();
        let writes = writes.clone();
        let holder = std::thread::spawn(move || {
            writes.write(move |_| {
                held.recv().unwrap();
                Ok(())
            })
        });
        std::thread::sleep(Duration::from_millis(200));
        (release, holder)
    }

    fn queue<T: Send + 'static>(
        writes: &Arc<GroupCommit>,
        write: impl FnOnce(&WriteTransaction) -> Result<T, ApiError> + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T, ApiError>> {
        let writes = writes.clone();
        std::thread::spawn(move || writes.write(write))
    }

    #[test]
    fn concurrent_writes_are_all_committed_before_they_are_acknowledged() {
        let (_dir, db) = open();
        let writes = Arc::new(GroupCommit::start(db.clone()));
        let keys: Vec<&'static str> = (0..64)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let threads: Vec<_> = keys.iter().map(|&k| queue(&writes, insert(k))).collect();
        for (thread, key) in threads.into_iter().zip(&keys) {
            thread.join().unwrap().unwrap();
            // Acknowledged, so a reader sees it.
            assert!(present(&db, key), "{key} acknowledged but not visible");
        }
    }

    #[test]
    fn a_writes_own_error_is_its_alone_but_a_server_failure_aborts_the_group() {
        let (_dir, db) = open();
        let writes = Arc::new(GroupCommit::start(db.clone()));

        let (release, holder) = hold_writer(&writes);
        let refused = queue(&writes, |txn| {
            txn.open_table(T)?;
            Err::<(), _>(ApiError::invalid("refused"))
        });
        let beside_refused = queue(&writes, insert("a"));
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        holder.join().unwrap().unwrap();
        assert_eq!(
            refused.join().unwrap().unwrap_err().code,
            ErrorCode::ParameterInvalid
        );
        beside_refused.join().unwrap().unwrap();
        assert!(present(&db, "a"));

        let (release, holder) = hold_writer(&writes);
        let panics = queue(&writes, |txn| -> Result<(), ApiError> {
            txn.open_table(T)?.insert("b", 1)?;
            panic!("broken write")
        });
        let beside_panic = queue(&writes, insert("c"));
        std::thread::sleep(Duration::from_millis(200));
        release.send(()).unwrap();
        let held = holder.join().unwrap();
        let error = panics.join().unwrap().unwrap_err();
        assert_eq!(error.code, ErrorCode::InternalServerError);
        assert!(error.message.contains("broken write"), "{}", error.message);
        assert_eq!(
            beside_panic.join().unwrap().unwrap_err(),
            error,
            "the other write of the group gets the same failure"
        );
        assert_eq!(held, Err(error), "so does the write the others joined");
        assert!(
            !present(&db, "b") && !present(&db, "c"),
            "nothing of the group is kept"
        );

        // The writer goes on after an aborted group.
        writes.write(insert("d")).unwrap();
        assert!(present(&db, "d"));
    }

    #[test]
    fn dropping_the_writer_lets_go_of_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = Arc::new(Database::create(&path).unwrap());
        let writes = GroupCommit::start(db.clone());
        writes.write(insert("x")).unwrap();
        drop((db, writes));
        Database::create(&path).expect("the file is free again");
    }
}
