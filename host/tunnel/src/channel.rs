//! One channel's pipeline: a reader task that fetches the next page while the current one is
//! taken by the sink, and a loop that checkpoints each batch after it is durable.
//!
//! Where it differs from the official workers, on purpose (Go `tunnel/channel.go`,
//! `tunnel/checkpointer.go`; Java `ProcessDataPipeline.java`, `Checkpointer.java`):
//!
//! - It checkpoints after every batch, once the batch is durable (the SDKs checkpoint the
//!   newest token every 5 or 10 s): fewer records are delivered twice after a crash or a move.
//! - On `OTSSequenceNumberNotMatch` it reads the stored checkpoint, as the SDKs do, and carries
//!   on from its sequence number only if the stored token is its own (its previous attempt was
//!   stored, the answer lost); the SDKs take the number and drop that checkpoint, but a
//!   checkpoint here stands for durable rows, so another writer's token means the channel is
//!   no longer this worker's.
//! - A failed read or GetCheckpoint is retried with backoff in place (the SDKs close the
//!   channel and report it CLOSE, to be handed out again).
//! - After a non-empty page it reads at once, and after an empty one it pauses from 10 ms
//!   doubling to `idle_pause` (the SDKs: 20 ms ×5 up to 5 s), unless the server says more
//!   records may be there (`may_more_record`), for a low lag.

use std::sync::Arc;
use std::time::Duration;

use ots_client::ClientError;
use ots_client::tunnel::RecordPage;
use ots_protocol::error::ErrorCode;
use ots_protocol::pb::tunnel::FINISH_TAG;
use tokio::sync::{mpsc, watch};

use crate::budget::{FIRST_GUESS, Reservation};
use crate::worker::{Shared, WorkerError};
use crate::{Flow, RecordBatch, RecordSink};

/// How a channel's pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelEnd {
    /// Every record was taken and the finish checkpoint stored.
    Finished,
    /// Stopped on request, moved to another worker, or held at an end time.
    Stopped,
}

/// Whether an error means the channel (or this client) no longer belongs to us.
fn lost(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(ErrorCode::ResourceGone | ErrorCode::PermissionDenied)
    )
}

pub(crate) async fn run<S: RecordSink>(
    shared: Arc<Shared>,
    sink: Arc<S>,
    channel: String,
    mut stop: watch::Receiver<bool>,
) -> ChannelEnd {
    let end = pipeline(&shared, &*sink, &channel, &mut stop).await;
    sink.channel_closed(&channel).await;
    end
}

async fn pipeline<S: RecordSink>(
    shared: &Arc<Shared>,
    sink: &S,
    channel: &str,
    stop: &mut watch::Receiver<bool>,
) -> ChannelEnd {
    let (token, mut sequence) = loop {
        match shared
            .client
            .get_checkpoint(&shared.tunnel_id, &shared.client_id, channel)
            .await
        {
            Ok(c) => break (c.checkpoint, c.sequence_number),
            Err(e) if lost(&e) => return ChannelEnd::Stopped,
            Err(e) => {
                tracing::warn!(channel, error = %e, "GetCheckpoint failed; retrying");
                if sleep_or_stop(shared.config.backoff(1), stop).await {
                    return ChannelEnd::Stopped;
                }
            }
        }
    };
    if token == FINISH_TAG {
        return ChannelEnd::Finished;
    }
    // Capacity 1: one page waits while the sink takes the previous one (read-ahead). Each
    // page comes with its share of the worker's read budget, let go once it is checkpointed.
    let (pages, mut next) = mpsc::channel::<(RecordPage, Reservation)>(1);
    let reader = tokio::spawn(read_pages(
        shared.clone(),
        channel.to_owned(),
        token,
        pages,
        stop.clone(),
    ));
    // `None`: the sink held the channel at the end time.
    let end = loop {
        let page = tokio::select! {
            page = next.recv() => page,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some((page, _held)) = page else {
            break Some(ChannelEnd::Stopped);
        };
        let batch = RecordBatch {
            channel_id: channel.to_owned(),
            ends_channel: page.is_finished(),
            records: page.records,
        };
        match take_with_retry(shared, sink, &batch, stop).await {
            Some(Flow::Continue) => {}
            Some(Flow::Hold) => break None,
            None => break Some(ChannelEnd::Stopped),
        }
        sequence += 1;
        match checkpoint(shared, channel, &page.next_token, sequence, stop).await {
            Some(stored) => sequence = stored,
            None => break Some(ChannelEnd::Stopped),
        }
        if page.next_token == FINISH_TAG {
            tracing::info!(channel, "channel finished");
            break Some(ChannelEnd::Finished);
        }
    };
    reader.abort();
    if let Some(end) = end {
        return end;
    }
    // Held: the channel reads no further, so its pages (the held one went with the loop, the
    // waiting one goes with the queue, the reader's with the reader) give their share of the
    // read budget back now: the channels short of the end time may need it to get there.
    drop(next);
    let _ = stop.wait_for(|s| *s).await;
    ChannelEnd::Stopped
}

/// Hands a batch to the sink, backing off and retrying retriable failures; a non-retriable
/// failure fails the worker. `None` when the channel must stop without checkpointing.
async fn take_with_retry<S: RecordSink>(
    shared: &Arc<Shared>,
    sink: &S,
    batch: &RecordBatch,
    stop: &mut watch::Receiver<bool>,
) -> Option<Flow> {
    let mut attempt = 0;
    loop {
        match sink.take(batch).await {
            Ok(flow) => return Some(flow),
            Err(e) if e.retriable => {
                attempt += 1;
                tracing::warn!(channel = %batch.channel_id, error = %e, attempt, "the sink failed; retrying the same batch");
                if sleep_or_stop(shared.config.backoff(attempt), stop).await {
                    return None;
                }
            }
            Err(e) => {
                shared.fail(WorkerError::Sink {
                    channel: batch.channel_id.clone(),
                    source: e,
                });
                return None;
            }
        }
    }
}

/// Stores a checkpoint, retrying transient failures; returns the sequence number it is stored
/// under, or `None` when the channel is lost or the worker stops.
async fn checkpoint(
    shared: &Arc<Shared>,
    channel: &str,
    token: &str,
    sequence: i64,
    stop: &mut watch::Receiver<bool>,
) -> Option<i64> {
    let mut attempt = 0;
    loop {
        let error = match shared
            .client
            .checkpoint(
                &shared.tunnel_id,
                &shared.client_id,
                channel,
                token,
                sequence,
            )
            .await
        {
            Ok(()) => return Some(sequence),
            Err(e) if lost(&e) => {
                tracing::info!(channel, error = %e, "channel lost; another worker resumes it from its checkpoint");
                return None;
            }
            Err(e) if e.is(ErrorCode::SequenceNumberNotMatch) => {
                match shared
                    .client
                    .get_checkpoint(&shared.tunnel_id, &shared.client_id, channel)
                    .await
                {
                    Ok(stored) if stored.checkpoint == token => {
                        return Some(stored.sequence_number);
                    }
                    Ok(stored) => {
                        tracing::info!(
                            channel,
                            sequence,
                            stored = stored.sequence_number,
                            "the channel was checkpointed by another worker; leaving it"
                        );
                        return None;
                    }
                    Err(e) if lost(&e) => return None,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        attempt += 1;
        tracing::warn!(channel, error = %error, attempt, "checkpoint failed; retrying");
        if sleep_or_stop(shared.config.backoff(attempt), stop).await {
            return None;
        }
    }
}

/// The pause after the first empty poll of a channel; it doubles while the channel stays
/// idle, up to the configured `idle_pause`, so a channel that just went quiet is polled again
/// soon (low lag) and a quiet one rarely.
const FIRST_IDLE_PAUSE: Duration = Duration::from_millis(10);

/// Reads pages from `token` on, one ahead of the sink, until the channel ends or is lost; each
/// read first reserves, in the worker's read budget, the size of the largest page this
/// channel has read (`crate::budget` says why).
async fn read_pages(
    shared: Arc<Shared>,
    channel: String,
    mut token: String,
    pages: mpsc::Sender<(RecordPage, Reservation)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt = 0;
    let mut largest = FIRST_GUESS;
    let mut idle = FIRST_IDLE_PAUSE.min(shared.config.idle_pause);
    while token != FINISH_TAG {
        let mut held = tokio::select! {
            held = shared.budget.reserve(largest) => held,
            _ = stop.wait_for(|s| *s) => return,
        };
        let page = match shared
            .client
            .read_records(&shared.tunnel_id, &shared.client_id, &channel, &token)
            .await
        {
            Ok(page) => page,
            Err(e) if lost(&e) => return,
            Err(e) => {
                attempt += 1;
                tracing::warn!(channel, error = %e, attempt, "ReadRecords failed; retrying");
                if sleep_or_stop(shared.config.backoff(attempt), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        attempt = 0;
        held.resize(page.bytes);
        largest = largest.max(page.bytes);
        if page.records.is_empty() && page.next_token == token {
            drop(held);
            if page.may_more_record {
                continue;
            }
            if sleep_or_stop(idle, &mut stop).await {
                return;
            }
            idle = (idle * 2).min(shared.config.idle_pause);
            continue;
        }
        idle = FIRST_IDLE_PAUSE.min(shared.config.idle_pause);
        token = page.next_token.clone();
        if pages.send((page, held)).await.is_err() {
            return;
        }
    }
}

/// Sleeps; `true` if the worker was asked to stop meanwhile.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}
