//! Group commit: concurrent single-command writes (`EventStore::execute`) are appended
//! together, in ONE statement and so one durable commit, instead of one commit each.
//!
//! Each write decides its command in its own task (reading its stream if it must), then hands
//! its batch to a writer. A writer takes the first batch waiting and whatever else is already
//! queued behind it (up to `GROUP`, never waiting for more: an idle server adds no delay), and
//! appends them with the batch path `$batch` and `openspp import` use, so the feed stays
//! gap-free and ordered, every event keeps its own command's provenance, and every consent
//! and status a command relied on is held until the commit. Each write then gets the part of
//! the receipt that names its streams, and answers from it.
//!
//! A group is all or nothing, so a failure that belongs to one member (an identifier already
//! claimed, a lost race for a stream, a consent or status that no longer holds) would fail the
//! others for nothing: then every member decides its command again and commits alone, on the
//! ordinary path (conflict retries, `commit_afresh`), and gets exactly the answer it would have
//! had alone. Two writes to the same stream never share a group: the second waits for the next.
//! Only a broken connection is answered for the group as a whole, once it is settled whether
//! the statement committed (`Batch::failed`): then every member's write did, or none did.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use openspp_aggregates::DomainError;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::batch::{Batch, Failure, Receipt, StreamKey};
use super::error::{Fault, StoreError};
use super::executor::EventStore;

/// The most writes appended in one statement.
const GROUP: usize = 64;

/// Writers appending groups side by side: while one group commits (its WAL flush), the next
/// one gathers and is sent.
const WRITERS: usize = 2;

/// What a write handed to the group gets back.
pub(crate) enum Handed {
    /// Its batch (empty once written), with what the attempt came to: for a group, the part
    /// of its receipt; for a write that was alone in the queue, its own attempt, to be settled
    /// by the caller as `Batch::commit` settles it.
    Written(Batch<DomainError>, Result<Receipt, Failure<DomainError>>),
    /// The group failed for a reason that may belong to one member: nothing was written; decide
    /// the command again and commit alone.
    Alone(Batch<DomainError>),
    /// The connection broke while the group's statement was out, and whether it committed could
    /// not be told.
    Unknown,
}

struct Member {
    batch: Batch<DomainError>,
    reply: oneshot::Sender<Handed>,
}

/// The way into the writers, started with the first write.
#[derive(Clone, Default)]
pub(crate) struct Group {
    queue: Arc<OnceLock<mpsc::UnboundedSender<Member>>>,
}

impl Group {
    /// Appends what `batch` decided, with whatever other writes are waiting.
    pub async fn commit(&self, store: &EventStore, batch: Batch<DomainError>) -> Handed {
        let queue = self.queue.get_or_init(|| start(store));
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(member)) = queue.send(Member { batch, reply }) {
            // No writer is left (the runtime is shutting down): the write commits alone.
            return Handed::Alone(member.batch);
        }
        // A writer that vanished with the batch cannot tell whether it committed.
        answer.await.unwrap_or(Handed::Unknown)
    }
}

/// Starts the writers. They append with a store of their own, without a group (so that they
/// end once every handle of the store that started them is gone).
fn start(store: &EventStore) -> mpsc::UnboundedSender<Member> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..WRITERS {
        tokio::spawn(writer(store.without_group(), receiver.clone()));
    }
    sender
}

async fn writer(store: EventStore, queue: Arc<Mutex<mpsc::UnboundedReceiver<Member>>>) {
    let mut next: Option<Member> = None;
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let first = match next.take() {
                Some(member) => member,
                None => match queue.recv().await {
                    Some(member) => member,
                    None => return,
                },
            };
            let mut streams: HashSet<StreamKey> = first.batch.keys().cloned().collect();
            let mut group = vec![first];
            while group.len() < GROUP {
                let Ok(member) = queue.try_recv() else { break };
                if member.batch.keys().any(|key| streams.contains(key)) {
                    next = Some(member);
                    break;
                }
                streams.extend(member.batch.keys().cloned());
                group.push(member);
            }
            group
        };
        append(&store, group).await;
    }
}

/// Appends `group` in one statement and answers each member.
async fn append(store: &EventStore, mut group: Vec<Member>) {
    if group.len() == 1 {
        let Member { mut batch, reply } = group.remove(0);
        let written = batch.write().await;
        let _ = reply.send(Handed::Written(batch, written));
        return;
    }
    let mut together = store.batch::<DomainError>();
    let shares: Vec<Vec<StreamKey>> = group
        .iter_mut()
        .map(|member| together.absorb(&mut member.batch))
        .collect();
    let mut written = match together.write().await {
        Ok(receipt) => Some(Ok(receipt)),
        Err(Failure::Statement(failed))
            if matches!(Fault::of(&failed.error), Fault::Lost { .. }) =>
        {
            match together.failed(failed).await {
                Ok(receipt) => Some(Ok(receipt)),
                Err(StoreError::OutcomeUnknown) => Some(Err(())),
                // Nothing was written (the server ended the session).
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    for (member, share) in group.into_iter().zip(shares) {
        let handed = match &mut written {
            Some(Ok(receipt)) => Handed::Written(member.batch, Ok(receipt.part(&share))),
            Some(Err(())) => Handed::Unknown,
            None => Handed::Alone(member.batch),
        };
        let _ = member.reply.send(handed);
    }
}
