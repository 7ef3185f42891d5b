-- Every read of a conversation's messages (the page, the history of the last rounds, the
-- service API's list) asks for them newest first by (created_at, id). The old index had no
-- `id`, so the planner read every message of the conversation and sorted them: the history
-- read of a chat grew with the conversation (4 ms per chat at 4,000 messages, most of the
-- database's CPU under 200 concurrent chats). This one answers in index order and stops at
-- the limit.
CREATE INDEX messages_conversation_order_idx ON messages (conversation_id, created_at, id);
DROP INDEX messages_conversation_created_idx;
