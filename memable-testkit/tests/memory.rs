//! The whole conformance suite against the in-memory reference store.

memable_testkit::conformance_tests!(memable_testkit::MemoryFactory);
