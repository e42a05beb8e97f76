//! At-most-once steps (`StepBuilder::at_most_once`), from the user's side:
//! an attempt whose outcome was never recorded — the process `SIGKILL`ed
//! while the closure ran, or the attempt timed out — is never run again by
//! itself; every run gets `EngineError::Ambiguous` at the step until the
//! workflow or an operator decides (`forget`, `resume`). Known outcomes (a
//! returned failure, a success) behave as for any step.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::{
    Context, Engine, EngineError, RetryPolicy, StepError, StepState, StepStore, SuspendPoint,
    WorkflowState,
};
use support::backend_tests;

static AGAIN: SuspendPoint<bool> = SuspendPoint::new("again");

/// Closure runs of `charge`.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What `charge`'s closure does on its attempts, in order (the last one
/// repeats).
#[derive(Clone, Copy)]
enum Attempt {
    /// Hangs (past the step's timeout).
    Hang,
    /// Returns a retryable failure.
    Retryable,
    /// Returns a permanent failure.
    Permanent,
    /// Succeeds with 42.
    Ok,
}

/// `pay`: the at-most-once step `charge` (timeout 50 ms, 3 attempts, no
/// backoff); an `Ambiguous` or failed charge is reported in the output
/// after a wait at `again` (a signal replays the workflow).
fn register(engine: &Engine, calls: &Calls, script: &'static [Attempt]) {
    let calls = calls.clone();
    engine
        .register("pay", move |ctx: Context| {
            let calls = calls.clone();
            async move {
                let charged = ctx
                    .step("charge")
                    .at_most_once()
                    .retry(RetryPolicy::fixed(3, Duration::ZERO))
                    .timeout(Duration::from_millis(50))
                    .run(|| {
                        let n = calls.0.fetch_add(1, Ordering::SeqCst);
                        let attempt = script[n.min(script.len() - 1)];
                        async move {
                            match attempt {
                                Attempt::Hang => {
                                    std::future::pending::<()>().await;
                                    Ok(0)
                                }
                                Attempt::Retryable => Err(StepError::retryable("503")),
                                Attempt::Permanent => Err(StepError::permanent("card declined")),
                                Attempt::Ok => Ok(42u32),
                            }
                        }
                    })
                    .await;
                let outcome = match charged {
                    Ok(n) => format!("charged {n}"),
                    Err(EngineError::Ambiguous { attempt, .. }) => {
                        format!("ambiguous at attempt {attempt}")
                    }
                    Err(EngineError::StepFailed { .. }) => "declined".to_owned(),
                    Err(other) => return Err(other),
                };
                if !outcome.starts_with("charged") {
                    ctx.suspend(&AGAIN).await?;
                }
                Ok(outcome)
            }
        })
        .expect("register");
}

async fn charge_record(store: &dyn StepStore, id: &str) -> Option<memable::store::StepRecord> {
    let key = memable::InstanceKey::new("pay", id).expect("key");
    store.get_step(&key, "charge").await.expect("get_step")
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_attempt_is_ambiguous_and_never_run_again(backend) {
        let calls = Calls::default();
        let engine = Engine::builder().store(backend.store()).build();
        register(&engine, &calls, &[Attempt::Hang, Attempt::Ok]);
        engine.start().await.expect("start");
        let state = engine.invoke("pay").id("p1").await.expect("invoke").wait_idle().await.expect("idle");
        assert!(matches!(state, WorkflowState::Suspended { .. }), "{state:?}");
        assert_eq!(calls.get(), 1, "a timed-out at-most-once attempt is not retried");
        engine.shutdown().await;
        drop(engine);

        // After a restart, a replay (the signal) gets the same answer and
        // runs nothing.
        backend.reopen().expect("reopen");
        let engine = Engine::builder().store(backend.store()).build();
        register(&engine, &calls, &[Attempt::Ok]);
        engine.start().await.expect("start");
        let out: String = engine
            .signal("pay", "p1", &AGAIN, true)
            .await
            .expect("signal")
            .wait_output()
            .await
            .expect("output");
        assert_eq!(out, "ambiguous at attempt 1");
        assert_eq!(calls.get(), 1, "{}", backend.name());
        let record = charge_record(&*backend.store(), "p1").await.expect("record");
        assert_eq!(record.state, StepState::Retrying);
        assert_eq!(record.error, None, "the record of the beginning stays");

        // The operator decides it did not happen: forget, resume, it runs.
        engine.forget("pay", "p1", &["charge"]).await.expect("forget");
        let out: String = engine
            .resume("pay", "p1")
            .await
            .expect("resume")
            .wait_output()
            .await
            .expect("output");
        assert_eq!(out, "charged 42");
        assert_eq!(calls.get(), 2);
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_retries_an_ambiguous_attempt_counting_it(backend) {
        let calls = Calls::default();
        let engine = Engine::builder().store(backend.store()).build();
        register(&engine, &calls, &[Attempt::Hang, Attempt::Ok]);
        engine.start().await.expect("start");
        engine.invoke("pay").id("p1").await.expect("invoke").wait_idle().await.expect("idle");
        let out: String = engine
            .resume("pay", "p1")
            .await
            .expect("resume")
            .wait_output()
            .await
            .expect("output");
        assert_eq!(out, "charged 42", "{}", backend.name());
        assert_eq!(calls.get(), 2);
        let history = engine.step_history("pay", "p1").await.expect("history");
        let charge = history.steps.iter().find(|s| s.key == "charge").expect("charge");
        assert_eq!(charge.attempts, 2, "the interrupted attempt counts");
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returned_failures_are_known_outcomes(backend) {
        // Retryable failures retry by the policy, as for any step.
        let calls = Calls::default();
        let engine = Engine::builder().store(backend.store()).build();
        register(&engine, &calls, &[Attempt::Retryable, Attempt::Retryable, Attempt::Ok]);
        engine.start().await.expect("start");
        let out: String = engine.invoke("pay").id("r").await.expect("invoke").wait_output().await.expect("output");
        assert_eq!(out, "charged 42");
        assert_eq!(calls.get(), 3);
        let record = charge_record(&*backend.store(), "r").await.expect("record");
        assert_eq!((record.state, record.attempts), (StepState::Completed, 3));
        engine.shutdown().await;
        drop(engine);

        // A permanent failure is known too: no ambiguity, and a replay runs
        // the step again (as any step that failed permanently).
        let calls = Calls::default();
        let engine = Engine::builder().store(backend.store()).build();
        register(&engine, &calls, &[Attempt::Permanent, Attempt::Ok]);
        engine.start().await.expect("start");
        let state = engine.invoke("pay").id("d").await.expect("invoke").wait_idle().await.expect("idle");
        assert!(matches!(state, WorkflowState::Suspended { .. }), "{state:?}");
        let record = charge_record(&*backend.store(), "d").await.expect("record");
        assert!(record.error.is_some(), "the failure replaced the beginning: {record:?}");
        let out: String = engine
            .signal("pay", "d", &AGAIN, true)
            .await
            .expect("signal")
            .wait_output()
            .await
            .expect("output");
        assert_eq!(out, "charged 42", "{}", backend.name());
        assert_eq!(calls.get(), 2);
        engine.shutdown().await;
    }
}

/// A real crash: the process is `SIGKILL`ed inside the closure (file
/// stores only: the memory store cannot outlive a process).
#[cfg(any(feature = "redb", feature = "sqlite"))]
mod crash {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use memable::{Context, Engine, EngineError, StepError, StepStore};

    use super::Calls;

    const ENV_DB: &str = "MEMABLE_AT_MOST_ONCE_DB";
    const ENV_BACKEND: &str = "MEMABLE_AT_MOST_ONCE_BACKEND";
    const IN_CHARGE: &str = "in-charge";

    fn open(backend: &str, path: &Path) -> Arc<dyn StepStore> {
        match backend {
            #[cfg(feature = "redb")]
            "redb" => Arc::new(memable::redb::RedbStore::open(path).expect("open redb")),
            #[cfg(feature = "sqlite")]
            "sqlite" => Arc::new(memable::sqlite::SqliteStore::open(path).expect("open sqlite")),
            other => panic!("no backend {other:?} in this build"),
        }
    }

    /// The process the crash test kills: it invokes `pay/p1`, whose `charge`
    /// prints `in-charge` inside its closure and then hangs (no timeout here).
    #[test]
    #[ignore = "the process the crash test starts and kills"]
    fn child_process() {
        let db = PathBuf::from(std::env::var(ENV_DB).expect("db path"));
        let backend = std::env::var(ENV_BACKEND).expect("backend");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let engine = Engine::builder().store(open(&backend, &db)).build();
            engine
                .register("pay", |ctx: Context| async move {
                    ctx.step("charge")
                        .at_most_once()
                        .run(|| async {
                            println!("{IN_CHARGE}");
                            std::future::pending::<()>().await;
                            Ok::<_, StepError>(0u32)
                        })
                        .await
                })
                .expect("register");
            engine.start().await.expect("start");
            let _run = engine.invoke("pay").id("p1").await.expect("invoke");
            std::future::pending::<()>().await;
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kill_inside_the_closure_leaves_the_step_ambiguous_until_resumed() {
        let backends: &[&str] = &[
            #[cfg(feature = "redb")]
            "redb",
            #[cfg(feature = "sqlite")]
            "sqlite",
        ];
        for backend in backends {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join(format!("pay.{backend}"));
            let mut child = Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--ignored",
                    "--exact",
                    "crash::child_process",
                    "--nocapture",
                ])
                .env(ENV_DB, &db)
                .env(ENV_BACKEND, backend)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the process");
            let stdout = child.stdout.take().expect("stdout");
            let reached = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line == IN_CHARGE);
            assert!(reached, "{backend}: the process never reached the closure");
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");

            // The application restarts: the step is not run again.
            let calls = Calls::default();
            let engine = Engine::builder().store(open(backend, &db)).build();
            let counted = calls.clone();
            engine
                .register("pay", move |ctx: Context| {
                    let counted = counted.clone();
                    async move {
                        ctx.step("charge")
                            .at_most_once()
                            .run(|| {
                                counted.0.fetch_add(1, Ordering::SeqCst);
                                async { Ok::<_, StepError>(7u32) }
                            })
                            .await
                    }
                })
                .expect("register");
            engine.start().await.expect("start");
            let mut states = engine.subscribe("pay", "p1").await.expect("subscribe");
            while states.next().await.is_some() {}
            engine.wait_all().await;
            let err = engine
                .output::<u32>("pay", "p1")
                .await
                .expect_err("ambiguous");
            assert!(
                matches!(err, EngineError::WorkflowFailed { .. }),
                "{backend}: {err:?}"
            );
            assert_eq!(
                calls.get(),
                0,
                "{backend}: the step ran again after the kill"
            );

            // The operator checked the card service: retry it.
            let out: u32 = engine
                .resume("pay", "p1")
                .await
                .expect("resume")
                .wait_output()
                .await
                .expect("output");
            assert_eq!(out, 7, "{backend}");
            assert_eq!(calls.get(), 1);
            engine.shutdown().await;
        }
    }
}
