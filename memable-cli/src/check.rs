//! `check`: the application's current code over stored instances, through
//! `Engine::check_instance` / `check_active` / `check_workflow` (a dry run:
//! nothing executes, nothing is written).

use std::fmt::Write as _;

use memable_core::{Engine, InstanceCheck, InstanceFilter, StatusKind};
use serde_json::{Value, json};

use crate::output::table;
use crate::{CliError, exit};

/// Which instances `check` looks at.
pub(crate) struct Scope<'a> {
    pub id: Option<&'a str>,
    pub all: bool,
    pub status: Option<StatusKind>,
}

/// Runs the check; returns what to print and whether every instance is
/// clean.
pub(crate) async fn check(
    engine: &Engine,
    workflow: &str,
    scope: &Scope<'_>,
    json: bool,
) -> Result<(String, bool), CliError> {
    let reports: Vec<InstanceCheck> = match (scope.id, scope.status, scope.all) {
        (Some(id), _, _) => vec![engine.check_instance(workflow, id).await?],
        (None, Some(status), _) => {
            engine
                .check_workflow(workflow, &InstanceFilter::new().status(status))
                .await?
        }
        (None, None, true) => {
            engine
                .check_workflow(workflow, &InstanceFilter::new())
                .await?
        }
        (None, None, false) => engine.check_active(workflow).await?,
    };
    let docs: Vec<Value> = reports
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    if docs.iter().any(|d| d["stop"]["stop"] == "not_registered") {
        return Err(CliError::usage(format!(
            "workflow '{workflow}' is not registered in this command: register it with \
             App::workflows (the function your application registers its workflows with)"
        )));
    }
    let problems = reports.iter().filter(|r| !r.is_clean()).count();
    let clean = problems == 0;
    let printed = if json {
        json!({ "workflow": workflow, "clean": clean, "instances": docs }).to_string()
    } else {
        human(workflow, &reports, &docs, problems)
    };
    Ok((printed, clean))
}

fn human(workflow: &str, reports: &[InstanceCheck], docs: &[Value], problems: usize) -> String {
    if reports.is_empty() {
        return format!("no instances of {workflow} to check");
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .zip(docs)
        .map(|(r, doc)| {
            vec![
                r.instance_id.clone(),
                match &r.suspended_at {
                    Some(at) => format!("{} at {at}", r.status.as_str()),
                    None => r.status.as_str().to_owned(),
                },
                list(&r.reached),
                stop(&doc["stop"]),
                list(&r.orphaned),
                if r.mismatches.is_empty() {
                    "-".to_owned()
                } else {
                    r.mismatches
                        .iter()
                        .map(|m| {
                            format!("{} (stored {}, code reads {})", m.key, m.stored, m.expected)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                if r.is_clean() { "ok" } else { "PROBLEM" }.to_owned(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "STATUS",
            "REACHED",
            "STOPS AT",
            "ORPHANED",
            "MISMATCHES",
            "VERDICT",
        ],
        &rows,
    );
    let _ = write!(
        out,
        "\n{} instance(s) of {workflow} checked, {problems} with problems",
        reports.len()
    );
    out
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "-".to_owned()
    } else {
        keys.join(", ")
    }
}

/// A stop, from its JSON form (`{"stop": "new_work", "key": …}`).
fn stop(doc: &Value) -> String {
    let text = |field: &str| doc[field].as_str().unwrap_or("?").to_owned();
    match doc["stop"].as_str().unwrap_or("") {
        "new_work" => format!("new {} '{}'", text("kind").replace('_', " "), text("key")),
        "waiting" => format!("waits at '{}'", text("key")),
        "completed" => match doc["output_unchanged"].as_bool() {
            Some(false) => "completes, another output".to_owned(),
            _ => "completes".to_owned(),
        },
        "failed" => format!("fails: {}", text("error")),
        "type_mismatch" => format!("type mismatch at '{}'", text("key")),
        "input_mismatch" => format!(
            "input is {}, code reads {}",
            text("stored"),
            text("expected")
        ),
        "panicked" => format!("panics: {}", text("message")),
        "timed_out" => format!("timed out after {} ms", doc["after_ms"]),
        other => other.to_owned(),
    }
}

/// The exit code of a check.
pub(crate) fn code(clean: bool) -> u8 {
    if clean {
        exit::SUCCESS
    } else {
        exit::CHECK_PROBLEMS
    }
}
