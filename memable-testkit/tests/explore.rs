//! `CrashExplorer` on users' workflows: a correct workflow recovers to the
//! same end at every crash point, with only the step in flight at the crash
//! run again; a workflow that is not deterministic about its results is
//! caught, with the crash points that show it; an at-most-once step is never
//! run twice, and the explorer shows where that leaves it ambiguous.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memable_core::{Context, Engine, EngineError, RetryPolicy, StepError};
use memable_testkit::explore::CrashExplorer;

/// 20 steps, a durable timer after the tenth, a step that fails once and
/// is retried; the output is the sum.
fn register_twenty(engine: &Engine) -> Result<(), EngineError> {
    engine.register("twenty", |ctx: Context| async move {
        let base: u32 = ctx.input()?;
        let mut total = 0u32;
        let flaky = Arc::new(AtomicUsize::new(0));
        for i in 0..20u32 {
            if i == 10 {
                ctx.timer("pause", Duration::from_secs(60)).await?;
            }
            let flaky = Arc::clone(&flaky);
            total += ctx
                .step(format!("s{i:02}"))
                .retry(RetryPolicy::fixed(3, Duration::from_millis(10)))
                .run(move || {
                    let first = i == 5 && flaky.fetch_add(1, Ordering::SeqCst) == 0;
                    async move {
                        if first {
                            Err(StepError::retryable("blip"))
                        } else {
                            Ok(base + i)
                        }
                    }
                })
                .await?;
        }
        Ok(total)
    })
}

#[test]
fn a_correct_workflow_recovers_to_the_same_end_at_every_crash_point() {
    let started = Instant::now();
    let report = CrashExplorer::new("twenty", register_twenty)
        .input(&100u32)
        .explore();
    let took = started.elapsed();
    report.assert_same_ends();
    assert_eq!(
        report.baseline_output(),
        Some(&serde_json::json!(20 * 100 + 190))
    );
    // start, 20 commits, a retry record, the timer's wait/park/fire, finish.
    assert!(report.transitions() >= 23, "{}", report.transitions());
    assert_eq!(report.crashes().len(), report.transitions());
    for i in 0..20 {
        let key = format!("s{i:02}");
        // Run again only when the crash caught it in flight: twice at most.
        // s05 fails its first attempt in every run of the workflow function:
        // failed, crashed in flight at its second attempt, failed again
        // after the recovery, then committed.
        let expected = if i == 5 { 4 } else { 2 };
        assert_eq!(report.max_closure_runs(&key), expected, "{key}");
        assert!(report.rerun_steps().contains_key(&key), "{key}");
    }
    eprintln!(
        "explored {} crash points of a 20-step workflow in {took:?}",
        report.transitions()
    );
}

#[test]
fn a_workflow_that_is_not_deterministic_about_its_results_is_caught() {
    // The output counts the workflow's runs, not a stored result: a crash
    // and recovery adds a run, so the end differs.
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let report = CrashExplorer::new("counts", move |engine: &Engine| {
        let counted = Arc::clone(&counted);
        engine.register("counts", move |ctx: Context| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.step("a")
                    .run(|| async { Ok::<_, StepError>(1u32) })
                    .await?;
                Ok(n)
            }
        })
    })
    .explore();
    assert!(runs.load(Ordering::SeqCst) > 1);
    assert!(!report.different_ends().is_empty(), "{report:?}");
    let caught = std::panic::catch_unwind(|| report.assert_same_ends());
    assert!(caught.is_err(), "assert_same_ends must fail");
}

#[test]
fn an_at_most_once_step_never_runs_twice_and_its_ambiguity_shows() {
    let report = CrashExplorer::new("pay", |engine: &Engine| {
        engine.register("pay", |ctx: Context| async move {
            let charged = ctx
                .step("charge")
                .at_most_once()
                .run(|| async { Ok::<_, StepError>(5u32) })
                .await;
            Ok(match charged {
                Ok(n) => format!("charged {n}"),
                Err(EngineError::Ambiguous { .. }) => "ask the card service".to_owned(),
                Err(other) => return Err(other),
            })
        })
    })
    .explore();
    assert_eq!(report.max_closure_runs("charge"), 1);
    assert!(!report.rerun_steps().contains_key("charge"));
    // Crashing while the charge was in flight leaves it ambiguous.
    let ambiguous: Vec<_> = report
        .different_ends()
        .iter()
        .map(|c| c.end.output.clone())
        .collect();
    assert!(
        ambiguous.contains(&Some(serde_json::json!("ask the card service"))),
        "{report:?}"
    );
}
