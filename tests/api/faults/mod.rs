//! The fault suite: the real binaries under the faults an operator meets (Redis or Postgres
//! restarted, workers killed, the queue unreachable at submit) and the bad values a client or
//! a workflow can produce (NUL bytes, huge search terms, huge outputs, private egress). Each
//! test asserts that every accepted run reaches a terminal state with exactly one result and
//! that bad input never gets a 5xx.

mod common;

mod bad_values;
mod egress;
mod outages;
mod output_caps;
