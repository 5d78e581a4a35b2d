//! Group commit: concurrent single-command writes (`EventStore::execute`) are appended
//! together, in ONE statement and so one durable commit, instead of one commit each.
//!
//! Each write decides its command in its own task (reading its stream if it must), then hands
//! its batch to a writer. A writer takes the first batch waiting and whatever else is already
//! queued behind it (up to `GROUP`; under load it may hold the group open a little for more,
//! `GATHER`, never on an idle or lightly loaded server), and appends them with the batch path
//! `$batch` and `openspp import` use, so the feed stays gap-free and ordered, every event keeps
//! its own command's provenance, and every consent and status a command relied on is held
//! until the commit. Each write then gets the part of the receipt that names its streams, and
//! answers from it.
//!
//! A group is all or nothing, so a failure that belongs to one member (an identifier already
//! claimed, a lost race for a stream, a consent or status that no longer holds) would fail the
//! others for nothing: then every member decides its command again and commits alone, on the
//! ordinary path (conflict retries, `commit_afresh`), and gets exactly the answer it would have
//! had alone. Two writes to the same stream never share a group: the second waits for the next.
//! Only a broken connection is answered for the group as a whole, once it is settled whether
//! the statement committed (`Batch::failed`): then every member's write did, or none did.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openspp_aggregates::DomainError;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

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
    let out = Arc::new(Out::default());
    for _ in 0..WRITERS {
        tokio::spawn(writer(store.without_group(), receiver.clone(), out.clone()));
    }
    sender
}

/// Under load, a writer holds its group open until it has this many writes: while the other
/// writer's group is out (its statement running or committing) and carries more than one write
/// (the sign of load), a writer that finds the queue empty waits for the next write to arrive,
/// for that group to come back, or for `WAIT`, whichever is first. The writes that arrive
/// meanwhile would wait for the next group anyway, and one statement of four registrations
/// costs PostgreSQL less than two of two: the append statement has a cost of its own several
/// times a registration's (pg_stat_statements: 0.67 ms for groups of 7.8, 0.47 ms for groups of
/// 1.9). On a lightly loaded server (the group out carries one write) nothing waits: holding
/// the group open there made two clients' writes alternate, one statement at a time (-10 %).
/// Measured by A/B with 2, 4, 8 and 16 clients in the commit that set this.
const GATHER: usize = 4;

/// The longest a writer holds its group open (`GATHER`): a group out that takes long (a lost
/// connection being settled) must not hold up the writes gathered behind it.
const WAIT: Duration = Duration::from_millis(5);

/// The writes in the groups out (appending), and a wake-up each time a group comes back.
#[derive(Default)]
struct Out {
    writes: AtomicUsize,
    back: Notify,
}

/// A group out, its writes counted until it is back, however its append ends (a panic or a
/// dropped future included: a writer holding its group open for it must not wait on it).
struct Outgoing<'a> {
    out: &'a Out,
    writes: usize,
}

impl<'a> Outgoing<'a> {
    fn leave(out: &'a Out, writes: usize) -> Self {
        out.writes.fetch_add(writes, Ordering::AcqRel);
        Self { out, writes }
    }
}

impl Drop for Outgoing<'_> {
    fn drop(&mut self) {
        self.out.writes.fetch_sub(self.writes, Ordering::AcqRel);
        self.out.back.notify_waiters();
    }
}

async fn writer(
    store: EventStore,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Member>>>,
    out: Arc<Out>,
) {
    let mut next: Option<Member> = None;
    loop {
        // The guard must live until the append is done: it is what tells the other writer
        // that this group is out.
        let (group, _group_out) = {
            let mut queue = queue.lock().await;
            let first = match next.take() {
                Some(member) => member,
                None => match queue.recv().await {
                    Some(member) => member,
                    None => return,
                },
            };
            let (group, held, group_out) = gather(&mut queue, &out, first, |m| {
                m.batch.keys().cloned().collect()
            })
            .await;
            next = held;
            (group, group_out)
        };
        append(&store, group).await;
    }
}

/// The group that `first` leads: what follows it in the queue, up to `GROUP` (and, under load,
/// what arrives soon after: `GATHER`), stopping before a write to a stream already in the group
/// (returned, to lead the next group). The group is counted out (the guard) before the queue's
/// lock is released, so the other writer sees it.
async fn gather<'o, T, K: Eq + std::hash::Hash>(
    queue: &mut mpsc::UnboundedReceiver<T>,
    out: &'o Out,
    first: T,
    keys: impl Fn(&T) -> Vec<K>,
) -> (Vec<T>, Option<T>, Outgoing<'o>) {
    let mut streams: HashSet<K> = keys(&first).into_iter().collect();
    let mut group = vec![first];
    let mut held = None;
    while group.len() < GROUP {
        let member = match queue.try_recv() {
            Ok(member) => member,
            Err(_) if group.len() >= GATHER => break,
            Err(_) => match arriving(queue, out).await {
                Some(member) => member,
                None => break,
            },
        };
        let member_keys = keys(&member);
        if member_keys.iter().any(|key| streams.contains(key)) {
            held = Some(member);
            break;
        }
        streams.extend(member_keys);
        group.push(member);
    }
    let writes = group.len();
    (group, held, Outgoing::leave(out, writes))
}

/// The next write to arrive while the server is under load (the groups out carry more than one
/// write between them: with two writers, the other writer's group); `None` at once if it is
/// not, else once a group is back, after `WAIT`, or when the queue is closed.
async fn arriving<T>(queue: &mut mpsc::UnboundedReceiver<T>, out: &Out) -> Option<T> {
    // Registered before the count is read, so that a group coming back in between still wakes
    // this writer.
    let back = out.back.notified();
    tokio::pin!(back);
    back.as_mut().enable();
    if out.writes.load(Ordering::Acquire) < 2 {
        return None;
    }
    tokio::select! {
        biased;
        member = queue.recv() => member,
        _ = back => queue.try_recv().ok(),
        _ = tokio::time::sleep(WAIT) => queue.try_recv().ok(),
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

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// Members for the tests: a number, and the one stream it writes.
    type Write = (u32, &'static str);

    fn keys(write: &Write) -> Vec<&'static str> {
        vec![write.1]
    }

    /// With no group out, a writer takes what is queued and does not wait for more.
    #[tokio::test]
    async fn no_wait_while_no_group_is_out() {
        let (sender, mut queue) = mpsc::unbounded_channel::<Write>();
        sender.send((2, "b")).unwrap();
        let out = Out::default();
        let (group, held, _out) = gather(&mut queue, &out, (1, "a"), keys)
            .now_or_never()
            .expect("no wait");
        assert_eq!(group, vec![(1, "a"), (2, "b")]);
        assert!(held.is_none());
        assert_eq!(
            out.writes.load(Ordering::Acquire),
            2,
            "the group is counted out"
        );
    }

    /// A group out that carries one write is no sign of load: no wait.
    #[tokio::test]
    async fn no_wait_beside_a_lone_write() {
        let (_sender, mut queue) = mpsc::unbounded_channel::<Write>();
        let out = Out::default();
        let _other = Outgoing::leave(&out, 1);
        let gathered = gather(&mut queue, &out, (1, "a"), keys).now_or_never();
        assert_eq!(gathered.expect("no wait").0, vec![(1, "a")]);
    }

    /// Under load, writes arriving while the other group is out join the group, up to
    /// `GATHER`; what arrives after that is left for the next group.
    #[tokio::test]
    async fn writes_arriving_under_load_join_up_to_gather() {
        let (sender, mut queue) = mpsc::unbounded_channel::<Write>();
        let out = Out::default();
        let _other = Outgoing::leave(&out, 3);
        let streams = ["b", "c", "d", "e", "f"];
        let arriving = async {
            for (n, stream) in (2..).zip(streams) {
                tokio::task::yield_now().await;
                sender.send((n, stream)).unwrap();
            }
        };
        let ((group, held, _out), ()) =
            tokio::join!(gather(&mut queue, &out, (1, "a"), keys), arriving);
        assert_eq!(group.len(), GATHER, "{group:?}");
        assert!(held.is_none());
        assert_eq!(queue.try_recv().ok(), Some((5, "e")));
    }

    /// A write to a stream already in the group is held for the next group.
    #[tokio::test]
    async fn a_second_write_to_a_stream_leads_the_next_group() {
        let (sender, mut queue) = mpsc::unbounded_channel::<Write>();
        sender.send((2, "a")).unwrap();
        sender.send((3, "b")).unwrap();
        let out = Out::default();
        let (group, held, _out) = gather(&mut queue, &out, (1, "a"), keys)
            .now_or_never()
            .expect("no wait");
        assert_eq!(group, vec![(1, "a")]);
        assert_eq!(held, Some((2, "a")));
    }

    /// The wait ends when the group out comes back, and then takes what was queued meanwhile.
    #[tokio::test]
    async fn the_wait_ends_when_the_group_comes_back() {
        let (_sender, mut queue) = mpsc::unbounded_channel::<Write>();
        let out = Out::default();
        let other = Outgoing::leave(&out, 3);
        let mut gathering = Box::pin(gather(&mut queue, &out, (1, "a"), keys));
        assert!(
            (&mut gathering).now_or_never().is_none(),
            "it waits under load"
        );
        drop(other);
        // At once, not after `WAIT`.
        let (group, _, _out) = gathering.now_or_never().expect("the wait ended");
        assert_eq!(group, vec![(1, "a")]);
    }

    /// A group out that never comes back holds nothing up longer than `WAIT`.
    #[tokio::test]
    async fn the_wait_is_bounded() {
        let (_sender, mut queue) = mpsc::unbounded_channel::<Write>();
        let out = Out::default();
        let _stuck = Outgoing::leave(&out, 3);
        let gathered = tokio::time::timeout(
            Duration::from_secs(5),
            gather(&mut queue, &out, (1, "a"), keys),
        );
        assert_eq!(gathered.await.expect("bounded").0, vec![(1, "a")]);
    }

    /// A closed queue ends the wait at once.
    #[tokio::test]
    async fn a_closed_queue_ends_the_wait() {
        let (sender, mut queue) = mpsc::unbounded_channel::<Write>();
        drop(sender);
        let out = Out::default();
        let _other = Outgoing::leave(&out, 3);
        let gathered = gather(&mut queue, &out, (1, "a"), keys).now_or_never();
        assert_eq!(gathered.expect("no wait").0, vec![(1, "a")]);
    }

    /// An append that panics still counts its group back.
    #[test]
    fn a_panicking_append_counts_its_group_back() {
        let out = Out::default();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _out = Outgoing::leave(&out, 3);
            panic!("the append failed");
        }));
        assert!(panicked.is_err());
        assert_eq!(out.writes.load(Ordering::Acquire), 0);
    }
}
