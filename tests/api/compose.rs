//! No Docker engine runs here, so the deployment file is checked by reading it: the four
//! services, how each is built or pulled, the settings they pass (the same names the binaries
//! read) and their health checks.

use std::collections::BTreeSet;

use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    let mut value: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("docker-compose.yml"))
            .expect("valid YAML");
    // Resolve `<<: *anchor` merge keys as Compose does.
    value.apply_merge().expect("valid merge keys");
    value
}

fn env_names(service: &Value) -> BTreeSet<String> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        Value::Sequence(s) => s
            .iter()
            .filter_map(|e| e.as_str())
            .map(|e| e.split('=').next().unwrap_or(e).to_owned())
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn compose_defines_postgres_redis_api_and_a_scalable_worker() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for name in ["postgres", "redis", "api", "worker"] {
        assert!(services.contains_key(name), "service {name} missing");
        assert!(
            c["services"][name]["healthcheck"]["test"].is_sequence()
                || c["services"][name]["healthcheck"]["test"].is_string(),
            "service {name} has no health check"
        );
    }
    assert!(
        c["services"]["postgres"]["image"]
            .as_str()
            .unwrap()
            .starts_with("postgres")
    );
    assert!(
        c["services"]["redis"]["image"]
            .as_str()
            .unwrap()
            .starts_with("redis")
    );
    for name in ["api", "worker"] {
        assert!(
            c["services"][name]["build"].is_mapping() || c["services"][name]["build"].is_string(),
            "{name} is built from the Dockerfile"
        );
    }
    // `--scale worker=N` needs a worker without a fixed container name or host port.
    assert!(c["services"]["worker"]["container_name"].is_null());
    assert!(c["services"]["worker"]["ports"].is_null());
    assert!(c["services"]["api"]["ports"].is_sequence());
}

#[test]
fn compose_passes_only_settings_the_binaries_read() {
    let c = compose();
    let known: BTreeSet<String> = shared::config::Config::env_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for name in ["api", "worker"] {
        let names = env_names(&c["services"][name]);
        for required in ["DATABASE_URL", "REDIS_URL", "JWT_SECRET"] {
            assert!(names.contains(required), "{name} does not set {required}");
        }
        for n in &names {
            assert!(
                known.contains(n)
                    || n == "RUST_LOG"
                    || shared::telemetry::ENDPOINT_VARIABLES.contains(&n.as_str()),
                "{name} sets {n}, which no binary reads"
            );
        }
    }
    let api = env_names(&c["services"]["api"]);
    assert!(
        api.contains("LLMOPS_LISTEN"),
        "the api must listen on 0.0.0.0 in a container"
    );
}

#[test]
fn the_dockerfile_builds_both_binaries_in_stages() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile");
    let d = std::fs::read_to_string(path).expect("Dockerfile");
    assert!(d.matches("FROM ").count() >= 2, "multi-stage");
    assert!(d.contains("llmops-api") && d.contains("llmops-worker"));
}
