//! Accounts on both stores: found by email and by id; a second account with the same email
//! is `EmailTaken`; the last login is recorded.

use shared::store::{Db, accounts::*};
use uuid::Uuid;

use super::on_both_stores;

fn new_account(email: &str) -> NewAccount<'_> {
    NewAccount {
        id: Uuid::new_v4(),
        email,
        name: "ada",
        password_hash: "$argon2id$stub",
        at_ms: 1_700_000_000_123,
    }
}

async fn an_inserted_account_is_found_by_email_and_by_id(db: &Db) {
    let account = insert_account(db, new_account("ada@example.com"))
        .await
        .unwrap();
    assert_eq!(account.avatar, "");
    assert_eq!(account.last_login_at, None);
    assert_eq!(account.created_at, 1_700_000_000_123);

    let by_email = find_account_by_email(db, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.id, account.id);
    let by_id = get_account(db, account.id).await.unwrap().unwrap();
    assert_eq!(by_id.email, "ada@example.com");
    assert!(get_account(db, Uuid::new_v4()).await.unwrap().is_none());
    assert!(
        find_account_by_email(db, "bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
}
on_both_stores!(an_inserted_account_is_found_by_email_and_by_id);

async fn a_second_account_with_the_same_email_is_email_taken(db: &Db) {
    insert_account(db, new_account("ada@example.com"))
        .await
        .unwrap();
    let err = insert_account(db, new_account("ada@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, InsertAccountError::EmailTaken), "{err:?}");
}
on_both_stores!(a_second_account_with_the_same_email_is_email_taken);

async fn touching_the_last_login_records_its_time(db: &Db) {
    let account = insert_account(db, new_account("ada@example.com"))
        .await
        .unwrap();
    touch_last_login(db, account.id, 1_800_000_000_000)
        .await
        .unwrap();
    let account = get_account(db, account.id).await.unwrap().unwrap();
    assert_eq!(account.last_login_at, Some(1_800_000_000_000));
    assert_eq!(account.updated_at, 1_800_000_000_000);
}
on_both_stores!(touching_the_last_login_records_its_time);
