//! The exported macros. The list of cases lives here, once, inside
//! `conformance_tests!`.

/// Expands into one `#[test]` per conformance case, each calling
/// `memable_testkit::cases::<family>::<case>(&factory)` with a fresh
/// `factory` built from the given expression.
///
/// Generated tests run on a multi-thread tokio runtime with two workers that
/// the testkit builds itself, so the calling crate needs only
/// `memable-testkit` as a dev-dependency.
///
/// # Examples
///
/// ```
/// // tests/conformance.rs of a backend crate:
/// memable_testkit::conformance_tests!(memable_testkit::MemoryFactory);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__conformance_emit! { ($factory)
            // The one list of conformance cases, by family: a case added
            // here reaches every backend.
            start: [
                start_writes_running_metadata_and_input,
                start_existing_is_reported_never_overwrites,
                start_existing_finished_instance_is_reported,
                start_existing_cancelled_instance_is_reported,
                start_same_id_in_two_workflows_is_two_instances,
                missing_instance_reads_are_empty,
            ],
        }
    };
}

/// Emits the tests for `conformance_tests!` (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_emit {
    (($factory:expr) $($family:ident : [$($case:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[test]
            fn $case() {
                let factory = $factory;
                $crate::__private::block_on(async move {
                    $crate::cases::$family::$case(&factory).await;
                });
            }
        )*)*
    };
}
