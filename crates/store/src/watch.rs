//! The watch cache: a bounded history of committed events plus a broadcast of live ones.
//!
//! The writer publishes under the [`Hub`] lock and a watch registers under the same lock, so the
//! history snapshot and the live subscription meet exactly: no event is missed or seen twice.

use std::collections::VecDeque;
use std::sync::Arc;

use kinet_types::ApiError;
use tokio::sync::broadcast;

use crate::model::Event;

/// History ring and live fan-out. Guarded by a mutex in the store.
pub(crate) struct Hub {
    history: VecDeque<Arc<Event>>,
    cap: usize,
    /// Every event with rv greater than this is still in `history`.
    covered: u64,
    /// rv of the last published event (or the rv at open).
    rv: u64,
    tx: broadcast::Sender<Arc<Event>>,
}

impl Hub {
    /// A hub for a store at `rv` whose earlier events are unknown (fresh open or restart).
    pub(crate) fn new(rv: u64, cap: usize, buffer: usize) -> Hub {
        let (tx, _) = broadcast::channel(buffer.max(1));
        Hub {
            history: VecDeque::new(),
            cap,
            covered: rv,
            rv,
            tx,
        }
    }

    /// Records committed events (in rv order) and sends them to live watchers; `rv` is the
    /// revision the cache is at afterwards.
    pub(crate) fn publish(&mut self, events: Vec<Arc<Event>>, rv: u64) {
        self.rv = self.rv.max(rv);
        for event in events {
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(Arc::clone(&event));
            self.history.push_back(event);
            while self.history.len() > self.cap {
                if let Some(old) = self.history.pop_front() {
                    self.covered = old.rv;
                }
            }
        }
    }

    /// Registers a watch on keys under `prefix`.
    ///
    /// `from = None` starts with the next event. `from = Some(rv)` first replays every event after
    /// `rv`, failing with 410 Expired if history no longer reaches back that far. An rv beyond the
    /// current one is accepted and simply waits for events after it.
    pub(crate) fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Watch, ApiError> {
        let min_rv = match from {
            None => self.rv,
            Some(rv) if rv < self.covered => return Err(ApiError::expired(rv, self.covered)),
            Some(rv) => rv,
        };
        let start = self.history.partition_point(|e| e.rv <= min_rv);
        let replay = self
            .history
            .range(start..)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect();
        Ok(Watch {
            prefix: prefix.to_string(),
            replay,
            rx: Some(self.tx.subscribe()),
            min_rv: min_rv.max(self.rv),
            delivered: min_rv,
        })
    }

    /// Forgets the events at and before `rev` (the backend compacted them): a watch from there
    /// gets 410 Expired.
    pub(crate) fn compact(&mut self, rev: u64) {
        let rev = rev.min(self.rv);
        while self.history.front().is_some_and(|e| e.rv <= rev) {
            self.history.pop_front();
        }
        self.covered = self.covered.max(rev);
    }

    /// The revision the cache is at.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest rv a watch may still resume from.
    pub(crate) fn oldest(&self) -> u64 {
        self.covered
    }
}

/// A stream of events for keys under one prefix, from [`crate::Store::watch`].
#[derive(Debug)]
pub struct Watch {
    prefix: String,
    replay: VecDeque<Arc<Event>>,
    rx: Option<broadcast::Receiver<Arc<Event>>>,
    /// Live events at or below this rv were already replayed (or precede the watch).
    min_rv: u64,
    /// rv of the last event handed out, or the rv the watch started from.
    delivered: u64,
}

impl Watch {
    /// The rv of the last event returned, or the rv the watch started from. Useful as the
    /// resourceVersion of a BOOKMARK (events for other prefixes are not accounted for).
    pub fn last_rv(&self) -> u64 {
        self.delivered
    }

    /// The next event, or `None` once the watcher fell too far behind (it must relist) or the
    /// store closed. Cancel-safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.replay.pop_front() {
            self.delivered = event.rv;
            return Some(Event::clone(&event));
        }
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(event) if event.rv > self.min_rv && event.key.starts_with(&self.prefix) => {
                    self.delivered = event.rv;
                    return Some(Event::clone(&event));
                }
                Ok(_) => continue,
                Err(_) => {
                    // Lagged or closed: either way this watch cannot continue correctly.
                    self.rx = None;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, Stored};
    use serde_json::json;

    fn ev(key: &str, rv: u64) -> Arc<Event> {
        let object = Arc::new(Stored::stamp(json!({}), rv).unwrap());
        Arc::new(Event {
            kind: EventType::Added,
            key: key.into(),
            rv,
            object,
            prev: None,
        })
    }

    fn drain_ready(w: &mut Watch) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            while let Ok(Some(e)) =
                tokio::time::timeout(std::time::Duration::from_millis(20), w.next()).await
            {
                out.push((e.key, e.rv));
            }
        });
        out
    }

    #[test]
    fn replay_filters_by_rv_and_prefix() {
        let mut hub = Hub::new(10, 100, 16);
        hub.publish(vec![ev("p/a/1", 11), ev("p/b/1", 12), ev("p/a/2", 13)], 13);
        type Case<'a> = (&'a str, u64, &'a [(&'a str, u64)]);
        let cases: &[Case] = &[
            ("p/a/", 10, &[("p/a/1", 11), ("p/a/2", 13)]),
            ("p/a/", 11, &[("p/a/2", 13)]),
            ("p/", 11, &[("p/b/1", 12), ("p/a/2", 13)]),
            ("p/", 13, &[]),
            ("q/", 10, &[]),
        ];
        for (prefix, from, want) in cases {
            let mut w = hub.watch(prefix, Some(*from)).unwrap();
            let got = drain_ready(&mut w);
            let want: Vec<_> = want.iter().map(|(k, r)| (k.to_string(), *r)).collect();
            assert_eq!(got, want, "prefix {prefix} from {from}");
        }
    }

    #[test]
    fn eviction_moves_the_expiry_horizon() {
        let mut hub = Hub::new(0, 2, 16);
        hub.publish(vec![ev("k", 1), ev("k", 2), ev("k", 3)], 3);
        assert_eq!(hub.oldest(), 1);
        assert!(hub.watch("", Some(1)).is_ok());
        assert!(hub.watch("", Some(3)).is_ok());
        let err = hub.watch("", Some(0)).err().unwrap();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        assert_eq!(err.message, "too old resource version: 0 (1)");
    }

    #[test]
    fn compaction_moves_the_expiry_horizon() {
        let mut hub = Hub::new(0, 100, 16);
        hub.publish((1..=4).map(|rv| ev("k", rv)).collect(), 6);
        hub.compact(2);
        assert_eq!(hub.oldest(), 2);
        let err = hub.watch("", Some(1)).err().unwrap();
        assert_eq!((err.code, err.reason), (410, "Expired"));
        let mut w = hub.watch("", Some(2)).unwrap();
        assert_eq!(drain_ready(&mut w), vec![("k".into(), 3), ("k".into(), 4)]);
        hub.compact(9);
        assert_eq!(hub.oldest(), 6, "never past the cache's own revision");
    }

    #[test]
    fn live_events_follow_replay_without_duplicates() {
        let mut hub = Hub::new(0, 100, 16);
        hub.publish(vec![ev("k", 1)], 1);
        let mut w = hub.watch("", Some(0)).unwrap();
        let mut fresh = hub.watch("", None).unwrap();
        hub.publish(vec![ev("k", 2)], 2);
        assert_eq!(w.last_rv(), 0);
        assert_eq!(drain_ready(&mut w), vec![("k".into(), 1), ("k".into(), 2)]);
        assert_eq!(w.last_rv(), 2);
        assert_eq!(drain_ready(&mut fresh), vec![("k".into(), 2)]);
    }

    #[test]
    fn future_rv_skips_events_up_to_it() {
        let mut hub = Hub::new(0, 100, 16);
        let mut w = hub.watch("", Some(2)).unwrap();
        hub.publish(vec![ev("k", 1), ev("k", 2), ev("k", 3)], 3);
        assert_eq!(drain_ready(&mut w), vec![("k".into(), 3)]);
    }

    #[test]
    fn lagging_watcher_ends() {
        let mut hub = Hub::new(0, 100, 2);
        let mut w = hub.watch("", None).unwrap();
        hub.publish((1..=5).map(|rv| ev("k", rv)).collect(), 5);
        assert_eq!(drain_ready(&mut w), vec![]);
    }
}
