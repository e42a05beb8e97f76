//! Items the exported macros expand to. Not a public API.

pub use tokio;

/// How long one conformance case may take before it counts as hung: the
/// slowest (the model case on PostgreSQL) takes about a minute on a loaded
/// machine.
pub const CASE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `future` to completion on a fresh multi-thread runtime with two
/// workers, the runtime every generated conformance test uses; a case still
/// running after [`CASE_DEADLINE`] fails instead of hanging the suite.
///
/// # Panics
///
/// If the runtime cannot be built or the case passes its deadline (the test
/// fails).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_testkit::__private::block_on(async { 1 + 1 }), 2);
/// ```
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime for a conformance case")
        .block_on(async {
            tokio::time::timeout(CASE_DEADLINE, future)
                .await
                .unwrap_or_else(|_| {
                    panic!("the case did not finish within {CASE_DEADLINE:?}: it hangs")
                })
        })
}
