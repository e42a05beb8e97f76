use memable_core::{InstanceKey, StepKind, StepRecord, StepStoreExt, StepStore};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing() {
    let url = TestServer::shared().database();
    let t = std::time::Instant::now();
    let store = PostgresStore::connect_with(PostgresOptions::new(&url).schema("a")).await.unwrap();
    eprintln!("connect+migrate {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let store2 = PostgresStore::connect_with(PostgresOptions::new(&url).schema("a")).await.unwrap();
    eprintln!("connect again {:?}", t.elapsed());
    drop(store2);
    let k = InstanceKey::new("wf", "1").unwrap();
    let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    store.start_instance(k.clone(), input, 0).await.unwrap();
    let t = std::time::Instant::now();
    for i in 0..200 {
        let rec = StepRecord::completed(StepKind::Step, "u64", vec![1], None);
        store.commit_step(k.clone(), format!("s{i}"), rec).await.unwrap();
    }
    eprintln!("200 commits {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for i in 0..200 {
        store.get_step(&k, &format!("s{i}")).await.unwrap();
    }
    eprintln!("200 get_step {:?}", t.elapsed());
    let t = std::time::Instant::now();
    store.pool().close().await;
    eprintln!("close {:?}", t.elapsed());
    let t = std::time::Instant::now();
    drop(store);
    eprintln!("drop {:?}", t.elapsed());
}
