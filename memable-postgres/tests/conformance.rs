//! The memable conformance suite on PostgreSQL: one database on the shared
//! test server, each fixture in a fresh schema of it; reopening closes the
//! store (pool and writer) and connects again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memable_core::{EngineError, StepStore};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;
use memable_testkit::{Capabilities, StoreFactory, StoreFixture};

/// The one database of this test binary.
fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| TestServer::shared().database())
}

struct PgFactory;

struct PgFixture {
    options: PostgresOptions,
    store: Option<PostgresStore>,
}

#[async_trait::async_trait]
impl StoreFactory for PgFactory {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: true,
        }
    }

    /// Each sequence re-reads the whole store after every operation, tens
    /// of round trips: 100 keeps the "every outcome seen" check.
    fn model_sequences(&self) -> u64 {
        100
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let schema = format!("case_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let options = PostgresOptions::new(database()).schema(schema).pool_size(2);
        let store = PostgresStore::connect_with(options.clone()).await?;
        Ok(Box::new(PgFixture {
            options,
            store: Some(store),
        }))
    }
}

#[async_trait::async_trait]
impl StoreFixture for PgFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        Arc::new(
            self.store
                .clone()
                .expect("the fixture always holds a store"),
        )
    }

    async fn reopen(&mut self) -> Result<(), EngineError> {
        if let Some(store) = self.store.take() {
            store.close().await;
        }
        self.store = Some(PostgresStore::connect_with(self.options.clone()).await?);
        Ok(())
    }
}

memable_testkit::conformance_tests!(PgFactory);
