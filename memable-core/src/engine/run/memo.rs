//! The records a run starts from, and the keys it has used so far.
//!
//! A run serves every replayed step from the snapshot it loaded, so this is
//! the hot path of a replay: one hash lookup per step, with a fast seeded
//! hasher (`foldhash`; step keys are chosen by workflow code, not by
//! whoever calls the engine). Keys in the snapshot are marked used by a flag
//! beside their record; only keys that are new to the run are kept in a
//! set, so a replay allocates nothing per step to detect key reuse.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use foldhash::fast::RandomState;

use crate::StepRecord;

/// Whether a key was used before in this run, and its snapshot record.
pub(crate) struct Entered<'a> {
    /// `false` if the run already used this key.
    pub fresh: bool,
    /// The key's record in the run's snapshot, if it has one.
    pub record: Option<&'a StepRecord>,
}

struct Slot {
    record: StepRecord,
    used: AtomicBool,
}

/// A run's snapshot of step records, with used-key tracking.
pub(crate) struct Memo {
    steps: HashMap<String, Slot, RandomState>,
    /// Used keys that are not in the snapshot.
    others: Mutex<HashSet<String, RandomState>>,
}

impl Memo {
    /// A memo over the snapshot's `steps` (moved in, not copied).
    pub(crate) fn new(steps: Vec<(String, StepRecord)>) -> Self {
        let mut map = HashMap::with_capacity_and_hasher(steps.len(), RandomState::default());
        for (key, record) in steps {
            map.insert(
                key,
                Slot {
                    record,
                    used: AtomicBool::new(false),
                },
            );
        }
        Self {
            steps: map,
            others: Mutex::new(HashSet::default()),
        }
    }

    /// The snapshot record of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&StepRecord> {
        self.steps.get(key).map(|slot| &slot.record)
    }

    /// Marks `key` used and returns whether it was fresh, with its record.
    pub(crate) fn enter(&self, key: &str) -> Entered<'_> {
        match self.steps.get(key) {
            Some(slot) => Entered {
                fresh: !slot.used.swap(true, Ordering::AcqRel),
                record: Some(&slot.record),
            },
            None => Entered {
                fresh: self
                    .others
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.to_owned()),
                record: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StepKind;

    fn record(n: u8) -> StepRecord {
        StepRecord::completed(StepKind::Step, "u8", vec![n], None)
    }

    #[test]
    fn keys_are_fresh_once_whether_in_the_snapshot_or_not() {
        let memo = Memo::new(vec![("a".into(), record(1)), ("c".into(), record(3))]);
        let first = memo.enter("c");
        assert!(first.fresh);
        assert_eq!(first.record, Some(&record(3)));
        assert!(!memo.enter("c").fresh);
        let new = memo.enter("b");
        assert!(new.fresh && new.record.is_none());
        assert!(!memo.enter("b").fresh);
        assert!(memo.enter("a").fresh);
        assert_eq!(memo.get("a"), Some(&record(1)));
        assert_eq!(memo.get("z"), None);
    }
}
