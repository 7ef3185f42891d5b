//! The code node's JavaScript sandbox: QuickJS (rquickjs) with a memory cap, a stack cap and an
//! interrupt handler that stops the script at its deadline or when the run is cancelled.
//!
//! A fresh runtime per execution holds only ECMAScript built-ins: no modules, timers, file,
//! network or process access. It blocks, so callers run it on a blocking thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Runtime, Value as JsValue};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ScriptLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub stack_bytes: usize,
    /// Largest result, as JSON bytes (the node output cap): a larger one is refused while
    /// it is still inside the script's heap, before it is copied out.
    pub result_bytes: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScriptError {
    #[error("the script ran longer than {0} (code_timeout)")]
    TimedOut(String),
    #[error("out of memory: the script exceeded its {0} memory limit (code_memory_bytes)")]
    OutOfMemory(String),
    #[error("canceled")]
    Canceled,
    #[error("main() returned a promise that never settled")]
    NeverSettled,
    #[error("{}", super::limits::node_output_too_large(*.0))]
    ResultTooLarge(usize),
    /// What the script threw, as the reference reports it.
    #[error("{0}")]
    Thrown(String),
}

/// Name of the global that carries the parameters into the sandbox.
const PARAMS_GLOBAL: &str = "__flowgram_params__";

/// Run `script`, call `main({params})`, await it if it is async, and return its JSON value
/// (`None` for `undefined`).
pub(crate) fn run_main(
    script: &str,
    params_json: &str,
    limits: ScriptLimits,
    cancel: Arc<AtomicBool>,
) -> Result<Option<Value>, ScriptError> {
    let runtime = Runtime::new().map_err(|e| ScriptError::Thrown(e.to_string()))?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(limits.stack_bytes);
    let deadline = Instant::now() + limits.timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    {
        let timed_out = timed_out.clone();
        let cancel = cancel.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            if cancel.load(Ordering::Relaxed) {
                return true;
            }
            if Instant::now() >= deadline {
                timed_out.store(true, Ordering::Relaxed);
                return true;
            }
            false
        })));
    }
    let context = Context::full(&runtime).map_err(|e| ScriptError::Thrown(e.to_string()))?;
    let result = context.with(|ctx| evaluate(&ctx, script, params_json, limits.result_bytes));

    let limit_error = || {
        if cancel.load(Ordering::Relaxed) {
            Some(ScriptError::Canceled)
        } else if timed_out.load(Ordering::Relaxed) {
            Some(ScriptError::TimedOut(super::limits::describe_duration(
                limits.timeout,
            )))
        } else {
            None
        }
    };
    match result {
        Ok(value) => Ok(value),
        Err(Failure::Thrown(message)) => Err(limit_error().unwrap_or(ScriptError::Thrown(message))),
        Err(Failure::OutOfMemory) => Err(ScriptError::OutOfMemory(super::limits::describe_bytes(
            limits.memory_bytes,
        ))),
        Err(Failure::NeverSettled) => Err(limit_error().unwrap_or(ScriptError::NeverSettled)),
        Err(Failure::TooLarge) => Err(ScriptError::ResultTooLarge(limits.result_bytes)),
    }
}

enum Failure {
    Thrown(String),
    OutOfMemory,
    NeverSettled,
    TooLarge,
}

fn evaluate(
    ctx: &Ctx<'_>,
    script: &str,
    params_json: &str,
    max_bytes: usize,
) -> Result<Option<Value>, Failure> {
    let params = ctx
        .json_parse(params_json)
        .catch(ctx)
        .map_err(|e| caught(ctx, e))?;
    ctx.globals()
        .set(PARAMS_GLOBAL, params)
        .catch(ctx)
        .map_err(|e| caught(ctx, e))?;
    // The same wrapper as the reference; the user's code keeps its own line numbers after line 1.
    let source = format!(
        "'use strict';\n{script}\n;\nif (typeof main !== 'function') {{\n  throw new Error('main function is required in the script');\n}}\nmain({{ params: globalThis.{PARAMS_GLOBAL} }});\n"
    );
    let value: JsValue = ctx.eval(source).catch(ctx).map_err(|e| caught(ctx, e))?;
    let value = match value.as_promise() {
        Some(promise) => match promise.finish::<JsValue>() {
            Err(rquickjs::Error::WouldBlock) => return Err(Failure::NeverSettled),
            other => other.catch(ctx).map_err(|e| caught(ctx, e))?,
        },
        None => value,
    };
    let json = ctx
        .json_stringify(value)
        .catch(ctx)
        .map_err(|e| caught(ctx, e))?;
    let Some(json) = json else {
        return Ok(None);
    };
    // Its length in UTF-16 units is at most its length in UTF-8 bytes: a result longer than
    // the cap in units is certainly too large.
    let length: Function = ctx
        .eval("(text) => text.length")
        .catch(ctx)
        .map_err(|e| caught(ctx, e))?;
    let units: f64 = length
        .call((json.clone(),))
        .catch(ctx)
        .map_err(|e| caught(ctx, e))?;
    if units > max_bytes as f64 {
        return Err(Failure::TooLarge);
    }
    let text = json
        .to_string()
        .map_err(|e| Failure::Thrown(e.to_string()))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Failure::Thrown(format!("the result is not JSON: {e}")))
}

/// What a caught error says, in the reference's `error.message` terms.
fn caught(_ctx: &Ctx<'_>, error: CaughtError<'_>) -> Failure {
    match error {
        CaughtError::Error(rquickjs::Error::Allocation) => Failure::OutOfMemory,
        CaughtError::Error(e) => Failure::Thrown(e.to_string()),
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            if message == "out of memory" {
                Failure::OutOfMemory
            } else {
                Failure::Thrown(message)
            }
        }
        CaughtError::Value(value) => {
            if value.is_null() {
                // QuickJS throws `null` when it cannot even allocate the error object.
                return Failure::OutOfMemory;
            }
            let text = value
                .as_string()
                .and_then(|s| s.to_string().ok())
                .or_else(|| {
                    value
                        .ctx()
                        .json_stringify(value.clone())
                        .ok()
                        .flatten()
                        .and_then(|s| s.to_string().ok())
                })
                .unwrap_or_else(|| "undefined".to_owned());
            Failure::Thrown(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> ScriptLimits {
        ScriptLimits {
            timeout: Duration::from_millis(300),
            memory_bytes: 16 * 1024 * 1024,
            stack_bytes: 512 * 1024,
            result_bytes: 1024 * 1024,
        }
    }

    fn run(script: &str) -> Result<Option<Value>, ScriptError> {
        run_main(
            script,
            r#"{"input":"hi"}"#,
            limits(),
            Arc::new(AtomicBool::new(false)),
        )
    }

    #[test]
    fn sync_and_async_main_return_their_value() {
        assert_eq!(
            run("function main({params}) { return {v: params.input + '!'}; }"),
            Ok(Some(json!({"v": "hi!"})))
        );
        assert_eq!(
            run("async function main({params}) { return [1, params.input]; }"),
            Ok(Some(json!([1, "hi"])))
        );
        assert_eq!(run("function main() { return undefined; }"), Ok(None));
        assert_eq!(run("const main = () => null;"), Ok(Some(Value::Null)));
    }

    #[test]
    fn a_missing_main_is_reported() {
        assert_eq!(
            run("const x = 1;"),
            Err(ScriptError::Thrown(
                "main function is required in the script".into()
            ))
        );
    }

    #[test]
    fn thrown_errors_keep_their_message() {
        assert_eq!(
            run("async function main() { throw new Error('async failure'); }"),
            Err(ScriptError::Thrown("async failure".into()))
        );
        assert_eq!(
            run("function main() { throw 'plain'; }"),
            Err(ScriptError::Thrown("plain".into()))
        );
        assert!(matches!(
            run("function main( {"),
            Err(ScriptError::Thrown(_))
        ));
    }

    #[test]
    fn an_infinite_loop_is_interrupted_at_the_deadline() {
        let started = Instant::now();
        let result = run("function main() { while (true) {} }");
        assert_eq!(result, Err(ScriptError::TimedOut("300ms".into())));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn the_interrupt_cannot_be_caught_by_the_script() {
        let result = run("function main() { for (;;) { try { while (true) {} } catch (e) {} } }");
        assert_eq!(result, Err(ScriptError::TimedOut("300ms".into())));
    }

    #[test]
    fn a_memory_bomb_fails_with_out_of_memory() {
        let result = run(
            "function main() { const a = []; for (;;) { a.push('x'.repeat(1 << 20) + a.length); } }",
        );
        assert_eq!(result, Err(ScriptError::OutOfMemory("16 MB".into())));
        let result = run("function main() { const a = []; for (;;) { a.push({ n: a.length }); } }");
        assert_eq!(result, Err(ScriptError::OutOfMemory("16 MB".into())));
    }

    #[test]
    fn deep_recursion_hits_the_stack_limit() {
        let result = run("function f(n) { return f(n + 1) + 1; } function main() { return f(0); }");
        assert!(
            matches!(result, Err(ScriptError::Thrown(ref m)) if m.contains("stack")),
            "{result:?}"
        );
    }

    #[test]
    fn a_cancel_flag_interrupts_a_running_script() {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let handle = std::thread::spawn(move || {
            run_main(
                "function main() { while (true) {} }",
                "{}",
                ScriptLimits {
                    timeout: Duration::from_secs(60),
                    ..limits()
                },
                flag,
            )
        });
        std::thread::sleep(Duration::from_millis(50));
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(handle.join().unwrap(), Err(ScriptError::Canceled));
    }

    #[test]
    fn host_capabilities_are_absent() {
        assert_eq!(
            run(
                "function main() { return [typeof require, typeof fetch, typeof process, typeof setTimeout, typeof std, typeof os]; }"
            ),
            Ok(Some(json!([
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined",
                "undefined"
            ])))
        );
    }

    #[test]
    fn a_result_over_the_cap_is_refused_inside_the_script() {
        let result = run("function main() { return {s: 'x'.repeat(2 * 1024 * 1024)}; }");
        assert_eq!(result, Err(ScriptError::ResultTooLarge(1024 * 1024)));
        let under = run("function main() { return {s: 'x'.repeat(1000 * 1000)}; }").unwrap();
        assert_eq!(under.unwrap()["s"].as_str().unwrap().len(), 1000 * 1000);
    }

    #[test]
    fn a_promise_that_never_settles_is_reported() {
        assert_eq!(
            run("async function main() { await new Promise(() => {}); }"),
            Err(ScriptError::NeverSettled)
        );
    }
}
