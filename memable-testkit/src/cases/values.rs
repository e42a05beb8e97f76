//! Value sizes and contents: empty, every byte value, 16 MiB.

use memable_core::StepStoreExt;
use memable_core::{Finish, StepKind, StepRecord};

use crate::StoreFactory;
use crate::support::{fresh, key, ok, start};

/// Records with a 0-byte value, empty type tag and empty status round-trip
/// as step, input and output.
pub async fn empty_values_round_trip(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    let empty = StepRecord::completed(StepKind::Step, "", Vec::new(), Some(String::new()));
    let empty_engine = StepRecord::completed(StepKind::Engine, "", Vec::new(), None);
    ok(
        store
            .start_instance(k.clone(), empty_engine.clone(), 1)
            .await,
        "start",
    );
    ok(
        store
            .commit_step(k.clone(), "e".into(), empty.clone())
            .await,
        "commit",
    );
    let fin = Finish::Completed {
        status: Some(String::new()),
        output: empty_engine.clone(),
    };
    ok(store.finish_instance(k.clone(), fin, 2).await, "finish");
    assert_eq!(ok(store.get_step(&k, "e").await, "get"), Some(empty));
    assert_eq!(
        ok(store.get_step(&k, "_input").await, "get"),
        Some(empty_engine.clone())
    );
    assert_eq!(
        ok(store.get_step(&k, "_output").await, "get"),
        Some(empty_engine)
    );
    let meta = ok(store.get_metadata(&k).await, "meta").expect("metadata");
    assert_eq!(
        meta.status,
        memable_core::MetadataStatus::Completed(Some(String::new()))
    );
}

/// Every byte value 0..=255 (and NUL-heavy values) round-trips exactly.
pub async fn binary_values_round_trip(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let all: Vec<u8> = (0..=255).collect();
    let values = [
        all.clone(),
        all.iter().rev().copied().collect(),
        vec![0; 1000],
        vec![0xff; 3],
        b"\0a\0".to_vec(),
    ];
    for (i, v) in values.iter().enumerate() {
        let rec = StepRecord::completed(StepKind::Step, "bin\0tag", v.clone(), Some("s\0t".into()));
        ok(
            store
                .commit_step(k.clone(), format!("b{i}"), rec.clone())
                .await,
            "commit",
        );
        assert_eq!(
            ok(store.get_step(&k, &format!("b{i}")).await, "get"),
            Some(rec)
        );
    }
}

/// A 16 MiB value round-trips as a step (by `get_step` and the snapshot),
/// as input and as output.
pub async fn sixteen_mib_value_round_trips(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "big");
    let mut rng = fastrand::Rng::with_seed(16);
    let big: Vec<u8> = std::iter::repeat_with(|| rng.u8(..))
        .take(16 << 20)
        .collect();
    let input = StepRecord::completed(StepKind::Engine, "input", big.clone(), None);
    ok(store.start_instance(k.clone(), input, 1).await, "start");
    let rec = StepRecord::completed(StepKind::Step, "Vec<u8>", big.clone(), None);
    ok(
        store
            .commit_step(k.clone(), "big".into(), rec.clone())
            .await,
        "commit",
    );
    let got = ok(store.get_step(&k, "big").await, "get").expect("record");
    assert!(
        got.value == big,
        "16 MiB step value differs (len {})",
        got.value.len()
    );
    let output = StepRecord::completed(StepKind::Engine, "output", big.clone(), None);
    ok(
        store
            .finish_instance(
                k.clone(),
                Finish::Completed {
                    status: None,
                    output,
                },
                2,
            )
            .await,
        "finish",
    );
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    for step in ["_input", "big", "_output"] {
        let value = &snap.step(step).expect("record").value;
        assert!(
            *value == big,
            "16 MiB {step} differs in the snapshot (len {})",
            value.len()
        );
    }
}
