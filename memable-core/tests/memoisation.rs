//! Steps are memoised by key: a committed result is returned instead of
//! running the closure again, across resumes, code changes and restarts.

mod common;

use common::{Gate, counter, engine_on, fresh, get, guarded, step_record, tick};
use memable_core::{Context, EngineBuilder, EngineError, StepKind, StepState, type_tag};

#[tokio::test(start_paused = true)]
async fn a_committed_step_does_not_run_again_on_resume() {
    let (_store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move { ctx.step("a").run(|| tick(&runs, 7u32)).await }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let first = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(first.wait_output::<u32>()).await.unwrap(), 7);
    let again = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(again.wait_output::<u32>()).await.unwrap(), 7);
    assert_eq!(get(&runs), 1, "the step closure ran again on resume");
}

#[tokio::test(start_paused = true)]
async fn a_step_result_is_committed_with_its_type_tag() {
    let (store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("a")
                .run(|| async { Ok::<_, memable_core::StepError>(vec![1u16, 2]) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    let record = step_record(&store, "wf", "1", "a").await.unwrap();
    assert_eq!(record.state, StepState::Completed);
    assert_eq!(record.kind, StepKind::Step);
    assert_eq!(record.type_tag, "Vec<u16>");
    assert_eq!(record.type_tag, type_tag::<Vec<u16>>());
    assert_eq!(record.value, postcard_bytes(&vec![1u16, 2]));
}

fn postcard_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    memable_core::encode_value("k", value).unwrap()
}

#[tokio::test(start_paused = true)]
async fn committed_steps_survive_a_crash_and_the_rest_runs_after_restart() {
    let (store, clock, engine) = fresh();
    let first = counter();
    let gate = Gate::new();
    engine
        .register("wf", {
            let first = first.clone();
            move |ctx: Context| {
                let first = first.clone();
                let gate = gate.clone();
                async move {
                    let a = ctx.step("a").run(|| tick(&first, 1u32)).await?;
                    let b = ctx
                        .step("b")
                        .run(|| {
                            let gate = gate.clone();
                            async move {
                                gate.pass().await; // never opened: the "process" dies here
                                Ok(100u32)
                            }
                        })
                        .await?;
                    Ok(a + b)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    common::until("step a committed", || get(&first) == 1).await;
    common::quiesce().await;
    assert!(step_record(&store, "wf", "1", "a").await.is_some());
    engine.abort();

    let restarted = engine_on(&store, &clock);
    let second_a = counter();
    let second_b = counter();
    restarted
        .register("wf", {
            let (a, b) = (second_a.clone(), second_b.clone());
            move |ctx: Context| {
                let (a, b) = (a.clone(), b.clone());
                async move {
                    let x = ctx.step("a").run(|| tick(&a, 1u32)).await?;
                    let y = ctx.step("b").run(|| tick(&b, 2u32)).await?;
                    Ok(x + y)
                }
            }
        })
        .unwrap();
    restarted.start().await.unwrap();
    common::settled(&restarted, "wf", "1").await;
    assert_eq!(restarted.output::<u32>("wf", "1").await.unwrap(), 3);
    assert_eq!(
        get(&second_a),
        0,
        "committed step a ran again after restart"
    );
    assert_eq!(get(&second_b), 1);
}

#[tokio::test(start_paused = true)]
async fn changing_a_key_runs_the_step_again() {
    let (store, clock, engine) = fresh();
    let runs = counter();
    let register = |engine: &memable_core::Engine, key: &'static str| {
        let runs = runs.clone();
        engine
            .register("wf", move |ctx: Context| {
                let runs = runs.clone();
                async move { ctx.step(key).run(|| tick(&runs, key.len())).await }
            })
            .unwrap();
    };
    register(&engine, "fetch:v1");
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 8);
    // New code version with a new key, same store.
    let v2 = engine_on(&store, &clock);
    engine.stop();
    register(&v2, "fetch:v2.1");
    v2.start().await.unwrap();
    let run = v2.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 10);
    assert_eq!(get(&runs), 2);
}

#[tokio::test(start_paused = true)]
async fn steps_added_removed_and_reordered_between_runs_are_found_by_key() {
    let (store, clock, engine) = fresh();
    let ran_a = counter();
    let ran_b = counter();
    let ran_c = counter();
    engine
        .register("wf", {
            let (ran_a, ran_b) = (ran_a.clone(), ran_b.clone());
            move |ctx: Context| {
                let (ran_a, ran_b) = (ran_a.clone(), ran_b.clone());
                async move {
                    let x = ctx.step("a").run(|| tick(&ran_a, 1u32)).await?;
                    let y = ctx.step("b").run(|| tick(&ran_b, 10u32)).await?;
                    Ok(x + y)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 11);
    engine.stop();

    // v2: b before a, a new step c in the middle.
    let v2 = engine_on(&store, &clock);
    v2.register("wf", {
        let (ran_a, ran_b, ran_c) = (ran_a.clone(), ran_b.clone(), ran_c.clone());
        move |ctx: Context| {
            let (ran_a, ran_b, ran_c) = (ran_a.clone(), ran_b.clone(), ran_c.clone());
            async move {
                let y = ctx.step("b").run(|| tick(&ran_b, 10u32)).await?;
                let z = ctx.step("c").run(|| tick(&ran_c, 100u32)).await?;
                let x = ctx.step("a").run(|| tick(&ran_a, 1u32)).await?;
                Ok(x + y + z)
            }
        }
    })
    .unwrap();
    v2.start().await.unwrap();
    let run = v2.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 111);
    assert_eq!((get(&ran_a), get(&ran_b), get(&ran_c)), (1, 1, 1));
    v2.stop();

    // v3: step a removed entirely.
    let v3 = engine_on(&store, &clock);
    v3.register("wf", {
        let (ran_b, ran_c) = (ran_b.clone(), ran_c.clone());
        move |ctx: Context| {
            let (ran_b, ran_c) = (ran_b.clone(), ran_c.clone());
            async move {
                let z = ctx.step("c").run(|| tick(&ran_c, 100u32)).await?;
                let y = ctx.step("b").run(|| tick(&ran_b, 10u32)).await?;
                Ok(y + z)
            }
        }
    })
    .unwrap();
    v3.start().await.unwrap();
    let run = v3.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 110);
    assert_eq!((get(&ran_a), get(&ran_b), get(&ran_c)), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_key_reused_in_one_run_returns_the_first_result() {
    let (_store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move {
                    let first = ctx.step("same").run(|| tick(&runs, 1u32)).await?;
                    let second = ctx.step("same").run(|| tick(&runs, 2u32)).await?;
                    Ok((first, second))
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<(u32, u32)>()).await.unwrap(),
        (1, 1)
    );
    assert_eq!(get(&runs), 1);
}

#[tokio::test(start_paused = true)]
async fn strict_keys_makes_key_reuse_an_error() {
    let engine = EngineBuilder::default()
        .in_memory()
        .strict_keys(true)
        .build();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move {
                    ctx.step("same").run(|| tick(&runs, 1u32)).await?;
                    let again = ctx.step("same").run(|| tick(&runs, 2u32)).await;
                    Ok(match again {
                        Err(EngineError::KeyReused { key }) => key,
                        other => format!("unexpected {other:?}"),
                    })
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "same");
    assert_eq!(get(&runs), 1);
}

#[tokio::test(start_paused = true)]
async fn strict_keys_does_not_flag_a_key_replayed_in_a_later_run() {
    let engine = EngineBuilder::default()
        .in_memory()
        .strict_keys(true)
        .build();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move { ctx.step("a").run(|| tick(&runs, 5u8)).await }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    common::settled(&engine, "wf", "1").await;
    let run = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u8>()).await.unwrap(), 5);
    assert_eq!(get(&runs), 1);
}

#[tokio::test(start_paused = true)]
async fn distinct_keys_in_a_loop_each_run_once() {
    let (_store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move {
                    let mut sum = 0u64;
                    for i in 0..20u64 {
                        sum += ctx.step(format!("item:{i}")).run(|| tick(&runs, i)).await?;
                    }
                    Ok(sum)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u64>()).await.unwrap(), 190);
    let again = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(again.wait_output::<u64>()).await.unwrap(), 190);
    assert_eq!(get(&runs), 20);
}
