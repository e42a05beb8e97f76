//! Items the exported macros expand to. Not a public API.

pub use tokio;

/// Runs `future` to completion on a fresh multi-thread runtime with two
/// workers, the runtime every generated conformance test uses.
///
/// # Panics
///
/// If the runtime cannot be built (the test fails).
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
        .block_on(future)
}
