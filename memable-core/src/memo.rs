//! The records a run starts from, and the keys it has used so far.
//!
//! A run serves every replayed step from the snapshot it loaded. The
//! snapshot stays the sorted vector the store returned: a lookup is a binary
//! search, and building the run costs no hash table. Keys that are in the
//! snapshot are marked used by position; only keys that are new to the run
//! are hashed, so a replay allocates nothing per step to detect key reuse.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::StepRecord;

/// Whether a key was used before in this run, and its snapshot record.
pub(crate) struct Entered<'a> {
    /// `false` if the run already used this key.
    pub fresh: bool,
    /// The key's record in the run's snapshot, if it has one.
    pub record: Option<&'a StepRecord>,
}

/// A run's snapshot of step records, sorted by key, with used-key tracking.
pub(crate) struct Memo {
    steps: Vec<(String, StepRecord)>,
    used: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    /// Indexed like `Memo::steps`.
    in_snapshot: Vec<bool>,
    /// Used keys that are not in the snapshot.
    others: HashSet<String>,
}

impl Memo {
    /// A memo over `steps`, which must be sorted by key (as
    /// [`InstanceSnapshot::steps`](crate::InstanceSnapshot) is).
    pub(crate) fn new(steps: Vec<(String, StepRecord)>) -> Self {
        debug_assert!(steps.windows(2).all(|w| w[0].0 < w[1].0));
        Self {
            used: Mutex::new(Used {
                in_snapshot: vec![false; steps.len()],
                others: HashSet::new(),
            }),
            steps,
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.steps
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
    }

    /// The snapshot record of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&StepRecord> {
        self.position(key).map(|i| &self.steps[i].1)
    }

    /// Marks `key` used and returns whether it was fresh, with its record.
    pub(crate) fn enter(&self, key: &str) -> Entered<'_> {
        let position = self.position(key);
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = match position {
            Some(i) => !std::mem::replace(&mut used.in_snapshot[i], true),
            None => used.others.insert(key.to_owned()),
        };
        Entered {
            fresh,
            record: position.map(|i| &self.steps[i].1),
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
