//! Accounts and authentication, black-box: register, password login and the account route in
//! both storage modes; the `{code, message, data}` envelope on every answer of this family;
//! forged tokens; validation messages per field; the login rate limit.

use std::net::IpAddr;

use crate::helpers::{Mode, Stack, StackOptions, assert_envelope, both_deployments};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// The secret the harness gives its stacks.
const JWT_SECRET: &str = "test-secret-0123456789abcdef";
const PASSWORD: &str = "correct-horse-7";

fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Reads an answer, checks it is an envelope, returns status and body.
async fn envelope(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    assert!(
        content_type.starts_with("application/json"),
        "{status} {content_type}: {text}"
    );
    assert_envelope(status, &body);
    (status, body)
}

async fn register(stack: &Stack, body: Value) -> (StatusCode, Value) {
    let r = stack
        .client
        .post(stack.url("/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    envelope(r).await
}

async fn login_from(
    client: &Client,
    stack: &Stack,
    email: &str,
    password: &str,
) -> (StatusCode, Value) {
    let r = client
        .post(stack.url("/api/auth/password-login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    envelope(r).await
}

async fn login(stack: &Stack, email: &str, password: &str) -> (StatusCode, Value) {
    login_from(&stack.client, stack, email, password).await
}

async fn account_with(stack: &Stack, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut req = stack.client.get(stack.url("/api/account"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    envelope(req.send().await.unwrap()).await
}

/// Registers a fresh account and signs in: (account id, access token).
async fn signed_in(stack: &Stack) -> (String, String) {
    let email = unique_email();
    let (status, body) = register(stack, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    let (status, login) = login(stack, &email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    (
        body["data"]["id"].as_str().unwrap().to_owned(),
        login["data"]["access_token"].as_str().unwrap().to_owned(),
    )
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

both_deployments! {
    async fn register_login_and_account_work_end_to_end(stack: Stack) {
        // Arrange
        let email = unique_email();
        let shouted = format!("  {}  ", email.to_uppercase());

        // Act: register with a messy email and no name
        let (status, registered) = register(&stack, json!({"email": shouted, "password": PASSWORD})).await;

        // Assert: normalised email, default name
        assert_eq!(status, 200, "{registered}");
        assert_eq!(registered["code"], "success");
        assert_eq!(registered["message"], "");
        let id = registered["data"]["id"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        assert_eq!(registered["data"]["email"], email);
        // The local part, cut to the 30 characters a name may have.
        let default_name: String = email.split('@').next().unwrap().chars().take(30).collect();
        assert_eq!(registered["data"]["name"], default_name);

        // The same email in other letters is taken.
        let (status, dup) = register(&stack, json!({"email": email.to_uppercase(), "password": PASSWORD})).await;
        assert_eq!(status, 422, "{dup}");
        assert_eq!(dup["code"], "validate_error");
        assert_eq!(dup["data"], json!({"email": ["email is already registered"]}));

        // A wrong password and an unknown email get the same answer.
        let (status, wrong) = login(&stack, &email, "wrong-password-1").await;
        assert_eq!(status, 400, "{wrong}");
        assert_eq!(wrong["code"], "fail");
        let (_, unknown) = login(&stack, &unique_email(), PASSWORD).await;
        assert_eq!(unknown, wrong);

        // Sign in (with the email in other letters)
        let (status, signed) = login(&stack, &email.to_uppercase(), PASSWORD).await;
        assert_eq!(status, 200, "{signed}");
        let token = signed["data"]["access_token"].as_str().unwrap();
        let expire_at = signed["data"]["expire_at"].as_u64().unwrap();
        assert!(expire_at.abs_diff(now() + 30 * 24 * 3600) < 60, "default lifetime is 30 days");
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["iss"], "llmops");
        assert_eq!(claims["exp"], expire_at);

        // The account
        let (status, account) = account_with(&stack, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{account}");
        let data = &account["data"];
        assert_eq!(data["id"], id.as_str());
        assert_eq!(data["email"], email);
        assert_eq!(data["avatar"], "");
        let last_login = data["last_login_at"].as_u64().unwrap();
        let created = data["created_at"].as_u64().unwrap();
        assert!(last_login.abs_diff(now()) < 60, "seconds, not milliseconds: {last_login}");
        assert!(created.abs_diff(now()) < 60 && created <= last_login, "{account}");
        let mut keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["avatar", "created_at", "email", "id", "last_login_at", "name"]);
    }
}

#[tokio::test]
async fn validation_messages_name_each_field_and_nothing_is_written() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let email = unique_email();

    // Every broken field at once, the first one as the message
    let (status, body) = register(
        &stack,
        json!({"email": "not-an-email", "password": "short", "name": " "}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["message"], "email is not a valid address");
    assert_eq!(
        body["data"]["email"],
        json!(["email is not a valid address"])
    );
    assert_eq!(
        body["data"]["password"],
        json!(["password must be 8 to 64 characters long"])
    );
    assert_eq!(body["data"]["name"], json!(["name must not be empty"]));

    let cases = [
        (
            json!({}),
            json!({"email": ["email is required"], "password": ["password is required"]}),
        ),
        (
            json!({"email": email, "password": "abcdefgh"}),
            json!({"password": ["password must contain at least one letter and one digit"]}),
        ),
        (
            json!({"email": email, "password": "12345678"}),
            json!({"password": ["password must contain at least one letter and one digit"]}),
        ),
        (
            json!({"email": email, "password": format!("a1{}", "x".repeat(63))}),
            json!({"password": ["password must be 8 to 64 characters long"]}),
        ),
        (
            json!({"email": email, "password": PASSWORD, "name": "n".repeat(31)}),
            json!({"name": ["name must be at most 30 characters long"]}),
        ),
        (
            json!({"email": email, "password": PASSWORD, "role": "admin"}),
            json!({"role": ["role is not an accepted field"]}),
        ),
        (
            json!({"email": email, "password": 12345678}),
            json!({"password": ["password must be a string (got integer `12345678`)"]}),
        ),
        (
            json!({"email": "a@b", "password": PASSWORD}),
            json!({"email": ["email is not a valid address"]}),
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = register(&stack, request.clone()).await;
        assert_eq!(status, 422, "{request}: {body}");
        assert_eq!(body["code"], "validate_error");
        assert_eq!(body["data"], expected, "{request}");
    }

    // Login validates its fields too
    let (status, body) = login(&stack, "nope", "").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["data"],
        json!({"email": ["email is not a valid address"], "password": ["password is required"]})
    );

    // None of the refused registrations created the account
    let (status, body) = login(&stack, &email, PASSWORD).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("fail")),
        "{body}"
    );
    let (status, body) = register(
        &stack,
        json!({"email": email, "password": PASSWORD, "name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["name"], "Ada");
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_unauthorized() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let (id, token) = signed_in(&stack).await;
    let (status, _) = account_with(&stack, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "the genuine token works");

    let t = now();
    let claims =
        |sub: &str, iss: &str, exp: u64| json!({"sub": sub, "iss": iss, "iat": t, "exp": exp});
    let good = claims(&id, "llmops", t + 3600);

    // Edited payload: another account's id (and a later expiry), the original signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let edited_claims = claims(&uuid::Uuid::new_v4().to_string(), "llmops", t + 999_999);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(edited_claims.to_string().as_bytes()),
        parts[2]
    );
    // Same claims, one character in the middle of the signature changed.
    let mut signature: Vec<char> = parts[2].chars().collect();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == 'A' { 'B' } else { 'A' };
    let bad_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        signature.into_iter().collect::<String>()
    );
    // alg: none, hand-built.
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = b64url(good.to_string().as_bytes());

    let forged: Vec<(&str, String)> = vec![
        (
            "wrong key",
            format!(
                "Bearer {}",
                sign(Algorithm::HS256, &good, "some-other-secret-0123456789")
            ),
        ),
        (
            "expired",
            format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    &claims(&id, "llmops", t - 3600),
                    JWT_SECRET
                )
            ),
        ),
        ("tampered payload", format!("Bearer {tampered}")),
        ("tampered signature", format!("Bearer {bad_sig}")),
        ("alg none", format!("Bearer {none_header}.{none_payload}.")),
        (
            "alg none without signature part",
            format!("Bearer {none_header}.{none_payload}"),
        ),
        (
            "another HMAC algorithm",
            format!("Bearer {}", sign(Algorithm::HS512, &good, JWT_SECRET)),
        ),
        (
            "another issuer",
            format!(
                "Bearer {}",
                sign(Algorithm::HS256, &claims(&id, "evil", t + 3600), JWT_SECRET)
            ),
        ),
        (
            "no sub",
            format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    &json!({"iss": "llmops", "exp": t + 3600}),
                    JWT_SECRET
                )
            ),
        ),
        (
            "no exp",
            format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    &json!({"sub": id, "iss": "llmops"}),
                    JWT_SECRET
                )
            ),
        ),
        (
            "unknown account",
            format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    &claims(&uuid::Uuid::new_v4().to_string(), "llmops", t + 3600),
                    JWT_SECRET
                )
            ),
        ),
        ("malformed", "Bearer not.a.jwt".to_owned()),
        ("garbage", "Bearer abc".to_owned()),
        ("empty bearer", "Bearer ".to_owned()),
        ("token without scheme", token.clone()),
        ("basic scheme", format!("Basic {token}")),
    ];
    for (kind, authorization) in &forged {
        let (status, body) = account_with(&stack, Some(authorization)).await;
        assert_eq!(status, 401, "{kind}: {body}");
        assert_eq!(body["code"], "unauthorized", "{kind}");
        assert_eq!(body["data"], json!({}), "{kind}");
    }
    let (status, body) = account_with(&stack, None).await;
    assert_eq!(status, 401, "missing: {body}");
    assert_eq!(body["code"], "unauthorized");

    let (_, expired) = account_with(&stack, Some(&forged[1].1)).await;
    assert!(
        expired["message"].as_str().unwrap().contains("expired"),
        "{expired}"
    );
    // The scheme is case-insensitive.
    let (status, _) = account_with(&stack, Some(&format!("bearer {token}"))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_token_lifetime_is_configurable() {
    let options = StackOptions::new(Mode::Embedded).env("LLMOPS_JWT_TTL_SECS", "120");
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let email = unique_email();
    register(&stack, json!({"email": email, "password": PASSWORD})).await;
    let (_, body) = login(&stack, &email, PASSWORD).await;
    let expire_at = body["data"]["expire_at"].as_u64().unwrap();
    assert!(expire_at.abs_diff(now() + 120) < 10, "{body}");
}

/// A client whose connections come from this loopback address (Linux routes all of 127/8 to lo).
fn client_from(addr: &str) -> Client {
    Client::builder()
        .local_address(addr.parse::<IpAddr>().ok())
        .build()
        .unwrap()
}

#[tokio::test]
async fn login_attempts_are_limited_per_email_and_per_address() {
    let options = StackOptions::new(Mode::Embedded).env("LLMOPS_LOGIN_RATE_LIMIT", "3");
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let (a, b, c) = (unique_email(), unique_email(), unique_email());
    for email in [&a, &b, &c] {
        let (status, _) = register(&stack, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(status, 200);
    }

    // Per email: three wrong guesses for `a` from one address, then even the right password
    // for `a` is refused, from any address.
    let first = client_from("127.0.0.2");
    for _ in 0..3 {
        let (status, body) = login_from(&first, &stack, &a, "wrong-guess-1").await;
        assert_eq!(status, 400, "{body}");
    }
    let r = first
        .post(stack.url("/api/auth/password-login"))
        .json(&json!({"email": a, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, body) = envelope(r).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "fail");
    assert_eq!(body["data"], json!({}));
    let second = client_from("127.0.0.3");
    let (status, _) = login_from(&second, &stack, &a, PASSWORD).await;
    assert_eq!(status, 429, "the email is limited whatever the address");

    // Per address: the second address was refused once (not counted), so it has three
    // attempts left over other emails; the fourth is refused even for a fresh email.
    let (status, _) = login_from(&second, &stack, &b, PASSWORD).await;
    assert_eq!(status, 200);
    let (status, _) = login_from(&second, &stack, &b, "wrong-guess-1").await;
    assert_eq!(status, 400);
    let (status, _) = login_from(&second, &stack, &unique_email(), PASSWORD).await;
    assert_eq!(status, 400);
    let (status, _) = login_from(&second, &stack, &c, PASSWORD).await;
    assert_eq!(status, 429, "the address is limited whatever the email");

    // A third address signs in to `c` normally.
    let (status, _) = login_from(&client_from("127.0.0.4"), &stack, &c, PASSWORD).await;
    assert_eq!(status, 200);
}

/// (method, path, content type, body, authorization, expected status)
type Probe<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    String,
    Option<&'a str>,
    u16,
);

#[tokio::test]
async fn every_answer_of_the_accounts_family_is_an_envelope() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let email = unique_email();
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let (_, token) = signed_in(&stack).await;
    let bearer = format!("Bearer {token}");

    let requests: Vec<Probe> = vec![
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            body.clone(),
            None,
            200,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            body.clone(),
            None,
            422,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            r#"{"email":"x"}"#.into(),
            None,
            422,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            r#"{"email":"#.into(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            "".into(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            "[1, 2]".into(),
            None,
            422,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("text/plain"),
            body.clone(),
            None,
            400,
        ),
        ("POST", "/api/auth/register", None, body.clone(), None, 400),
        (
            "POST",
            "/api/auth/register",
            Some("application/x-www-form-urlencoded"),
            "email=a&password=b".into(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/register",
            Some("application/json"),
            r#"{"email":"a@b.co","password":"abcdefg1","admin":true}"#.into(),
            None,
            422,
        ),
        ("GET", "/api/auth/register", None, String::new(), None, 405),
        (
            "POST",
            "/api/auth/password-login",
            Some("application/json"),
            body.clone(),
            None,
            200,
        ),
        (
            "POST",
            "/api/auth/password-login",
            Some("application/json"),
            json!({"email": email, "password": "nope-nope-1"}).to_string(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/password-login",
            Some("application/json"),
            "{}".into(),
            None,
            422,
        ),
        (
            "POST",
            "/api/auth/password-login",
            Some("application/json"),
            "not json".into(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/password-login",
            Some("text/html"),
            body.clone(),
            None,
            400,
        ),
        (
            "POST",
            "/api/auth/password-login",
            Some("application/json"),
            json!({"email": email, "password": PASSWORD, "remember": true}).to_string(),
            None,
            422,
        ),
        (
            "PUT",
            "/api/auth/password-login",
            Some("application/json"),
            body.clone(),
            None,
            405,
        ),
        (
            "GET",
            "/api/account",
            None,
            String::new(),
            Some(bearer.as_str()),
            200,
        ),
        ("GET", "/api/account", None, String::new(), None, 401),
        (
            "GET",
            "/api/account",
            None,
            String::new(),
            Some("Bearer nope"),
            401,
        ),
        (
            "DELETE",
            "/api/account",
            None,
            String::new(),
            Some(bearer.as_str()),
            405,
        ),
        (
            "GET",
            "/api/account/nope",
            None,
            String::new(),
            Some(bearer.as_str()),
            404,
        ),
        (
            "POST",
            "/api/auth/nope",
            Some("application/json"),
            "{}".into(),
            None,
            404,
        ),
        ("GET", "/api/auth", None, String::new(), None, 404),
    ];
    for (method, path, content_type, payload, authorization, expected) in requests {
        let mut req = stack
            .client
            .request(method.parse().unwrap(), stack.url(path))
            .body(payload.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(auth) = authorization {
            req = req.header("authorization", auth);
        }
        let (status, answer) = envelope(req.send().await.unwrap()).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {path} {content_type:?} {payload}: {answer}"
        );
        if answer["code"] == "validate_error" {
            let fields = answer["data"].as_object().unwrap();
            assert!(
                !fields.is_empty(),
                "validate_error lists its fields: {answer}"
            );
            let first = fields.values().next().unwrap()[0].as_str().unwrap();
            assert_eq!(answer["message"], first, "the first problem is the message");
        }
    }

    // The three routes are documented, the account one behind the bearer scheme.
    let spec: Value = stack.get_json("/api/openapi.json").await;
    assert!(spec["paths"]["/api/auth/register"]["post"].is_object());
    assert!(spec["paths"]["/api/auth/password-login"]["post"].is_object());
    assert_eq!(
        spec["paths"]["/api/account"]["get"]["security"],
        json!([{"bearer": []}])
    );
}
