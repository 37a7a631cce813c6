//! Named leases on both stores: one holder at a time, a release hands over at once, an expired
//! lease is taken over, and a holder that lost it knows.

use std::time::Duration;

use salesdept_events::store::PostgresEventStore;
use salesdept_events::{Lease, Store, Upcasters};
use sqlx::PgPool;

async fn one_holder_at_a_time(store: Store) {
    let ttl = Duration::from_millis(600);
    let first = Lease::new(store.clone(), "department", ttl);
    let second = Lease::new(store.clone(), "department", ttl);
    let other = Lease::new(store.clone(), "another-lease", ttl);
    assert!(!first.surely_held());
    assert!(first.hold().await.unwrap(), "a free lease is taken");
    assert!(first.surely_held());
    assert!(!second.hold().await.unwrap(), "a held lease is not");
    assert!(!second.surely_held());
    assert!(
        other.hold().await.unwrap(),
        "leases are independent by name"
    );
    assert!(first.renew().await.unwrap(), "the holder renews");

    first.release().await.unwrap();
    assert!(!first.surely_held());
    assert!(
        second.hold().await.unwrap(),
        "a released lease is taken at once"
    );
    assert!(!first.hold().await.unwrap(), "and then it is the other's");

    // The holder stops renewing (a crash): the lease is taken over once it expired.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(
        !second.surely_held(),
        "the holder knows it may have lost it"
    );
    assert!(
        first.hold().await.unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !second.renew().await.unwrap(),
        "the old holder's renewal fails"
    );
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_leases_have_one_holder_at_a_time(pool: PgPool) {
    one_holder_at_a_time(Store::Postgres(PostgresEventStore::from_pool(
        pool,
        Upcasters::new(),
    )))
    .await;
}

#[tokio::test]
async fn sqlite_leases_have_one_holder_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, Upcasters::new()).await.unwrap();
    store.migrate().await.unwrap();
    one_holder_at_a_time(store).await;
}
