//! `load_instance`: one read returns the metadata and every step of one
//! instance, sorted by key, and nothing of any other instance.

use memable_core::StepStoreExt;
use memable_core::{Finish, StepRecord};

use crate::StoreFactory;
use crate::support::{done, fresh, input, key, ok, output, start, timer, waiting};

/// The snapshot holds every step (including `_input`, `_output`, suspended
/// and failed records), sorted by key, with the current metadata.
pub async fn snapshot_has_every_step_sorted(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    ok(
        store.start_instance(k.clone(), input(b"in"), 1).await,
        "start",
    );
    let mut expected: Vec<(String, StepRecord)> = vec![("_input".into(), input(b"in"))];
    // Committed in a scrambled order; keys chosen so byte order matters.
    for i in [7_u32, 3, 11, 0, 5, 1, 10, 2] {
        let step = format!("step-{i}");
        let rec = done(&i.to_be_bytes());
        ok(
            store
                .commit_step(k.clone(), step.clone(), rec.clone())
                .await,
            "commit",
        );
        expected.push((step, rec));
    }
    ok(
        store
            .commit_step(k.clone(), "Zeta".into(), crate::support::dead(3))
            .await,
        "commit",
    );
    expected.push(("Zeta".into(), crate::support::dead(3)));
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(50), None, 2)
            .await,
        "suspend",
    );
    expected.push(("nap".into(), timer(50)));
    ok(
        store
            .claim_step(k.clone(), "nap".into(), done(b"woke"), 3)
            .await,
        "claim",
    );
    expected.pop();
    expected.push(("nap".into(), done(b"woke")));
    ok(
        store
            .suspend_step(k.clone(), "w".into(), waiting(), None, 4)
            .await,
        "suspend",
    );
    expected.push(("w".into(), waiting()));
    ok(
        store
            .claim_step(k.clone(), "w".into(), done(b"sig"), 5)
            .await,
        "claim",
    );
    expected.pop();
    expected.push(("w".into(), done(b"sig")));
    let fin = Finish::Completed {
        status: Some("ok".into()),
        output: output(b"out"),
    };
    ok(store.finish_instance(k.clone(), fin, 6).await, "finish");
    expected.push(("_output".into(), output(b"out")));
    expected.sort_by(|a, b| a.0.cmp(&b.0));

    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.steps, expected);
    assert_eq!(
        Some(snap.metadata),
        ok(store.get_metadata(&k).await, "get_metadata")
    );
}

/// Snapshots of neighbouring instances (same workflow, same id in another
/// workflow) never contain each other's steps.
pub async fn snapshot_excludes_other_instances(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys = [
        key("wf", "1"),
        key("wf", "2"),
        key("wg", "1"),
        key("w", "f1"),
    ];
    for (i, k) in keys.iter().enumerate() {
        start(&*store, k, 1).await;
        for j in 0..=i {
            ok(
                store
                    .commit_step(
                        k.clone(),
                        format!("{k}-{j}"),
                        done(k.to_string().as_bytes()),
                    )
                    .await,
                "commit",
            );
        }
    }
    for (i, k) in keys.iter().enumerate() {
        let snap = ok(store.load_instance(k).await, "load").expect("snapshot");
        assert_eq!(snap.metadata.workflow_name, k.workflow());
        assert_eq!(snap.metadata.instance_id, k.instance());
        assert_eq!(snap.steps.len(), i + 2, "{k}: {:?}", snap.steps);
        for (step, rec) in &snap.steps {
            if step != "_input" {
                assert!(step.starts_with(&k.to_string()), "{k} got step {step}");
                assert_eq!(rec.value, k.to_string().as_bytes());
            }
        }
    }
}

/// `get_step` of an unknown step key, or of a key that exists only in
/// another instance, is `None`.
pub async fn get_step_unknown_key_is_none(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let a = key("wf", "1");
    let b = key("wf", "2");
    start(&*store, &a, 1).await;
    start(&*store, &b, 1).await;
    ok(
        store
            .commit_step(b.clone(), "only-b".into(), done(b"b"))
            .await,
        "commit",
    );
    assert_eq!(ok(store.get_step(&a, "only-b").await, "get"), None);
    assert_eq!(ok(store.get_step(&a, "nothing").await, "get"), None);
    assert_eq!(ok(store.get_step(&a, "_output").await, "get"), None);
}
