//! The factory interface a backend implements to run the conformance suite,
//! and [`MemoryFactory`] for [`MemoryStore`].

use std::sync::Arc;

use async_trait::async_trait;
use memable_core::{EngineError, MemoryStore, StepStore};

/// What a store's fixture can do; cases that need more say `SKIPPED`.
///
/// # Examples
///
/// ```
/// let caps = memable_testkit::Capabilities { reopen: true, survives_process_exit: false };
/// assert!(caps.reopen);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// [`StoreFixture::reopen`] gives back the same data (file stores;
    /// `MemoryStore` via a clone).
    pub reopen: bool,
    /// Data survives the process exiting (file stores only).
    pub survives_process_exit: bool,
}

/// Makes fresh, isolated stores for the conformance cases.
///
/// # Examples
///
/// ```
/// use memable_testkit::{MemoryFactory, StoreFactory};
/// assert_eq!(MemoryFactory.name(), "memory");
/// assert!(MemoryFactory.capabilities().reopen);
/// ```
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// Short backend name, e.g. `"redb-file"`, `"sqlite-file"`.
    fn name(&self) -> &'static str;
    /// What the fixtures of this factory can do.
    fn capabilities(&self) -> Capabilities;
    /// A fresh, empty store isolated from every other store this factory
    /// made (e.g. a new file in a new temp dir that the fixture keeps alive).
    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError>;

    /// How many random sequences the model case runs by default (the
    /// `MEMABLE_MODEL_SEQUENCES` variable overrides it): 300, or fewer for a
    /// store whose reads are network round trips. Below 100 the case no
    /// longer checks that every outcome was seen.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_testkit::{MemoryFactory, StoreFactory};
    /// assert_eq!(MemoryFactory.model_sequences(), 300);
    /// ```
    fn model_sequences(&self) -> u64 {
        crate::cases::model::DEFAULT_SEQUENCES
    }
}

/// One store under test, owned by a case.
///
/// # Examples
///
/// ```
/// use memable_testkit::{MemoryFactory, StoreFactory};
/// # memable_testkit::__private::block_on(async {
/// let mut fixture = MemoryFactory.create().await.unwrap();
/// assert_eq!(fixture.store().name(), "memory");
/// fixture.reopen().await.unwrap();
/// # });
/// ```
#[async_trait]
pub trait StoreFixture: Send + Sync {
    /// A handle to the store under test.
    fn store(&self) -> Arc<dyn StepStore>;
    /// Closes the store and opens the same data again. The caller has
    /// dropped every handle it got from [`store`](Self::store) first; the
    /// fixture drops its own and reopens. For file stores this really closes
    /// the file and opens it again.
    async fn reopen(&mut self) -> Result<(), EngineError>;
}

/// The factory for [`MemoryStore`]: reopening hands out a clone of the same
/// store (clones share data), so data "survives" a reopen but not the process.
///
/// # Examples
///
/// ```
/// use memable_testkit::{MemoryFactory, StoreFactory};
/// assert!(!MemoryFactory.capabilities().survives_process_exit);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

struct MemoryFixture {
    store: MemoryStore,
}

#[async_trait]
impl StoreFactory for MemoryFactory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: false,
        }
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        Ok(Box::new(MemoryFixture {
            store: MemoryStore::new(),
        }))
    }
}

#[async_trait]
impl StoreFixture for MemoryFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        Arc::new(self.store.clone())
    }

    async fn reopen(&mut self) -> Result<(), EngineError> {
        // Keep one clone, drop the old handle, hand out the clone from now on.
        let kept = self.store.clone();
        self.store = kept;
        Ok(())
    }
}
