//! Accounts: register and password login (spec `llmops-api.md`, Accounts).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::{
    auth::{
        credentials::{AccountName, Email, NewPassword},
        password,
    },
    store::{
        self,
        accounts::{self, InsertAccountError, NewAccount},
    },
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    envelope::{Envelope, ErrorEnvelope},
    error::{ApiError, ApiResult, FieldErrors},
    extract::{ApiJson, ClientAddr},
    state::AppState,
};

/// The one answer for an unknown email and for a wrong password.
pub const BAD_CREDENTIALS: &str = "the email or the password is incorrect";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(password_login))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An email address; stored trimmed and lower-cased.
    #[schema(required = true, example = "ada@example.com")]
    pub email: Option<String>,
    /// 8–64 characters with at least one letter and one digit.
    #[schema(required = true, example = "correct-horse-7")]
    pub password: Option<String>,
    /// Display name, 1–30 characters; default: the part of the email before `@`.
    pub name: Option<String>,
}

/// A registration that passed every rule.
struct Registration {
    email: Email,
    password: NewPassword,
    name: AccountName,
}

impl TryFrom<RegisterRequest> for Registration {
    type Error = FieldErrors;

    fn try_from(body: RegisterRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = errors.check(
            "email",
            Email::parse(body.email.as_deref().unwrap_or_default()),
        );
        let password = errors.check(
            "password",
            NewPassword::parse(body.password.as_deref().unwrap_or_default()),
        );
        let name = match body.name.as_deref() {
            Some(raw) => errors.check("name", AccountName::parse(raw)),
            None => email.as_ref().map(AccountName::from_email),
        };
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) if errors.is_empty() => Ok(Self {
                email,
                password,
                name,
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredAccount {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

fn email_taken() -> ApiError {
    ApiError::invalid("email", "email is already registered")
}

/// Creates an account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "the account was created", body = Envelope<RegisteredAccount>),
        (status = 400, description = "the body is not JSON", body = ErrorEnvelope),
        (status = 422, description = "a field breaks a rule, or the email is taken", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<RegisteredAccount> {
    let registration = Registration::try_from(body).map_err(ApiError::Validation)?;
    // Saves the hashing work for the common case; the unique key decides races.
    if accounts::find_account_by_email(&state.db, registration.email.as_str())
        .await?
        .is_some()
    {
        return Err(email_taken());
    }
    let password_hash = password::hash_blocking(registration.password.into_inner()).await?;
    let account = accounts::insert_account(
        &state.db,
        NewAccount {
            id: Uuid::new_v4(),
            email: registration.email.as_str(),
            name: registration.name.as_str(),
            password_hash: &password_hash,
            at_ms: store::now_ms(),
        },
    )
    .await
    .map_err(|e| match e {
        InsertAccountError::EmailTaken => email_taken(),
        InsertAccountError::Store(e) => e.into(),
    })?;
    tracing::info!(account_id = %account.id, "account registered");
    Ok(Envelope::ok(RegisteredAccount {
        id: account.id,
        email: account.email,
        name: account.name,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordLoginRequest {
    #[schema(required = true, example = "ada@example.com")]
    pub email: Option<String>,
    #[schema(required = true, example = "correct-horse-7")]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    /// A JWT for `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// When the token expires, Unix seconds.
    pub expire_at: u64,
}

/// Exchanges an email and a password for an access token. Attempts are limited per email and
/// per client address (`LLMOPS_LOGIN_RATE_LIMIT` a minute).
#[utoipa::path(post, path = "/api/auth/password-login", tag = "auth",
    request_body = PasswordLoginRequest,
    responses(
        (status = 200, description = "signed in", body = Envelope<AccessToken>),
        (status = 400, description = "`fail`: the email or the password is incorrect; or the body is not JSON", body = ErrorEnvelope),
        (status = 422, description = "a field is missing or malformed", body = ErrorEnvelope),
        (status = 429, description = "`fail`: too many attempts for this email or from this address", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn password_login(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    ApiJson(body): ApiJson<PasswordLoginRequest>,
) -> ApiResult<AccessToken> {
    let mut errors = FieldErrors::new();
    let email = errors.check(
        "email",
        Email::parse(body.email.as_deref().unwrap_or_default()),
    );
    let password = body.password.filter(|p| !p.is_empty());
    if password.is_none() {
        errors.add("password", "password is required");
    }
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(errors));
    };

    let mut keys = vec![format!("email:{email}")];
    if let Some(ip) = ip {
        keys.push(format!("ip:{ip}"));
    }
    state.login_limiter.check(&keys).map_err(|wait| {
        tracing::warn!(%email, ?ip, "login rate limit reached");
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }
    })?;

    let account = accounts::find_account_by_email(&state.db, email.as_str()).await?;
    let matches = match &account {
        Some(account) => password::verify_blocking(password, account.password_hash.clone()).await?,
        None => password::verify_nothing_blocking(password).await?,
    };
    let Some(account) = account.filter(|_| matches) else {
        return Err(ApiError::fail(BAD_CREDENTIALS));
    };

    let token = state
        .jwt
        .issue(account.id)
        .map_err(|e| ApiError::Internal(e.into()))?;
    accounts::touch_last_login(&state.db, account.id, store::now_ms()).await?;
    tracing::info!(account_id = %account.id, "signed in");
    Ok(Envelope::ok(AccessToken {
        access_token: token.token,
        expire_at: token.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(email: Option<&str>, password: Option<&str>, name: Option<&str>) -> RegisterRequest {
        RegisterRequest {
            email: email.map(Into::into),
            password: password.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn a_good_registration_is_normalised_and_named_after_the_email() {
        let r = Registration::try_from(body(Some(" Ada@Example.com "), Some("abcdefg1"), None))
            .unwrap();
        assert_eq!(r.email.as_str(), "ada@example.com");
        assert_eq!(r.name.as_str(), "ada");
        let r = Registration::try_from(body(
            Some("ada@example.com"),
            Some("abcdefg1"),
            Some(" Ada L. "),
        ))
        .unwrap();
        assert_eq!(r.name.as_str(), "Ada L.");
    }

    #[test]
    fn every_broken_field_is_reported_at_once() {
        let errors = Registration::try_from(body(Some("nope"), Some("short"), Some("")))
            .err()
            .unwrap();
        assert_eq!(
            errors.get("email").unwrap(),
            ["email is not a valid address"]
        );
        assert!(errors.get("password").unwrap()[0].starts_with("password must be 8 to 64"));
        assert!(errors.get("name").unwrap()[0].starts_with("name"));
        let errors = Registration::try_from(body(None, None, None))
            .err()
            .unwrap();
        assert_eq!(errors.get("email").unwrap(), ["email is required"]);
        assert_eq!(errors.get("password").unwrap(), ["password is required"]);
        assert!(errors.get("name").is_none());
    }
}
