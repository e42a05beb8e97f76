//! Each command, as a thin layer over the engine's and the store's API:
//! it opens the store (see [`crate::store`]), calls the library, and
//! renders the answer as JSON or a table.

use std::fmt::Write as _;
use std::sync::Arc;

use memable_core::{
    ChildLink, InstanceFilter, InstanceKey, ParentLink, ReviveOutcome, SignalOutcome, StatusKind,
    StepKind, StepRecord, StepStore, StepStoreExt, encode_value, validate_user_key,
};
use serde_json::{Value, json};

use crate::output::{InstanceJson, StepJson, compact, table, value_of, when};
use crate::store::{self, Access, Opened};
use crate::{App, Cli, CliError, Command};

/// What a command printed on success.
pub(crate) type Printed = String;

const PAGE: usize = 500;

fn access(command: &Command) -> Access {
    match command {
        Command::List { .. }
        | Command::Show { .. }
        | Command::Steps { .. }
        | Command::Backup { .. }
        | Command::Check { .. } => Access::Read,
        Command::Signal { .. }
        | Command::Cancel { .. }
        | Command::Resume { .. }
        | Command::Delete { .. }
        | Command::Forget { .. }
        | Command::Fork { .. } => Access::Write,
    }
}

/// Runs `cli` for `app`: what to print on stdout and the exit code.
pub(crate) async fn run(app: &App, cli: Cli) -> Result<(Printed, u8), CliError> {
    if let Command::Check { .. } = &cli.command
        && !app.has_workflows()
    {
        return Err(CliError::usage(format!(
            "`{} check` runs your workflows' current code over the stored instances, and this \
             command has none registered. Build your own operator command with your \
             workflows: `memable_cli::App::new(\"ops\").workflows(register).main()` in a binary \
             of your application (see docs/cli.md), then run `ops check <workflow>`.",
            app.name()
        )));
    }
    let Some(target) = cli.store.clone() else {
        return Err(CliError::usage(
            "no store: pass --store <path-or-url> (or set MEMABLE_STORE)",
        ));
    };
    let opened = store::open(&target, cli.backend, access(&cli.command), &cli.pg_schema).await?;
    if let Opened::Sqlite {
        beside_holder: true,
        ..
    } = &opened
    {
        eprintln!(
            "note: {target} is held by a running application; reading it read-only (what the application has committed so far)"
        );
    }
    let result = match &cli.command {
        Command::Check {
            workflow,
            id,
            all,
            status,
        } => {
            check(
                app,
                &opened,
                workflow,
                id.as_deref(),
                *all,
                status.as_deref(),
                cli.json,
            )
            .await
        }
        _ => dispatch(app, &cli, &opened)
            .await
            .map(|printed| (printed, crate::exit::SUCCESS)),
    };
    opened.close().await;
    result
}

fn parse_status(status: Option<&str>) -> Result<Option<StatusKind>, CliError> {
    status
        .map(|s| {
            StatusKind::parse(s).ok_or_else(|| {
                CliError::usage(format!(
                    "unknown status '{s}': use running, suspended, completed, failed or cancelled"
                ))
            })
        })
        .transpose()
}

async fn check(
    app: &App,
    opened: &Opened,
    workflow: &str,
    id: Option<&str>,
    all: bool,
    status: Option<&str>,
    json: bool,
) -> Result<(Printed, u8), CliError> {
    let engine = app.engine_on(opened.store())?;
    let scope = crate::check::Scope {
        id,
        all,
        status: parse_status(status)?,
    };
    let (printed, clean) = crate::check::check(&engine, workflow, &scope, json).await?;
    Ok((printed, crate::check::code(clean)))
}

fn render(json: bool, doc: &Value, human: impl FnOnce() -> String) -> Printed {
    if json { doc.to_string() } else { human() }
}

#[allow(clippy::too_many_lines)] // one arm per command
async fn dispatch(app: &App, cli: &Cli, opened: &Opened) -> Result<Printed, CliError> {
    let store = opened.store();
    let engine = app.engine_on(Arc::clone(&store))?;
    let json = cli.json;
    match &cli.command {
        Command::List {
            workflow,
            status,
            older_than,
            newer_than,
            ended_older_than,
            limit,
        } => {
            let status = parse_status(status.as_deref())?;
            let ages = Ages {
                min_age: *older_than,
                max_age: *newer_than,
                min_since_end: *ended_older_than,
            };
            let listed = list(&engine, workflow.as_deref(), status, ages, *limit).await?;
            let doc = json!({ "instances": listed });
            Ok(render(json, &doc, || list_table(&listed)))
        }
        Command::Show { workflow, id } => show(&*store, workflow, id, json).await,
        Command::Steps { workflow, id, all } => {
            steps(&engine, &*store, workflow, id, *all, json).await
        }
        Command::Signal {
            workflow,
            id,
            point,
            payload,
            type_tag,
        } => {
            signal(
                &*store,
                workflow,
                id,
                point,
                payload,
                type_tag.as_deref(),
                json,
            )
            .await
        }
        Command::Cancel { workflow, id } => {
            engine.cancel(workflow, id).await?;
            let doc = json!({ "workflow": workflow, "id": id, "cancelled": true });
            Ok(render(json, &doc, || format!("cancelled {workflow}/{id}")))
        }
        Command::Resume { workflow, id } => {
            let previous = resume(&*store, workflow, id).await?;
            let doc = json!({ "workflow": workflow, "id": id, "resumed": true, "previous_status": previous });
            Ok(render(json, &doc, || {
                format!(
                    "{workflow}/{id} will run again (was {previous}); {}",
                    runs_where(opened.backend())
                )
            }))
        }
        Command::Delete { workflow, id } => {
            if !engine.delete(workflow, id).await? {
                return Err(CliError::not_found(format!("no instance {workflow}/{id}")));
            }
            let doc = json!({ "workflow": workflow, "id": id, "deleted": true });
            Ok(render(json, &doc, || format!("deleted {workflow}/{id}")))
        }
        Command::Forget {
            workflow,
            id,
            steps,
            resume: and_resume,
        } => {
            let keys: Vec<&str> = steps.iter().map(String::as_str).collect();
            let forgotten = engine.forget(workflow, id, &keys).await?;
            let resumed = if *and_resume {
                resume(&*store, workflow, id).await?;
                true
            } else {
                false
            };
            let doc = json!({ "workflow": workflow, "id": id, "forgotten": forgotten, "resumed": resumed });
            Ok(render(json, &doc, || {
                let mut out = if forgotten.is_empty() {
                    format!("{workflow}/{id} had none of those steps; nothing forgotten")
                } else {
                    format!("forgot {} of {workflow}/{id}", forgotten.join(", "))
                };
                if resumed {
                    let _ = write!(out, "; it will run again: {}", runs_where(opened.backend()));
                } else if !forgotten.is_empty() {
                    out.push_str("; they run again on its next run (`resume`)");
                }
                out
            }))
        }
        Command::Fork {
            workflow,
            id,
            new_id,
            without,
        } => {
            let keys: Vec<&str> = without.iter().map(String::as_str).collect();
            engine.fork(workflow, id, new_id, &keys).await?;
            let doc = json!({ "workflow": workflow, "from": id, "to": new_id, "without": without });
            Ok(render(json, &doc, || {
                format!(
                    "forked {workflow}/{id} to {workflow}/{new_id}{}; {}",
                    if without.is_empty() {
                        String::new()
                    } else {
                        format!(" without {}", without.join(", "))
                    },
                    runs_where(opened.backend())
                )
            }))
        }
        Command::Backup { dest } => backup(opened, dest, json).await,
        // `run` dispatches `check` itself (it has its own exit code).
        Command::Check { .. } => Err(CliError::failure("check is dispatched by run")),
    }
}

fn runs_where(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Postgres => "a worker that has the workflow runs it",
        _ => "the application runs it when its engine starts on this store",
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How far back `list`'s age options reach (ms), each relative to now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ages {
    /// Created longer ago than this.
    pub min_age: Option<u64>,
    /// Created more recently than this.
    pub max_age: Option<u64>,
    /// Ended longer ago than this.
    pub min_since_end: Option<u64>,
}

async fn list(
    engine: &memable_core::Engine,
    workflow: Option<&str>,
    status: Option<StatusKind>,
    ages: Ages,
    limit: Option<usize>,
) -> Result<Vec<InstanceJson>, CliError> {
    let now = now_ms();
    let mut filter = InstanceFilter::new().limit(limit.map_or(PAGE, |l| l.min(PAGE)));
    if let Some(workflow) = workflow {
        filter = filter.workflow(workflow);
    }
    if let Some(status) = status {
        filter = filter.status(status);
    }
    // Ages are strict: older than `a` is `created_at < now - a`; newer than
    // `a` is `created_at > now - a`.
    if let Some(age) = ages.min_age {
        filter = filter.created_before(now.saturating_sub(age));
    }
    if let Some(age) = ages.max_age {
        filter = filter.created_since(now.saturating_sub(age).saturating_add(1));
    }
    if let Some(age) = ages.min_since_end {
        filter = filter.ended_before(now.saturating_sub(age));
    }
    let mut listed = Vec::new();
    loop {
        let page = engine.list_instances(&filter).await?;
        let full = filter.limit.is_some_and(|l| page.len() == l);
        let last = page
            .last()
            .map(memable_core::WorkflowMetadata::key)
            .transpose()?;
        listed.extend(page.iter().map(InstanceJson::from));
        if let Some(limit) = limit {
            if listed.len() >= limit {
                listed.truncate(limit);
                return Ok(listed);
            }
            filter = filter.limit((limit - listed.len()).min(PAGE));
        }
        match last {
            Some(last) if full => filter = filter.after(last),
            _ => return Ok(listed),
        }
    }
}

fn list_table(listed: &[InstanceJson]) -> String {
    if listed.is_empty() {
        return "no instances".to_owned();
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|i| {
            vec![
                i.workflow.clone(),
                i.id.clone(),
                match &i.suspended_at {
                    Some(at) => format!("{} at {at}", i.status),
                    None => i.status.to_owned(),
                },
                when(i.created_at_ms),
                when(i.updated_at_ms),
                i.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "WORKFLOW",
            "ID",
            "STATUS",
            "CREATED (UTC)",
            "UPDATED (UTC)",
            "MESSAGE",
        ],
        &rows,
    )
}

async fn snapshot(
    store: &dyn StepStore,
    workflow: &str,
    id: &str,
) -> Result<memable_core::InstanceSnapshot, CliError> {
    let key = InstanceKey::new(workflow, id)?;
    store
        .load_instance(&key)
        .await?
        .ok_or_else(|| CliError::not_found(format!("no instance {workflow}/{id}")))
}

async fn show(
    store: &dyn StepStore,
    workflow: &str,
    id: &str,
    json: bool,
) -> Result<Printed, CliError> {
    let snap = snapshot(store, workflow, id).await?;
    let instance = InstanceJson::from(&snap.metadata);
    let value = |key: &str| snap.step(key).map_or(Value::Null, value_of);
    let parent = match snap.step("_parent") {
        Some(record) => {
            let link = ParentLink::from_record(record)?;
            json!({ "workflow": link.parent.workflow(), "id": link.parent.instance(), "step": link.step_key, "detached": link.detached })
        }
        None => Value::Null,
    };
    let mut children = Vec::new();
    let mut buffered = Vec::new();
    let mut user_steps = 0usize;
    for (key, record) in &snap.steps {
        if let Some(step) = key.strip_prefix("_child:") {
            let link = ChildLink::from_record(record)?;
            children.push(json!({ "step": step, "workflow": link.child.workflow(), "id": link.child.instance(), "detached": link.detached }));
        } else if let Some(point) = key.strip_prefix("_signal:") {
            buffered.push(
                json!({ "point": point, "type_tag": record.type_tag, "value": value_of(record) }),
            );
        } else if !key.starts_with('_') {
            user_steps += 1;
        }
    }
    let doc = json!({
        "instance": instance,
        "input": value("_input"),
        "output": value("_output"),
        "parent": parent,
        "children": children,
        "buffered_signals": buffered,
        "steps": user_steps,
    });
    Ok(render(json, &doc, || {
        let mut out = String::new();
        let _ = writeln!(out, "instance   {workflow}/{id}");
        let status = match &instance.suspended_at {
            Some(at) => format!("{} at {at}", instance.status),
            None => instance.status.to_owned(),
        };
        let _ = writeln!(out, "status     {status}");
        if let Some(message) = &instance.message {
            let _ = writeln!(out, "message    {message}");
        }
        let _ = writeln!(out, "created    {} UTC", when(instance.created_at_ms));
        let _ = writeln!(out, "updated    {} UTC", when(instance.updated_at_ms));
        let _ = writeln!(out, "input      {}", compact(&doc["input"]));
        let _ = writeln!(out, "output     {}", compact(&doc["output"]));
        if !parent.is_null() {
            let _ = writeln!(
                out,
                "parent     {}/{} (step {})",
                parent["workflow"].as_str().unwrap_or(""),
                parent["id"].as_str().unwrap_or(""),
                parent["step"].as_str().unwrap_or("")
            );
        }
        for child in &children {
            let _ = writeln!(
                out,
                "child      {}/{} (step {})",
                child["workflow"].as_str().unwrap_or(""),
                child["id"].as_str().unwrap_or(""),
                child["step"].as_str().unwrap_or("")
            );
        }
        for signal in &buffered {
            let _ = writeln!(
                out,
                "buffered   {} = {}",
                signal["point"].as_str().unwrap_or(""),
                compact(&signal["value"])
            );
        }
        let _ = write!(out, "steps      {user_steps} (see `steps`)");
        out
    }))
}

async fn steps(
    engine: &memable_core::Engine,
    store: &dyn StepStore,
    workflow: &str,
    id: &str,
    all: bool,
    json: bool,
) -> Result<Printed, CliError> {
    let history = engine.step_history(workflow, id).await?;
    let meta = store
        .get_metadata(&InstanceKey::new(workflow, id)?)
        .await?
        .ok_or_else(|| CliError::not_found(format!("no instance {workflow}/{id}")))?;
    let steps: Vec<StepJson> = history.steps.iter().map(StepJson::from).collect();
    let buffered: Vec<Value> = history
        .buffered_signals
        .iter()
        .map(|b| json!({ "point": b.point, "type_tag": b.type_tag, "value": b.value, "received_at_ms": b.received_at_ms }))
        .collect();
    let timers: Vec<Value> = history
        .timers
        .iter()
        .map(|t| json!({ "key": t.key, "deadline_ms": t.deadline_ms }))
        .collect();
    let mut doc = json!({
        "instance": InstanceJson::from(&meta),
        "steps": steps,
        "buffered_signals": buffered,
        "timers": timers,
    });
    let engine_records: Vec<StepJson> = if all {
        let snap = snapshot(store, workflow, id).await?;
        snap.steps
            .iter()
            .filter(|(key, _)| key.starts_with('_'))
            .map(|(key, record)| StepJson::new(key, record))
            .collect()
    } else {
        Vec::new()
    };
    if all {
        doc["engine_records"] = json!(engine_records);
    }
    Ok(render(json, &doc, || {
        steps_table(workflow, id, &steps, &history, &engine_records)
    }))
}

fn steps_table(
    workflow: &str,
    id: &str,
    steps: &[StepJson],
    history: &memable_core::StepHistory,
    engine_records: &[StepJson],
) -> String {
    let rows: Vec<Vec<String>> = steps.iter().chain(engine_records).map(step_row).collect();
    let mut out = if rows.is_empty() {
        format!("{workflow}/{id} has no steps yet")
    } else {
        table(
            &[
                "KEY",
                "KIND",
                "STATE",
                "ATTEMPTS",
                "STARTED",
                "COMPLETED",
                "TYPE",
                "VALUE",
            ],
            &rows,
        )
    };
    for signal in &history.buffered_signals {
        let value = signal.value.clone().unwrap_or(Value::Null);
        let _ = write!(
            out,
            "\nbuffered signal for '{}': {}",
            signal.point,
            compact(&value)
        );
    }
    for timer in &history.timers {
        let _ = write!(
            out,
            "\npending deadline '{}' at {} UTC",
            timer.key,
            when(timer.deadline_ms)
        );
    }
    out
}

fn step_row(s: &StepJson) -> Vec<String> {
    let time = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), when);
    vec![
        s.key.clone(),
        s.kind.to_owned(),
        s.state.to_owned(),
        s.attempts.to_string(),
        time(s.started_at_ms),
        time(s.completed_at_ms),
        s.type_tag.clone(),
        match (&s.error, s.deadline_ms) {
            (Some(error), _) => format!("error: {error}"),
            (None, Some(deadline)) if s.state == "suspended" => {
                format!("until {} UTC", when(deadline))
            }
            _ => compact(&s.value),
        },
    ]
}

async fn signal(
    store: &dyn StepStore,
    workflow: &str,
    id: &str,
    point: &str,
    payload: &str,
    type_tag: Option<&str>,
    json: bool,
) -> Result<Printed, CliError> {
    let key = InstanceKey::new(workflow, id)?;
    validate_user_key("point", point)?;
    let value: Value = serde_json::from_str(payload)
        .map_err(|e| CliError::usage(format!("the payload is not JSON ({e}): {payload}")))?;
    let stored = store.get_step(&key, point).await?;
    let tag = match (&stored, type_tag) {
        (_, Some(tag)) => tag.to_owned(),
        (Some(record), None) => record.type_tag.clone(),
        (None, None) => {
            if store.get_metadata(&key).await?.is_none() {
                return Err(CliError::not_found(format!("no instance {workflow}/{id}")));
            }
            return Err(CliError::usage(format!(
                "{workflow}/{id} has not reached point '{point}' yet, so its value type is not \
                 known here: pass --type <tag> (the type tag of the point's SuspendPoint<T>, \
                 e.g. bool) to buffer the signal until it gets there"
            )));
        }
    };
    let record = StepRecord::completed(StepKind::Suspend, &tag, encode_value(point, &value)?, None);
    let outcome = store
        .deliver_signal(key.clone(), point.to_owned(), record, now_ms())
        .await?;
    let delivered = match outcome {
        SignalOutcome::Delivered => "delivered",
        SignalOutcome::Buffered => "buffered",
        SignalOutcome::Superseded => {
            return Err(CliError::refused(format!(
                "point '{point}' of {workflow}/{id} already has its value (or a signal for it is buffered)"
            )));
        }
        SignalOutcome::WrongType(expected) => {
            return Err(CliError::refused(format!(
                "point '{point}' of {workflow}/{id} waits for a `{expected}`, not a `{tag}`"
            )));
        }
        SignalOutcome::NotAPoint(kind) => {
            return Err(CliError::refused(format!(
                "'{point}' of {workflow}/{id} is a {} record, which a signal cannot resolve",
                crate::output::kind_name(kind)
            )));
        }
        SignalOutcome::InstanceMissing => {
            return Err(CliError::not_found(format!("no instance {workflow}/{id}")));
        }
        SignalOutcome::Finished(status) => {
            return Err(CliError::refused(format!(
                "{workflow}/{id} is {}; it takes no more signals",
                status.kind().as_str()
            )));
        }
    };
    let doc = json!({ "workflow": workflow, "id": id, "point": point, "outcome": delivered });
    Ok(render(json, &doc, || match delivered {
        "delivered" => format!(
            "delivered to {workflow}/{id} at '{point}'; the instance is running again (its application's engine runs it)"
        ),
        _ => format!(
            "buffered for {workflow}/{id} at '{point}': the workflow gets it when it reaches the point"
        ),
    }))
}

/// Marks an instance to run again, its dead letters with a fresh retry
/// budget (the store's `Resume` transition); returns its status before.
async fn resume(store: &dyn StepStore, workflow: &str, id: &str) -> Result<&'static str, CliError> {
    let key = InstanceKey::new(workflow, id)?;
    match store.resume_instance(key, now_ms()).await? {
        ReviveOutcome::Revived(previous) => Ok(previous.kind().as_str()),
        ReviveOutcome::Cancelled => Err(CliError::refused(format!(
            "{workflow}/{id} is cancelled; a cancelled instance cannot run again (fork it to a new id instead)"
        ))),
        ReviveOutcome::InstanceMissing => {
            Err(CliError::not_found(format!("no instance {workflow}/{id}")))
        }
    }
}

async fn backup(opened: &Opened, dest: &str, json: bool) -> Result<Printed, CliError> {
    // A backup never overwrites: a taken destination is a refusal.
    let refused_if_taken = |error: memable_core::EngineError| {
        if error.storage_kind() == Some(memable_core::StorageErrorKind::Unsupported) {
            CliError::refused(error.to_string())
        } else {
            CliError::from(error)
        }
    };
    match opened {
        Opened::Redb(store) => store.backup(dest).await.map_err(refused_if_taken)?,
        Opened::Sqlite {
            beside_holder: false,
            store,
        } => store.backup(dest).await.map_err(refused_if_taken)?,
        Opened::Sqlite {
            beside_holder: true,
            ..
        } => {
            return Err(CliError::held(
                "the store is held by a running application, which alone can copy it \
                 consistently: call SqliteStore::backup in the application (it runs while \
                 the engine works), or stop the application and run backup again",
            ));
        }
        Opened::Postgres(_) => {
            return Err(CliError::refused(
                "a PostgreSQL store is backed up with PostgreSQL's own tools: \
                 pg_dump --schema memable (or your database's backup)",
            ));
        }
    }
    let doc = json!({ "backup": dest, "backend": opened.backend() });
    Ok(render(json, &doc, || format!("backed up to {dest}")))
}
