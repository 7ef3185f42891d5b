//! Debug messages on both stores: a message goes from pending to answered once; stop ends a
//! queued message and flags a running one; answers left streaming by a dead worker are failed;
//! the debug conversation is created once; history and listing skip deleted and unanswered
//! messages.

use serde_json::json;
use shared::{
    chat::MemoryMode,
    store::{Db, apps, interrupt::Interrupt, messages::*},
    with_pool,
};
use uuid::Uuid;

use super::{
    apps::{new_app, with_account},
    on_both_stores,
};

async fn conversation(db: &Db, account: Uuid) -> (Uuid, Uuid) {
    let app = new_app(db, account, "Bot", 1).await;
    let conv = ensure_debug_conversation(db, app, account, None, 1)
        .await
        .unwrap()
        .unwrap();
    (app, conv)
}

async fn ask(db: &Db, app: Uuid, conv: Uuid, account: Uuid, query: &str, at_ms: i64) -> Uuid {
    let id = Uuid::new_v4();
    insert_message(
        db,
        NewMessage {
            id,
            app_id: app,
            conversation_id: conv,
            account_id: account,
            query,
            model_config: &json!({"dialog_round": 3}),
            memory_mode: MemoryMode::None,
            stream_deltas: false,
            source: MessageSource::Debug,
            history: None,
            status: MessageStatus::Pending,
            error: "",
            at_ms,
        },
    )
    .await
    .unwrap();
    id
}

async fn answer(db: &Db, id: Uuid, text: &str) {
    let claimed = start_answer(db, id, 5).await.unwrap().unwrap();
    let outcome = AnswerOutcome {
        status: MessageStatus::Normal,
        answer: text,
        answer_tokens: 2,
        prompt_tokens: 5,
        response_latency_ms: 1.5,
        error: "",
    };
    assert!(
        finish_answer(db, id, claimed.attempt, outcome, 6)
            .await
            .unwrap()
    );
}

async fn answers_left_streaming_by_a_dead_worker_are_failed(db: &Db) {
    let account = with_account(db).await;
    let (app, conv) = conversation(db, account).await;
    let abandoned = ask(db, app, conv, account, "q1", 1).await;
    start_answer(db, abandoned, 10).await.unwrap().unwrap();
    let recent = ask(db, app, conv, account, "q2", 1).await;
    start_answer(db, recent, 1_000).await.unwrap().unwrap();
    let answered = ask(db, app, conv, account, "q3", 1).await;
    answer(db, answered, "a3").await;

    let failed = fail_stale_answers(db, 500, "interrupted", 2_000)
        .await
        .unwrap();
    assert_eq!(failed, 1);
    let mut states = Vec::new();
    for id in [abandoned, recent, answered] {
        let m = get_message(db, id).await.unwrap().unwrap();
        states.push((m.status, m.error));
    }
    assert_eq!(
        states,
        [
            (MessageStatus::Error, "interrupted".to_owned()),
            (MessageStatus::Streaming, String::new()),
            (MessageStatus::Normal, String::new()),
        ]
    );
    assert!(
        start_answer(db, abandoned, 3_000).await.unwrap().is_none(),
        "final"
    );
}
on_both_stores!(answers_left_streaming_by_a_dead_worker_are_failed);

async fn the_debug_conversation_is_created_once(db: &Db) {
    let account = with_account(db).await;
    let app = new_app(db, account, "Bot", 1).await;
    let first = ensure_debug_conversation(db, app, account, None, 1)
        .await
        .unwrap()
        .unwrap();
    // A second request that read the app before the first set it.
    let second = ensure_debug_conversation(db, app, account, None, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, second);
    let detail = apps::get_app(db, app).await.unwrap().unwrap();
    assert_eq!(detail.app.debug_conversation_id, Some(first));
    let (count,): (i64,) =
        with_pool!(db, pool => sqlx::query_as("SELECT COUNT(*) FROM conversations")
        .fetch_one(pool).await)
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(
        ensure_debug_conversation(db, Uuid::new_v4(), account, None, 3)
            .await
            .unwrap(),
        None
    );
    assert!(set_summary(db, first, "likes tea", 9).await.unwrap());
    let conv = get_conversation(db, first).await.unwrap().unwrap();
    assert_eq!(
        (conv.summary.as_str(), conv.summary_updated_at),
        ("likes tea", 9)
    );
    assert_eq!(get_summary(db, first).await.unwrap(), "likes tea");
}
on_both_stores!(the_debug_conversation_is_created_once);

async fn a_message_goes_from_pending_to_answered_once(db: &Db) {
    let account = with_account(db).await;
    let (app, conv) = conversation(db, account).await;
    let id = ask(db, app, conv, account, "hi", 10).await;
    let claimed = start_answer(db, id, 11).await.unwrap().unwrap();
    assert_eq!((claimed.attempt, claimed.query.as_str()), (1, "hi"));
    assert!(!claimed.stop_requested);
    // A redelivery takes over; the first attempt can no longer write.
    let again = start_answer(db, id, 12).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    let outcome = |status| AnswerOutcome {
        status,
        answer: "hello",
        answer_tokens: 1,
        prompt_tokens: 6,
        response_latency_ms: 3.25,
        error: "",
    };
    assert!(
        !finish_answer(db, id, 1, outcome(MessageStatus::Normal), 13)
            .await
            .unwrap()
    );
    assert!(
        finish_answer(db, id, 2, outcome(MessageStatus::Normal), 13)
            .await
            .unwrap()
    );
    assert!(
        start_answer(db, id, 14).await.unwrap().is_none(),
        "final: never claimed again"
    );
    let m = get_message(db, id).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.answer.as_str(), m.answer_tokens),
        ("normal", "hello", 1)
    );
    assert_eq!(m.response_latency, 3.25);
    assert_eq!((m.prompt_tokens, m.total_tokens), (6, 7), "usage is stored");
    assert_eq!(
        request_stop(db, id, 15).await.unwrap(),
        Interrupt::AlreadyFinished
    );
}
on_both_stores!(a_message_goes_from_pending_to_answered_once);

async fn stop_ends_a_queued_message_and_flags_a_running_one(db: &Db) {
    let account = with_account(db).await;
    let (app, conv) = conversation(db, account).await;
    let queued = ask(db, app, conv, account, "a", 10).await;
    assert_eq!(
        request_stop(db, queued, 11).await.unwrap(),
        Interrupt::EndedWhileQueued
    );
    assert!(start_answer(db, queued, 12).await.unwrap().is_none());
    assert_eq!(
        get_message(db, queued).await.unwrap().unwrap().status,
        MessageStatus::Stopped
    );

    let running = ask(db, app, conv, account, "b", 10).await;
    start_answer(db, running, 11).await.unwrap().unwrap();
    assert!(!stop_requested(db, running).await.unwrap());
    assert_eq!(
        request_stop(db, running, 12).await.unwrap(),
        Interrupt::Requested
    );
    assert!(stop_requested(db, running).await.unwrap());
    assert_eq!(
        request_stop(db, Uuid::new_v4(), 12).await.unwrap(),
        Interrupt::Unknown
    );

    let failed = ask(db, app, conv, account, "c", 10).await;
    assert!(fail_pending(db, failed, "no provider", 11).await.unwrap());
    let m = get_message(db, failed).await.unwrap().unwrap();
    assert_eq!(
        (m.status.as_str(), m.error.as_str()),
        ("error", "no provider")
    );
    assert!(!fail_pending(db, failed, "again", 12).await.unwrap());
}
on_both_stores!(stop_ends_a_queued_message_and_flags_a_running_one);

async fn history_and_listing_skip_deleted_and_unanswered_messages(db: &Db) {
    let account = with_account(db).await;
    let (app, conv) = conversation(db, account).await;
    let mut ids = Vec::new();
    for i in 1..=4 {
        let id = ask(db, app, conv, account, &format!("q{i}"), 100 + i).await;
        answer(db, id, &format!("a{i}")).await;
        ids.push(id);
    }
    let unanswered = ask(db, app, conv, account, "q5", 105).await;
    let current = ask(db, app, conv, account, "q6", 106).await;

    let rounds = recent_rounds(db, conv, current, 106, 2).await.unwrap();
    let queries: Vec<_> = rounds.iter().map(|r| r.query.as_str()).collect();
    assert_eq!(queries, ["q3", "q4"]);
    assert_eq!(rounds[1].answer, "a4");
    assert!(
        recent_rounds(db, conv, current, 106, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting round 4 brings round 2 into the window; deleting twice is refused.
    assert!(soft_delete_message(db, conv, ids[3], 200).await.unwrap());
    assert!(!soft_delete_message(db, conv, ids[3], 201).await.unwrap());
    assert!(
        !soft_delete_message(db, Uuid::new_v4(), ids[2], 201)
            .await
            .unwrap()
    );
    let rounds = recent_rounds(db, conv, current, 106, 2).await.unwrap();
    let queries: Vec<_> = rounds.iter().map(|r| r.query.as_str()).collect();
    assert_eq!(queries, ["q2", "q3"]);

    let (page, total) = list_messages(db, conv, 2, 0).await.unwrap();
    assert_eq!(total, 5, "every message but the deleted one");
    let ids_seen: Vec<_> = page.iter().map(|m| m.id).collect();
    assert_eq!(ids_seen, [current, unanswered]);
    let (page, _) = list_messages(db, conv, 2, 4).await.unwrap();
    assert_eq!(page[0].query, "q1");
    assert!(
        get_message(db, ids[3])
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );
}
on_both_stores!(history_and_listing_skip_deleted_and_unanswered_messages);
