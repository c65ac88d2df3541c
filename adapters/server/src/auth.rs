//! Tokens and who is calling: HS256 access tokens (15 minutes), stored
//! refresh tokens that rotate on use, the failed-login throttle, and the
//! warp filters that authenticate a request and enforce a role.
//!
//! Sessions end at once: every access token carries the user's session
//! version ([`Claims::sv`]), checked on each request against the version
//! the store holds (cached for [`USER_CACHE_TTL`]), and bumped by logout,
//! a password change, disabling the account or changing its role
//! ([`end_sessions`]). Refresh tokens come in families, one per login
//! ([`Claims::fam`]): presenting a spent one again revokes its family and
//! ends the user's access tokens, since one of the two holders is a thief.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use mediadl::model::{RefreshToken, Role, User};
use serde::{Deserialize, Serialize};
use warp::{Filter, Rejection};

use crate::error::{ApiError, codes};
use crate::lockout::LoginThrottle;
use crate::state::AppState;

/// Lifetime of an access token (the spec's `expires_in: 900`).
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(900);
/// Lifetime of a refresh token.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which kind of token a JWT is; an access token is never accepted as a
/// refresh token and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Short-lived ([`ACCESS_TOKEN_TTL`]), sent as `Authorization: Bearer` on every call.
    Access,
    /// Long-lived ([`REFRESH_TOKEN_TTL`]), exchanged once for a new pair.
    Refresh,
}

/// The claims of both kinds of token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// Unique token id; refresh tokens are stored by it.
    pub jti: String,
    /// Access or refresh.
    pub typ: TokenKind,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The user's session version when the token was issued; the token is
    /// refused once the stored version has moved on.
    #[serde(default)]
    pub sv: u64,
    /// The refresh-token family (one per login) the token belongs to.
    #[serde(default)]
    pub fam: String,
}

/// What tokens are bound to besides their user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user's session version at issue.
    pub version: u64,
    /// The refresh-token family: a fresh one per login, kept by rotation.
    pub family: String,
}

impl Session {
    /// A new login's session: a new family under the user's current version.
    pub fn login(version: u64) -> Self {
        Self {
            version,
            family: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// An access token and the refresh token that goes with it.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// Sent as `Authorization: Bearer` for [`ACCESS_TOKEN_TTL`].
    pub access: String,
    /// Exchanged once for a new pair.
    pub refresh: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    /// The account, as stored when the request was authenticated.
    pub user: User,
}

impl AuthUser {
    /// The user's id.
    pub fn id(&self) -> i64 {
        self.user.id
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// 403 unless the user's role includes `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.user.role.allows(required) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role; you are {}",
                required.as_str(),
                self.user.role.as_str()
            )))
        }
    }
}

/// Signs and checks tokens, and throttles failed logins.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    throttle: LoginThrottle,
    users: Mutex<HashMap<i64, CachedUser>>,
    verified: Mutex<HashMap<String, Claims>>,
}

/// A user and their session version as the store last reported them, for
/// [`USER_CACHE_TTL`].
#[derive(Debug, Clone)]
struct CachedUser {
    user: User,
    session_version: u64,
    fetched: Instant,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("throttle", &self.throttle)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The token's `exp` has passed (`TOKEN_EXPIRED`).
    Expired,
    /// Malformed, wrongly signed, of the other kind, or issued in the future (`TOKEN_INVALID`).
    Invalid(String),
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => {
                ApiError::unauthorized(codes::TOKEN_EXPIRED, "the token has expired")
            }
            TokenError::Invalid(reason) => {
                ApiError::unauthorized(codes::TOKEN_INVALID, format!("invalid token: {reason}"))
            }
        }
    }
}

/// A freshly issued token and its claims.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The encoded JWT.
    pub token: String,
    /// What it says.
    pub claims: Claims,
}

/// How long an authenticated request trusts the user record an earlier one
/// read, instead of reading it from the store again. Changes made through
/// this server ([`Auth::forget_user`]) apply at once; a change made by
/// another process (`mediadl user …`) applies within this time.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);
/// Cached users beyond which expired ones are pruned.
const MAX_CACHED_USERS: usize = 10_000;
/// Tokens whose signature was checked, remembered so the next request with
/// the same token skips the HMAC and the claims' JSON; beyond this many,
/// expired ones are pruned (and all of them if none had expired).
const MAX_VERIFIED_TOKENS: usize = 4096;

impl Auth {
    /// Signs and checks HS256 tokens with `secret`; slows failing clients
    /// down as `throttle` says.
    pub fn new(secret: &[u8], throttle: LoginThrottle) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            throttle,
            users: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The failed-login throttle (logins and `current_password` checks).
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// The user with `id` and their session version if read from the
    /// store less than [`USER_CACHE_TTL`] ago.
    fn cached_user(&self, id: i64) -> Option<(User, u64)> {
        let users = self.users.lock().expect("user cache lock");
        users
            .get(&id)
            .filter(|cached| cached.fetched.elapsed() < USER_CACHE_TTL)
            .map(|cached| (cached.user.clone(), cached.session_version))
    }

    fn remember_user(&self, user: &User, session_version: u64) {
        let now = Instant::now();
        let mut users = self.users.lock().expect("user cache lock");
        if users.len() >= MAX_CACHED_USERS {
            users.retain(|_, cached| now.duration_since(cached.fetched) < USER_CACHE_TTL);
        }
        users.insert(
            user.id,
            CachedUser {
                user: user.clone(),
                session_version,
                fetched: now,
            },
        );
    }

    /// Drops the cached record of user `id`: call after changing or
    /// deleting the user, so the next request reads the store.
    pub fn forget_user(&self, id: i64) {
        self.users.lock().expect("user cache lock").remove(&id);
    }

    /// Issues a token of `kind` for `user` in `session`.
    pub fn issue(
        &self,
        user: &User,
        session: &Session,
        kind: TokenKind,
        now: DateTime<Utc>,
    ) -> Result<Issued, ApiError> {
        let ttl = match kind {
            TokenKind::Access => ACCESS_TOKEN_TTL,
            TokenKind::Refresh => REFRESH_TOKEN_TTL,
        };
        let claims = Claims {
            sub: user.id.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: kind,
            role: user.role,
            sv: session.version,
            fam: session.family.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok(Issued { token, claims })
    }

    /// Checks signature, algorithm, `exp`, `iat`, `sub` and the kind.
    ///
    /// A token whose signature and claims were already found good (every
    /// API call sends the same access token for 15 minutes) is looked up
    /// instead of decoded again; only its expiry is checked anew.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let cached = self.verified_claims(token)?;
        let fresh = cached.is_none();
        let claims = match cached {
            Some(claims) => claims,
            None => {
                jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|err| match err.kind() {
                        ErrorKind::ExpiredSignature => TokenError::Expired,
                        _ => TokenError::Invalid(err.to_string()),
                    })?
                    .claims
            }
        };
        if claims.typ != kind {
            return Err(TokenError::Invalid(format!(
                "expected an {kind:?} token",
                kind = kind
            )));
        }
        if fresh {
            if claims.iat > Utc::now().timestamp() + 60 {
                return Err(TokenError::Invalid("issued in the future".into()));
            }
            self.remember_verified(token, &claims);
        }
        Ok(claims)
    }

    /// The claims of `token` if an earlier call verified it; `Expired` once
    /// its `exp` has passed (as `jsonwebtoken` decides it, with no leeway).
    fn verified_claims(&self, token: &str) -> Result<Option<Claims>, TokenError> {
        let mut verified = self.verified.lock().expect("verified tokens lock");
        let Some(claims) = verified.get(token) else {
            return Ok(None);
        };
        if claims.exp < jsonwebtoken::get_current_timestamp() as i64 {
            verified.remove(token);
            return Err(TokenError::Expired);
        }
        Ok(Some(claims.clone()))
    }

    fn remember_verified(&self, token: &str, claims: &Claims) {
        let mut verified = self.verified.lock().expect("verified tokens lock");
        if verified.len() >= MAX_VERIFIED_TOKENS {
            let now = jsonwebtoken::get_current_timestamp() as i64;
            verified.retain(|_, claims| claims.exp >= now);
            if verified.len() >= MAX_VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), claims.clone());
    }

    /// An access token and a stored refresh token for `user` in `session`.
    pub async fn issue_pair(
        &self,
        state: &AppState,
        user: &User,
        session: &Session,
    ) -> Result<TokenPair, ApiError> {
        let now = state.clock.now();
        let access = self.issue(user, session, TokenKind::Access, now)?;
        let refresh = self.issue(user, session, TokenKind::Refresh, now)?;
        state
            .store
            .insert_refresh_token(RefreshToken {
                id: refresh.claims.jti.clone(),
                user_id: user.id,
                family_id: session.family.clone(),
                issued_at: now,
                expires_at: DateTime::from_timestamp(refresh.claims.exp, 0).unwrap_or(now),
                used_at: None,
                revoked: false,
            })
            .await?;
        Ok(TokenPair {
            access: access.token,
            refresh: refresh.token,
        })
    }
}

/// The bearer token of an `Authorization` header, if any.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The user `id` and their session version, from the store.
///
/// # Errors
///
/// 401 `TOKEN_INVALID` when the account no longer exists; store failures.
pub async fn load_session_user(state: &AppState, id: i64) -> Result<(User, u64), ApiError> {
    let gone = || ApiError::unauthorized(codes::TOKEN_INVALID, "the token's user no longer exists");
    let user = match state.store.get_user(id).await {
        Ok(user) => user,
        Err(mediadl::StoreError::NotFound { .. }) => return Err(gone()),
        Err(err) => return Err(err.into()),
    };
    let version = match state.store.session_version(id).await {
        Ok(version) => version,
        Err(mediadl::StoreError::NotFound { .. }) => return Err(gone()),
        Err(err) => return Err(err.into()),
    };
    Ok((user, version))
}

/// Resolves an access token to its (enabled) user, refusing a token whose
/// session has ended.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.auth.verify(token, TokenKind::Access)?;
    let id: i64 = claims
        .sub
        .parse()
        .map_err(|_| TokenError::Invalid("bad subject".into()))?;
    // A token newer than the cached version was issued after a change made
    // elsewhere (another process): read the store again.
    let (user, version) = match state.auth.cached_user(id) {
        Some((user, version)) if claims.sv <= version => (user, version),
        _ => {
            let (user, version) = load_session_user(state, id).await?;
            state.auth.remember_user(&user, version);
            (user, version)
        }
    };
    if claims.sv != version {
        return Err(ApiError::unauthorized(
            codes::TOKEN_INVALID,
            "the session has ended (logout, password or account change); sign in again",
        ));
    }
    if user.disabled {
        return Err(ApiError::unauthorized(
            codes::ACCOUNT_DISABLED,
            "the account is disabled",
        ));
    }
    Ok(AuthUser { user })
}

/// Ends every session of user `user_id` at once: their refresh tokens are
/// revoked and access tokens issued so far are refused from the next
/// request on (on other servers sharing the database within
/// [`USER_CACHE_TTL`]).
///
/// # Errors
///
/// Store failures; `NOT_FOUND` when the account does not exist.
pub async fn end_sessions(state: &AppState, user_id: i64) -> Result<(), ApiError> {
    state.store.revoke_refresh_tokens(user_id).await?;
    state.store.bump_session_version(user_id).await?;
    state.auth.forget_user(user_id);
    Ok(())
}

/// Authenticates the request's bearer token (401 otherwise).
pub fn authenticated(
    state: AppState,
) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let state = state.clone();
        async move {
            let Some(token) = bearer_token(header.as_deref()) else {
                return Err(Rejection::from(ApiError::unauthorized(
                    codes::UNAUTHORIZED,
                    "authentication required: send Authorization: Bearer <access token>",
                )));
            };
            user_for_token(&state, token).await.map_err(Rejection::from)
        }
    })
}

/// Authenticates and requires `role` (401, then 403).
pub fn require(
    state: AppState,
    role: Role,
) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    authenticated(state).and_then(move |user: AuthUser| async move {
        user.require(role).map(|()| user).map_err(Rejection::from)
    })
}

/// Any signed-in user (viewer and up): may read.
pub fn reader(state: AppState) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    require(state, Role::Viewer)
}

/// `user` and up: may queue downloads.
pub fn writer(state: AppState) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    require(state, Role::User)
}

/// `admin` only: settings, users, deletions.
pub fn admin(state: AppState) -> impl Filter<Extract = (AuthUser,), Error = Rejection> + Clone {
    require(state, Role::Admin)
}

/// Never a 500 for a token: malformed input is a 401.
pub fn is_auth_error(err: &ApiError) -> bool {
    err.status == StatusCode::UNAUTHORIZED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            id: 7,
            username: "alice".into(),
            email: None,
            role,
            disabled: false,
            created_at: Utc::now(),
            last_login: None,
        }
    }

    #[test]
    fn tokens_verify_only_with_their_secret_kind_and_time() {
        let auth = Auth::new(b"secret-one", LoginThrottle::default());
        let issued = auth
            .issue(
                &user(Role::User),
                &Session::login(0),
                TokenKind::Access,
                Utc::now(),
            )
            .unwrap();
        let claims = auth.verify(&issued.token, TokenKind::Access).unwrap();
        assert_eq!(claims.sub, "7");
        assert!(matches!(
            auth.verify(&issued.token, TokenKind::Refresh),
            Err(TokenError::Invalid(_))
        ));
        let other = Auth::new(b"secret-two", LoginThrottle::default());
        assert!(matches!(
            other.verify(&issued.token, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
        let old = auth
            .issue(
                &user(Role::User),
                &Session::login(0),
                TokenKind::Access,
                Utc::now() - chrono::Duration::hours(1),
            )
            .unwrap();
        assert_eq!(
            auth.verify(&old.token, TokenKind::Access),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn remembered_tokens_keep_their_kind_and_expire() {
        let auth = Auth::new(b"secret-one", LoginThrottle::default());
        let issued = auth
            .issue(
                &user(Role::User),
                &Session::login(0),
                TokenKind::Access,
                Utc::now(),
            )
            .unwrap();
        let first = auth.verify(&issued.token, TokenKind::Access).unwrap();
        // The second check is answered from the remembered claims.
        assert_eq!(auth.verify(&issued.token, TokenKind::Access), Ok(first));
        assert!(matches!(
            auth.verify(&issued.token, TokenKind::Refresh),
            Err(TokenError::Invalid(_))
        ));
        // Remembered claims whose `exp` has passed: expired, and forgotten.
        let mut lapsed = issued.claims.clone();
        lapsed.exp = Utc::now().timestamp() - 1;
        auth.remember_verified("lapsed", &lapsed);
        assert_eq!(
            auth.verify("lapsed", TokenKind::Access),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            auth.verify("lapsed", TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
        // A token altered after its original was verified is checked afresh.
        let mut forged = issued.token.clone();
        forged.push('x');
        assert!(matches!(
            auth.verify(&forged, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn alg_none_tokens_are_refused() {
        use base64_url as b64;
        let auth = Auth::new(b"secret", LoginThrottle::default());
        let now = Utc::now().timestamp();
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(format!(
            r#"{{"sub":"1","exp":{},"iat":{now},"jti":"x","typ":"access","role":"admin"}}"#,
            now + 600
        )
        .as_bytes());
        let token = format!("{header}.{payload}.");
        assert!(matches!(
            auth.verify(&token, TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            auth.verify("garbage", TokenKind::Access),
            Err(TokenError::Invalid(_))
        ));
    }

    /// Unpadded URL-safe base64, enough for a test token.
    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn remembered_users_are_served_until_forgotten() {
        let auth = Auth::new(b"secret", LoginThrottle::default());
        assert_eq!(auth.cached_user(7), None);
        auth.remember_user(&user(Role::User), 3);
        assert_eq!(
            auth.cached_user(7).map(|(u, version)| (u.role, version)),
            Some((Role::User, 3))
        );
        assert_eq!(auth.cached_user(8), None);
        auth.forget_user(7);
        assert_eq!(auth.cached_user(7), None);
    }

    #[test]
    fn roles_are_ordered() {
        let viewer = AuthUser {
            user: user(Role::Viewer),
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(
            viewer.require(Role::User).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(None), None);
    }
}
