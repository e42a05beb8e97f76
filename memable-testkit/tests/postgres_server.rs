//! The shared PostgreSQL test server starts, serves fresh databases and
//! answers queries (feature `postgres`).
#![cfg(feature = "postgres")]

use memable_testkit::postgres::TestServer;

#[test]
fn the_shared_server_starts_and_serves_fresh_databases() {
    let server = TestServer::shared();
    let first = server.database();
    let second = server.database();
    assert_ne!(first, second);
    let name = first.rsplit('/').next().unwrap();
    let answer = server
        .psql(
            name,
            "CREATE TABLE t (x int); INSERT INTO t VALUES (41); SELECT x + 1 FROM t",
        )
        .unwrap();
    assert_eq!(answer.trim(), "42");
    // The second database does not see the first one's table.
    let other = second.rsplit('/').next().unwrap();
    assert!(server.psql(other, "SELECT x FROM t").is_err());
}
