//! Parents and children seen from the engine: listing them
//! ([`Engine::children`], [`Engine::parent`]) and what a cancel does in
//! this process beyond the store's cascade.
//!
//! The store's cancel transition cancels an instance and every child it
//! awaits, recursively, in one transaction (see
//! [`ChildLink`](crate::ChildLink)). What is left for the engine is the
//! in-process part: runs of the cancelled descendants stop at their next
//! step boundary (their live entries are cancelled), and the parent of a
//! cancelled awaited child, whose point the cancel completed, runs again
//! here if its workflow is registered here.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Engine, Inner};
use crate::key::PARENT_KEY;
use crate::store::child_step_of;
use crate::{ChildLink, EngineError, InstanceKey, ParentLink, StepStore, WorkflowMetadata};

/// One child an instance started; see [`Engine::children`].
///
/// # Examples
///
/// See [`Engine::children`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// The parent's step key for the child.
    pub step_key: String,
    /// The child instance.
    pub child: InstanceKey,
    /// Started detached (not awaited; a cancel of the parent leaves it).
    pub detached: bool,
    /// The child's metadata now (`None` if it was deleted).
    pub metadata: Option<WorkflowMetadata>,
}

impl Engine {
    /// The children an instance started, in step-key order, with their
    /// metadata now.
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound), key
    /// errors, storage errors (a link that does not decode is
    /// [`Corrupt`](crate::StorageErrorKind::Corrupt)).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, StatusKind, Workflow};
    ///
    /// static LEAF: Workflow<u8, u8> = Workflow::new("leaf");
    /// static ROOT: Workflow<(), u8> = Workflow::new("root");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// LEAF.register(&engine, |_ctx: Context, n: u8| async move { Ok(n) })?;
    /// ROOT.register(&engine, |ctx: Context, ()| async move { ctx.child(&LEAF, "one", 1).await })?;
    /// engine.start().await?;
    /// ROOT.invoke(&engine, ()).id("r").await?.output().await?;
    /// let children = engine.children("root", "r").await?;
    /// assert_eq!(children.len(), 1);
    /// assert_eq!(children[0].child.instance(), "root:r:one");
    /// assert_eq!(children[0].metadata.as_ref().unwrap().status.kind(), StatusKind::Completed);
    /// let parent = engine.parent("leaf", "root:r:one").await?.unwrap();
    /// assert_eq!((parent.parent.instance(), parent.step_key.as_str()), ("r", "one"));
    /// # Ok(()) }
    /// ```
    pub async fn children(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<Vec<ChildInfo>, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let store = &self.inner.store;
        let links = child_links(store.as_ref(), &key)
            .await?
            .ok_or_else(|| EngineError::InstanceNotFound { key: key.clone() })?;
        let mut children = Vec::with_capacity(links.len());
        for (step_key, link) in links {
            let metadata = store.get_metadata(&link.child).await?;
            children.push(ChildInfo {
                step_key,
                child: link.child,
                detached: link.detached,
                metadata,
            });
        }
        Ok(children)
    }

    /// The parent that started this instance as a child, if one did.
    ///
    /// Errors: key errors, storage errors.
    ///
    /// # Examples
    ///
    /// See [`Engine::children`].
    pub async fn parent(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<Option<ParentLink>, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        self.inner
            .store
            .get_step(&key, PARENT_KEY)
            .await?
            .map(|record| ParentLink::from_record(&record))
            .transpose()
    }
}

/// The `_child:<key>` links of an instance, by step key; `None` if it does
/// not exist.
async fn child_links(
    store: &dyn StepStore,
    key: &InstanceKey,
) -> Result<Option<Vec<(String, ChildLink)>>, EngineError> {
    let Some(snapshot) = store.load_instance(key).await? else {
        return Ok(None);
    };
    let mut links = Vec::new();
    for (step_key, record) in &snapshot.steps {
        if let Some(step) = child_step_of(step_key) {
            links.push((step.to_owned(), ChildLink::from_record(record)?));
        }
    }
    Ok(Some(links))
}

/// After this engine cancelled `key`: stops the runs here of the children
/// the store's cascade cancelled, and runs the parent whose point the
/// cancel completed. Best effort: a read that fails is logged (the store
/// is already right; a run of a cancelled child stops at its next write).
pub(super) async fn after_cancel(inner: &Arc<Inner>, key: &InstanceKey) {
    let store = inner.store.as_ref();
    match store.get_step(key, PARENT_KEY).await {
        Ok(Some(record)) => match ParentLink::from_record(&record) {
            Ok(link) if !link.detached => inner.run_here(&link.parent),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(instance = %key, %error, "the parent link does not decode");
            }
        },
        Ok(None) => {}
        Err(error) => tracing::warn!(instance = %key, %error, "could not read the parent link"),
    }
    let mut pending = vec![key.clone()];
    let mut seen = HashSet::new();
    while let Some(next) = pending.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        let links = match child_links(store, &next).await {
            Ok(links) => links.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(instance = %next, %error, "could not read the children of a cancelled instance");
                continue;
            }
        };
        for (_, link) in links.into_iter().filter(|(_, link)| !link.detached) {
            if let Some(entry) = inner.live.get(&link.child) {
                entry.cancel();
            }
            pending.push(link.child);
        }
    }
}
