//! Apps on both stores: a new app has a draft and nothing published; publish copies the
//! draft and cancel removes the copy; listing is newest first, filtered and paged; updates
//! keep unchanged fields; delete removes everything.

use serde_json::json;
use shared::{
    chat::MemoryMode,
    store::{
        Db,
        accounts::{self, NewAccount},
        apps::*,
    },
    with_pool,
};
use uuid::Uuid;

use super::on_both_stores;

/// Adds one account to the store; returns its id.
pub(super) async fn with_account(db: &Db) -> Uuid {
    let account = accounts::insert_account(
        db,
        NewAccount {
            id: Uuid::new_v4(),
            email: &format!("{}@example.com", Uuid::new_v4().simple()),
            name: "ada",
            password_hash: "$argon2id$stub",
            at_ms: 1,
        },
    )
    .await
    .unwrap();
    account.id
}

pub(super) async fn new_app(db: &Db, account_id: Uuid, name: &str, at_ms: i64) -> Uuid {
    let id = Uuid::new_v4();
    insert_app(
        db,
        NewApp {
            id,
            account_id,
            name,
            icon: "https://a.com/1.png",
            description: "",
            draft_id: Uuid::new_v4(),
            model_config: &json!({"dialog_round": 3}),
            memory_mode: MemoryMode::None,
            at_ms,
        },
    )
    .await
    .unwrap();
    id
}

async fn a_new_app_has_a_draft_and_nothing_published(db: &Db) {
    let account = with_account(db).await;
    let id = new_app(db, account, "Bot", 1_000).await;
    let detail = get_app(db, id).await.unwrap().unwrap();
    assert_eq!(detail.app.name, "Bot");
    assert_eq!(detail.app.debug_conversation_id, None);
    let draft = detail.drafted.clone().unwrap();
    assert_eq!(draft.status, ConfigStatus::Drafted);
    assert_eq!(draft.model_config.0, json!({"dialog_round": 3}));
    assert!(detail.published.is_none());
    assert_eq!(detail.effective_config(), Some(&draft));
    assert!(get_app(db, Uuid::new_v4()).await.unwrap().is_none());
}
on_both_stores!(a_new_app_has_a_draft_and_nothing_published);

async fn publish_copies_the_draft_and_cancel_removes_the_copy(db: &Db) {
    let account = with_account(db).await;
    let id = new_app(db, account, "Bot", 1_000).await;
    assert!(!cancel_publish(db, id, 2_000).await.unwrap());
    let published_id = Uuid::new_v4();
    assert!(publish_draft(db, id, published_id, 2_000).await.unwrap());
    save_draft_config(
        db,
        id,
        Uuid::new_v4(),
        &json!({"dialog_round": 9}),
        "long_term_memory",
        3_000,
    )
    .await
    .unwrap();
    let detail = get_app(db, id).await.unwrap().unwrap();
    let published = detail.published.unwrap();
    assert_eq!(
        (published.id, published.status.as_str()),
        (published_id, "published")
    );
    assert_eq!(
        published.model_config.0,
        json!({"dialog_round": 3}),
        "the copy keeps the old draft"
    );
    let draft = detail.drafted.unwrap();
    assert_eq!(draft.model_config.0, json!({"dialog_round": 9}));
    assert_eq!(
        (draft.memory_mode.as_str(), draft.updated_at),
        ("long_term_memory", 3_000)
    );
    assert_eq!(detail.app.updated_at, 3_000);

    // Publishing again updates the same published row.
    assert!(publish_draft(db, id, Uuid::new_v4(), 4_000).await.unwrap());
    let published = get_app(db, id).await.unwrap().unwrap().published.unwrap();
    assert_eq!(published.id, published_id);
    assert_eq!(published.model_config.0, json!({"dialog_round": 9}));

    assert!(cancel_publish(db, id, 5_000).await.unwrap());
    let detail = get_app(db, id).await.unwrap().unwrap();
    assert!(detail.published.is_none() && detail.drafted.is_some());
}
on_both_stores!(publish_copies_the_draft_and_cancel_removes_the_copy);

async fn listing_is_newest_first_filtered_by_name_and_paged(db: &Db) {
    let account = with_account(db).await;
    for (i, name) in ["Alpha bot", "beta", "ALPHA two", "50%_off", "gamma"]
        .iter()
        .enumerate()
    {
        new_app(db, account, name, 1_000 + i as i64).await;
    }
    let (items, total) = list_apps(db, account, None, 2, 0).await.unwrap();
    assert_eq!(total, 5);
    let names: Vec<_> = items.iter().map(|i| i.app.name.as_str()).collect();
    assert_eq!(names, ["gamma", "50%_off"]);
    assert!(items[0].drafted_app_config_id.is_some() && items[0].published_app_config_id.is_none());
    let (items, total) = list_apps(db, account, Some("alpha"), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    let names: Vec<_> = items.iter().map(|i| i.app.name.as_str()).collect();
    assert_eq!(names, ["ALPHA two", "Alpha bot"]);
    let (_, total) = list_apps(db, account, Some("%"), 10, 0).await.unwrap();
    assert_eq!(
        total, 1,
        "a wildcard in the search word matches itself only"
    );
    let (_, total) = list_apps(db, account, Some("_"), 10, 0).await.unwrap();
    assert_eq!(total, 1);
    let (items, total) = list_apps(db, Uuid::new_v4(), None, 10, 0).await.unwrap();
    assert_eq!((items.len(), total), (0, 0));
}
on_both_stores!(listing_is_newest_first_filtered_by_name_and_paged);

async fn updates_keep_unchanged_fields_and_delete_removes_everything(db: &Db) {
    let account = with_account(db).await;
    let id = new_app(db, account, "Bot", 1_000).await;
    let changes = AppChanges {
        description: Some("new"),
        ..AppChanges::default()
    };
    assert!(update_app(db, id, changes, 2_000).await.unwrap());
    let app = get_app(db, id).await.unwrap().unwrap().app;
    assert_eq!(
        (app.name.as_str(), app.description.as_str(), app.updated_at),
        ("Bot", "new", 2_000)
    );
    assert!(
        !update_app(db, Uuid::new_v4(), AppChanges::default(), 1)
            .await
            .unwrap()
    );

    publish_draft(db, id, Uuid::new_v4(), 3_000).await.unwrap();
    assert!(delete_app(db, id).await.unwrap());
    assert!(get_app(db, id).await.unwrap().is_none());
    let (configs,): (i64,) =
        with_pool!(db, pool => sqlx::query_as("SELECT COUNT(*) FROM app_configs")
        .fetch_one(pool).await)
        .unwrap();
    assert_eq!(configs, 0);
    assert!(!delete_app(db, id).await.unwrap());
}
on_both_stores!(updates_keep_unchanged_fields_and_delete_removes_everything);
