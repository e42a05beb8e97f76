//! The engine's tracing spans and events as an application's subscriber
//! sees them: a small capturing layer records every span (name, fields,
//! parent) and event, and each test asserts the tree of one scenario.
//!
//! Each test runs on a current-thread runtime with the capturing
//! subscriber as the thread's default, so every task of the engine (all on
//! that thread) reports to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memable::telemetry::{
    DEAD_LETTER_EVENT, RETRY_EVENT, RUN_SPAN, SIGNAL_EVENT, STEP_SPAN, SUSPEND_EVENT, TIMER_EVENT,
};
use memable::{
    AutoAdvanceClock, Clock, Context, Engine, EngineError, RetryPolicy, StepError, SuspendPoint,
    Workflow,
};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One captured span.
#[derive(Clone, Debug)]
struct SpanRec {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
}

/// One captured event.
#[derive(Clone, Debug)]
struct EventRec {
    name: &'static str,
    /// The span it was emitted in.
    span: Option<u64>,
    fields: HashMap<String, String>,
}

#[derive(Default)]
struct Captured {
    spans: Vec<SpanRec>,
    events: Vec<EventRec>,
}

/// Our own id per span (the registry reuses its ids once a span closes).
struct Seq(u64);

#[derive(Clone, Default)]
struct Capture {
    captured: Arc<Mutex<Captured>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let seq = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let span = ctx.span(id).expect("a new span is in the registry");
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<Seq>().map(|s| s.0));
        span.extensions_mut().insert(Seq(seq));
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.captured.lock().unwrap().spans.push(SpanRec {
            id: seq,
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(seq) = ctx
            .span(id)
            .and_then(|span| span.extensions().get::<Seq>().map(|s| s.0))
        else {
            return;
        };
        let mut captured = self.captured.lock().unwrap();
        if let Some(span) = captured.spans.iter_mut().find(|s| s.id == seq) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let span = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<Seq>().map(|s| s.0));
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.captured.lock().unwrap().events.push(EventRec {
            name: event.metadata().name(),
            span,
            fields,
        });
    }
}

impl Capture {
    /// Installs this layer as the thread's subscriber until the guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn spans(&self, name: &str) -> Vec<SpanRec> {
        let captured = self.captured.lock().unwrap();
        captured
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn events(&self, name: &str) -> Vec<EventRec> {
        let captured = self.captured.lock().unwrap();
        captured
            .events
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }

    /// The one span named `name` whose field `field` is `value`.
    fn span_with(&self, name: &str, field: &str, value: &str) -> SpanRec {
        let found: Vec<SpanRec> = self
            .spans(name)
            .into_iter()
            .filter(|s| s.fields.get(field).map(String::as_str) == Some(value))
            .collect();
        assert_eq!(found.len(), 1, "one {name} with {field}={value}: {found:?}");
        found.into_iter().next().unwrap()
    }
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> &'a str {
    fields.get(name).map_or("<missing>", String::as_str)
}

#[tokio::test]
async fn a_run_and_its_two_steps_nest_under_the_callers_span() {
    let capture = Capture::default();
    let _guard = capture.install();
    let engine = Engine::builder().build();
    engine
        .register("two", |ctx: Context| async move {
            let a = ctx
                .step("a")
                .run(|| async { Ok::<_, StepError>(1u32) })
                .await?;
            let b = ctx
                .step("b")
                .run(|| async { Ok::<_, StepError>(2u32) })
                .await?;
            Ok(a + b)
        })
        .unwrap();
    engine.start().await.unwrap();
    let request = tracing::info_span!("request");
    let out = async {
        engine
            .invoke("two")
            .id("1")
            .await?
            .wait_output::<u32>()
            .await
    }
    .instrument(request)
    .await
    .unwrap();
    assert_eq!(out, 3);
    engine.wait_all().await;

    let request = capture.spans("request").remove(0);
    let runs = capture.spans(RUN_SPAN);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.parent, Some(request.id));
    assert_eq!(field(&run.fields, "workflow"), "two");
    assert_eq!(field(&run.fields, "instance"), "1");
    assert_eq!(field(&run.fields, "reason"), "start");
    assert_eq!(field(&run.fields, "outcome"), "completed");
    let steps = capture.spans(STEP_SPAN);
    assert_eq!(steps.len(), 2, "{steps:?}");
    for (step, key) in steps.iter().zip(["a", "b"]) {
        assert_eq!(step.parent, Some(run.id));
        assert_eq!(field(&step.fields, "step"), key);
        assert_eq!(field(&step.fields, "attempt"), "1");
        assert_eq!(field(&step.fields, "outcome"), "committed");
    }
}

#[tokio::test]
async fn a_retry_then_success_is_two_attempt_spans_and_a_retry_event() {
    let capture = Capture::default();
    let _guard = capture.install();
    let clock = AutoAdvanceClock::new(0);
    let engine = Engine::builder().clock(clock.clone()).build();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    engine
        .register("flaky", move |ctx: Context| {
            let calls = Arc::clone(&c);
            async move {
                ctx.step("call")
                    .retry(RetryPolicy::fixed(3, Duration::from_secs(60)))
                    .run(|| {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            if n == 0 {
                                Err(StepError::retryable("503"))
                            } else {
                                Ok(n)
                            }
                        }
                    })
                    .await
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    assert_eq!(
        engine
            .invoke("flaky")
            .await
            .unwrap()
            .wait_output::<u64>()
            .await
            .unwrap(),
        1
    );
    engine.wait_all().await;

    let run = capture.spans(RUN_SPAN).remove(0);
    assert_eq!(field(&run.fields, "outcome"), "completed");
    let first = capture.span_with(STEP_SPAN, "attempt", "1");
    let second = capture.span_with(STEP_SPAN, "attempt", "2");
    for attempt in [&first, &second] {
        assert_eq!(attempt.parent, Some(run.id));
        assert_eq!(field(&attempt.fields, "step"), "call");
    }
    assert_eq!(field(&first.fields, "outcome"), "retryable");
    assert_eq!(field(&second.fields, "outcome"), "committed");
    let retries = capture.events(RETRY_EVENT);
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].span, Some(first.id));
    assert_eq!(field(&retries[0].fields, "delay_ms"), "60000");
    assert_eq!(field(&retries[0].fields, "attempt"), "1");
    assert_eq!(field(&retries[0].fields, "error"), "503");
    assert!(capture.events(DEAD_LETTER_EVENT).is_empty());
}

#[tokio::test]
async fn a_dead_letter_is_the_last_attempts_outcome_and_an_event() {
    let capture = Capture::default();
    let _guard = capture.install();
    let clock = AutoAdvanceClock::new(0);
    let engine = Engine::builder().clock(clock.clone()).build();
    engine
        .register("doomed", |ctx: Context| async move {
            ctx.step("call")
                .retry(RetryPolicy::fixed(2, Duration::from_secs(1)))
                .run(|| async { Err::<(), _>(StepError::retryable("down")) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let err = engine
        .invoke("doomed")
        .await
        .unwrap()
        .wait_output::<()>()
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::WorkflowFailed { .. }), "{err:?}");
    engine.wait_all().await;

    let run = capture.spans(RUN_SPAN).remove(0);
    assert_eq!(field(&run.fields, "outcome"), "failed");
    let first = capture.span_with(STEP_SPAN, "attempt", "1");
    let last = capture.span_with(STEP_SPAN, "attempt", "2");
    assert_eq!(field(&first.fields, "outcome"), "retryable");
    assert_eq!(field(&last.fields, "outcome"), "dead_letter");
    let dead = capture.events(DEAD_LETTER_EVENT);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].span, Some(last.id));
    assert_eq!(field(&dead[0].fields, "step"), "call");
    assert_eq!(field(&dead[0].fields, "attempts"), "2");
    assert_eq!(field(&dead[0].fields, "error"), "down");
}

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

#[tokio::test]
async fn a_suspension_and_its_signal_make_a_second_run_under_the_signallers_span() {
    let capture = Capture::default();
    let _guard = capture.install();
    let engine = Engine::builder().build();
    engine
        .register("review", |ctx: Context| async move {
            ctx.step("before")
                .run(|| async { Ok::<_, StepError>(()) })
                .await?;
            let ok = ctx.suspend(&APPROVAL).await?;
            ctx.step("after")
                .run(|| async { Ok::<_, StepError>(()) })
                .await?;
            Ok(ok)
        })
        .unwrap();
    engine.start().await.unwrap();
    async {
        engine
            .invoke("review")
            .id("r")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap()
    }
    .instrument(tracing::info_span!("submit"))
    .await;
    let run = async { engine.signal("review", "r", &APPROVAL, true).await.unwrap() }
        .instrument(tracing::info_span!("approve"))
        .await;
    assert!(run.wait_output::<bool>().await.unwrap());
    engine.wait_all().await;

    let submit = capture.spans("submit").remove(0);
    let approve = capture.spans("approve").remove(0);
    let first = capture.span_with(RUN_SPAN, "reason", "start");
    let second = capture.span_with(RUN_SPAN, "reason", "signal");
    assert_eq!(first.parent, Some(submit.id));
    assert_eq!(field(&first.fields, "outcome"), "suspended");
    assert_eq!(second.parent, Some(approve.id));
    assert_eq!(field(&second.fields, "outcome"), "completed");
    let suspended = capture.events(SUSPEND_EVENT);
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0].span, Some(first.id));
    assert_eq!(field(&suspended[0].fields, "point"), "approval");
    let signals = capture.events(SIGNAL_EVENT);
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0].span, Some(approve.id));
    assert_eq!(field(&signals[0].fields, "point"), "approval");
    assert_eq!(field(&signals[0].fields, "instance"), "r");
    assert_eq!(field(&signals[0].fields, "buffered"), "false");
    // The replayed step makes no span: one attempt of each step in all.
    let before = capture.span_with(STEP_SPAN, "step", "before");
    let after = capture.span_with(STEP_SPAN, "step", "after");
    assert_eq!(before.parent, Some(first.id));
    assert_eq!(after.parent, Some(second.id));
}

#[tokio::test]
async fn a_timer_fires_into_a_root_run() {
    let capture = Capture::default();
    let _guard = capture.install();
    let clock = AutoAdvanceClock::new(0);
    let engine = Engine::builder().clock(clock.clone()).build();
    engine
        .register("remind", |ctx: Context| async move {
            ctx.timer("a-day", Duration::from_secs(86_400)).await?;
            Ok("reminded".to_string())
        })
        .unwrap();
    engine.start().await.unwrap();
    let out = async {
        engine
            .invoke("remind")
            .id("1")
            .await?
            .wait_output::<String>()
            .await
    }
    .instrument(tracing::info_span!("caller"))
    .await
    .unwrap();
    assert_eq!(out, "reminded");
    engine.wait_all().await;

    let caller = capture.spans("caller").remove(0);
    let first = capture.span_with(RUN_SPAN, "reason", "start");
    assert_eq!(first.parent, Some(caller.id));
    assert_eq!(field(&first.fields, "outcome"), "suspended");
    let timers = capture.events(TIMER_EVENT);
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0].span, None);
    assert_eq!(field(&timers[0].fields, "step"), "a-day");
    assert_eq!(field(&timers[0].fields, "workflow"), "remind");
    // The scheduler has no caller: the woken run is a root.
    let second = capture.span_with(RUN_SPAN, "reason", "timer");
    assert_eq!(second.parent, None);
    assert_eq!(field(&second.fields, "outcome"), "completed");
    assert_eq!(clock.now_ms(), 86_400_000);
}

static KID: Workflow<u32, u32> = Workflow::new("kid");
static PARENT: Workflow<u32, u32> = Workflow::new("parent");

#[tokio::test]
async fn a_childs_run_nests_under_its_parents_run() {
    let capture = Capture::default();
    let _guard = capture.install();
    let engine = Engine::builder().build();
    KID.register(&engine, |_ctx: Context, n: u32| async move { Ok(n + 1) })
        .unwrap();
    PARENT
        .register(&engine, |ctx: Context, n: u32| async move {
            ctx.child(&KID, "k", n).await
        })
        .unwrap();
    engine.start().await.unwrap();
    assert_eq!(
        PARENT
            .invoke(&engine, 1)
            .id("p")
            .await
            .unwrap()
            .output()
            .await
            .unwrap(),
        2
    );
    engine.wait_all().await;

    let parent_first = capture
        .spans(RUN_SPAN)
        .into_iter()
        .find(|s| field(&s.fields, "workflow") == "parent" && field(&s.fields, "reason") == "start")
        .expect("the parent's first run");
    let kid = capture.span_with(RUN_SPAN, "workflow", "kid");
    assert_eq!(kid.parent, Some(parent_first.id));
    assert_eq!(field(&kid.fields, "instance"), "parent:p:k");
    assert_eq!(field(&kid.fields, "outcome"), "completed");
}
