//! The read budget: how many bytes of records a worker's channels hold at once, summed over
//! every channel — the page being read, the page waiting, the page the sink is taking — so
//! that a worker with a hundred channels holds a bounded amount, not a hundred times three
//! pages.
//!
//! A channel reserves before it reads, since the records are decoded as they arrive: it
//! reserves the size of the largest page it has read so far (a first guess before its first
//! page), waiting until the budget has room. Once the page is there its reservation becomes the
//! page's size at once, without waiting: a page larger than the guess is already in memory,
//! and a reader that waited for the difference while holding its guess could wait forever on
//! other readers doing the same. So the budget is exceeded only by pages larger than any their
//! channel read before, by at most their growth. A reservation is let go when its page is
//! checkpointed (or dropped).
//!
//! A reservation larger than the whole budget waits until nothing else is held and then goes
//! alone, so one huge page slows the worker down rather than stopping it.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// What a channel reserves before its first page: a local server's full page of small rows.
pub(crate) const FIRST_GUESS: usize = 256 * 1024;

/// A byte budget shared by a worker's channels.
#[derive(Debug)]
pub(crate) struct ReadBudget {
    total: usize,
    held: Mutex<usize>,
    freed: Notify,
}

impl ReadBudget {
    /// A budget of `total` bytes.
    pub(crate) fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            held: Mutex::new(0),
            freed: Notify::new(),
        })
    }

    /// Waits until `bytes` fit in what is left (or nothing is held), then reserves them.
    pub(crate) async fn reserve(self: &Arc<Self>, bytes: usize) -> Reservation {
        loop {
            // Created before the check, so a release between the check and the wait wakes it.
            let freed = self.freed.notified();
            {
                let mut held = self.lock();
                if *held == 0 || *held + bytes <= self.total {
                    *held += bytes;
                    return Reservation {
                        budget: self.clone(),
                        bytes,
                    };
                }
            }
            freed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            *self.lock() -= bytes;
            self.freed.notify_waiters();
        }
    }
}

/// Bytes of a [`ReadBudget`] held for one page; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<ReadBudget>,
    bytes: usize,
}

impl Reservation {
    /// Holds `bytes` instead, at once: more when the page came larger than reserved (the
    /// budget may be exceeded by the difference), less when it came smaller (the rest is given
    /// back).
    pub(crate) fn resize(&mut self, bytes: usize) {
        if bytes > self.bytes {
            *self.budget.lock() += bytes - self.bytes;
        } else {
            self.budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    impl ReadBudget {
        fn held(&self) -> usize {
            *self.lock()
        }
    }

    /// Whether `reserve` is still waiting after a moment.
    async fn waits(budget: &Arc<ReadBudget>, bytes: usize) -> bool {
        tokio::time::timeout(Duration::from_millis(50), budget.reserve(bytes))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn reservations_wait_for_room_and_resume_when_it_is_freed() {
        let budget = ReadBudget::new(100);
        let first = budget.reserve(60).await;
        let second = budget.reserve(40).await;
        assert_eq!(budget.held(), 100);
        assert!(waits(&budget, 1).await, "the budget is full");
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await }
        });
        drop(second);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "60 held and 50 wanted do not fit in 100"
        );
        drop(first);
        let third = waiting.await.unwrap();
        assert_eq!(budget.held(), 50);
        drop(third);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_page_larger_than_its_guess_is_held_at_once_and_the_surplus_of_a_smaller_one_freed() {
        let budget = ReadBudget::new(100);
        let mut page = budget.reserve(30).await;
        page.resize(120);
        assert_eq!(budget.held(), 120, "grown past the total, without waiting");
        assert!(
            waits(&budget, 10).await,
            "nothing more fits while it is held"
        );
        page.resize(10);
        assert_eq!(budget.held(), 10);
        let other = budget.reserve(90).await;
        assert_eq!(budget.held(), 100);
        drop((page, other));
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_reservation_larger_than_the_budget_goes_alone() {
        let budget = ReadBudget::new(100);
        let small = budget.reserve(10).await;
        assert!(waits(&budget, 500).await, "it waits for the others to go");
        drop(small);
        let huge = budget.reserve(500).await;
        assert_eq!(budget.held(), 500);
        assert!(waits(&budget, 1).await);
        drop(huge);
    }
}
