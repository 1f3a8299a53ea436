//! Institutions, their credentials, and members (bank linking with challenges).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_domain::present_member;
use donkies_store::Backend;
use donkies_store::institutions::Institution;
use donkies_store::members::Member;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, IdPath, QueryParams, TextPath};
use super::input::{Check, Field, RequestBody, Valid};
use super::page::Page;
use crate::services::banking::Keyed;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_institutions))
        .routes(routes!(get_institution))
        .routes(routes!(suggest_institutions))
        .routes(routes!(credentials_by_code))
        .routes(routes!(credentials_by_code_alias))
        .routes(routes!(credentials_by_id))
        .routes(routes!(live_credentials_by_code))
        .routes(routes!(live_credentials_by_id))
        .routes(routes!(list_members, create_member))
        .routes(routes!(get_member, delete_member))
        .routes(routes!(resume_member))
        .routes(routes!(refresh_member))
}

pub const DATETIME: &str = "%Y-%m-%dT%H:%M:%S";

pub fn datetime(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(|t| t.format(DATETIME).to_string())
}

/// An institution.
#[derive(Serialize, ToSchema)]
pub struct InstitutionView {
    id: i64,
    code: String,
    name: String,
    url: Option<String>,
}

impl From<Institution> for InstitutionView {
    fn from(i: Institution) -> Self {
        InstitutionView { id: i.id, code: i.code, name: i.name, url: i.url }
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    search: Option<String>,
}

/// The institution catalog, optionally filtered by name.
#[utoipa::path(get, path = "/v1/institutions", tag = "banking", security(("token" = [])),
    params(("search" = Option<String>, Query, description = "substring of the name, any case")),
    responses((status = 200, body = [InstitutionView])))]
async fn list_institutions(
    State(state): State<AppState>,
    _auth: AuthUser,
    QueryParams(q): QueryParams<SearchQuery>,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let list = state.services.banking.list_institutions(q.search.as_deref(), 10_000).await?;
    Ok(page.respond(list.into_iter().map(InstitutionView::from).collect()))
}

/// One institution.
#[utoipa::path(get, path = "/v1/institutions/{id}", tag = "banking", security(("token" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = InstitutionView), (status = 404)))]
async fn get_institution(
    State(state): State<AppState>,
    _auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<axum::Json<InstitutionView>> {
    let inst = state.services.banking.institution(id).await?;
    Ok(axum::Json(inst.into()))
}

#[derive(Deserialize)]
struct SuggestQuery {
    value: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestion {
    id: i64,
    value: String,
}

/// Up to 10 institutions whose name contains `value`.
#[utoipa::path(get, path = "/v1/institutions_suggest", tag = "banking", security(("token" = [])),
    params(("value" = Option<String>, Query)), responses((status = 200, body = [Suggestion])))]
async fn suggest_institutions(
    State(state): State<AppState>,
    _auth: AuthUser,
    QueryParams(q): QueryParams<SuggestQuery>,
) -> ApiResult<axum::Json<Vec<Suggestion>>> {
    let Some(value) = q.value.filter(|v| !v.trim().is_empty()) else {
        return Ok(axum::Json(Vec::new()));
    };
    let list = state.services.banking.list_institutions(Some(value.trim()), 10).await?;
    Ok(axum::Json(list.into_iter().map(|i| Suggestion { id: i.id, value: i.name }).collect()))
}

/// A credential an institution asks for.
#[derive(Serialize, ToSchema)]
pub struct CredentialView {
    guid: String,
    institution: i64,
    field_name: String,
    label: String,
    #[serde(rename = "type")]
    kind: String,
    display_order: i64,
}

async fn credentials_view(
    state: &AppState,
    inst: crate::services::ServiceResult<Institution>,
    live: bool,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = inst?;
    let creds = state.services.banking.institution_credentials(&inst, live).await?;
    Ok(axum::Json(
        creds
            .into_iter()
            .map(|c| CredentialView {
                guid: c.guid,
                institution: inst.id,
                field_name: c.field_name,
                label: c.label,
                kind: c.kind,
                display_order: c.display_order,
            })
            .collect(),
    ))
}

/// Credentials of an institution by code, from the stored catalog.
#[utoipa::path(get, path = "/v1/credentials/{institution_code}", tag = "banking", security(("token" = [])),
    params(("institution_code" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404)))]
async fn credentials_by_code(
    State(state): State<AppState>,
    _auth: AuthUser,
    TextPath(code): TextPath,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = state.services.banking.institution_by_code(&code).await;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by code, from the stored catalog.
#[utoipa::path(get, path = "/v1/credentials/code/{code}", tag = "banking", security(("token" = [])),
    params(("code" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404)))]
async fn credentials_by_code_alias(
    State(state): State<AppState>,
    _auth: AuthUser,
    TextPath(code): TextPath,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = state.services.banking.institution_by_code(&code).await;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by id, from the stored catalog.
#[utoipa::path(get, path = "/v1/credentials/id/{institution_id}", tag = "banking", security(("token" = [])),
    params(("institution_id" = i64, Path)), responses((status = 200, body = [CredentialView]), (status = 404)))]
async fn credentials_by_id(
    State(state): State<AppState>,
    _auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = state.services.banking.institution(id).await;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by code, read from the aggregator now.
#[utoipa::path(get, path = "/v1/credentials/live/code/{code}", tag = "banking", security(("token" = [])),
    params(("code" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404), (status = 503)))]
async fn live_credentials_by_code(
    State(state): State<AppState>,
    _auth: AuthUser,
    TextPath(code): TextPath,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = state.services.banking.institution_by_code(&code).await;
    credentials_view(&state, inst, true).await
}

/// Credentials of an institution by id, read from the aggregator now.
#[utoipa::path(get, path = "/v1/credentials/live/id/{institution_id}", tag = "banking", security(("token" = [])),
    params(("institution_id" = i64, Path)), responses((status = 200, body = [CredentialView]), (status = 404), (status = 503)))]
async fn live_credentials_by_id(
    State(state): State<AppState>,
    _auth: AuthUser,
    IdPath(id): IdPath,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = state.services.banking.institution(id).await;
    credentials_view(&state, inst, true).await
}

/// `status_info` of a member.
#[derive(Serialize, ToSchema)]
pub struct StatusInfo {
    name: &'static str,
    message: &'static str,
    is_completed: bool,
    status: String,
}

/// A challenge the bank asks the user to answer.
#[derive(Serialize, ToSchema)]
pub struct ChallengeView {
    guid: String,
    field_name: Option<String>,
    label: String,
    #[serde(rename = "type")]
    kind: String,
    /// `[{"label", "value"}]` for choice challenges, `[]` otherwise.
    #[schema(value_type = Vec<Object>)]
    options: Value,
    /// The picture of an image challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    image_data: Option<String>,
}

/// A member: the user's login at one institution.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    id: i64,
    institution: InstitutionView,
    identifier: String,
    name: String,
    status: String,
    aggregated_at: Option<String>,
    successfully_aggregated_at: Option<String>,
    metadata: Option<String>,
    member_status: &'static str,
    status_info: StatusInfo,
    challenges: Vec<ChallengeView>,
}

pub async fn member_view(state: &AppState, m: Member) -> ApiResult<MemberView> {
    let presentation = present_member(&m.status, m.gave_up);
    let challenges = state
        .services
        .banking
        .member_challenges(&m)
        .await?
        .into_iter()
        .map(|c| {
            let options: Value = serde_json::from_str(&c.options).unwrap_or(Value::Array(Vec::new()));
            ChallengeView {
                guid: c.guid,
                field_name: c.field_name,
                label: c.label,
                kind: c.kind,
                options,
                image_data: c.image_data,
            }
        })
        .collect();
    Ok(MemberView {
        institution: m.institution().into(),
        status_info: StatusInfo {
            name: presentation.name,
            message: presentation.message,
            is_completed: presentation.is_completed,
            status: m.status.to_string(),
        },
        member_status: presentation.member_status,
        aggregated_at: datetime(m.aggregated_at),
        successfully_aggregated_at: datetime(m.successfully_aggregated_at),
        id: m.id,
        identifier: m.identifier,
        name: m.name,
        status: m.status.to_string(),
        metadata: m.metadata,
        challenges,
    })
}

/// The user's members.
#[utoipa::path(get, path = "/v1/members", tag = "banking", security(("token" = [])), responses((status = 200, body = [MemberView])))]
async fn list_members(
    State(state): State<AppState>,
    auth: AuthUser,
    page: Page,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let user_id = auth.user.id;
    let key = format!("members/{}", page.cache_key());
    state
        .kept(user_id, key, &headers, move |state| async move {
            let mut out = Vec::new();
            for m in state.services.banking.members(user_id).await? {
                out.push(member_view(&state, m).await?);
            }
            page.render(out)
        })
        .await
}

#[derive(Deserialize, ToSchema)]
pub struct CredentialInput {
    /// The credential's `field_name` (or give its `guid`).
    field_name: Option<String>,
    guid: Option<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    value: Field<String>,
}

impl KeyedItem for CredentialInput {
    fn into_parts(self) -> (Option<Keyed>, Field<String>) {
        (self.field_name.map(Keyed::Name).or(self.guid.map(Keyed::Guid)), self.value)
    }
}

/// An item of a list of answers keyed by name or by guid.
trait KeyedItem: serde::de::DeserializeOwned {
    fn into_parts(self) -> (Option<Keyed>, Field<String>);
}

#[derive(Default, Deserialize, ToSchema)]
pub struct CreateMemberRequest {
    #[schema(value_type = String, required = true)]
    #[serde(default)]
    institution_code: Field<String>,
    /// `{"field_name", "value"}` or `{"guid", "value"}` for every credential the institution asks for.
    #[schema(value_type = Vec<CredentialInput>, required = true)]
    #[serde(default)]
    credentials: Field<Vec<Value>>,
}

impl Check {
    /// A list of `{"<name key>" | "guid", "value"}` objects.
    fn keyed_values<T: KeyedItem>(
        &mut self,
        name: &str,
        field: Field<Vec<Value>>,
        keys: [&str; 2],
    ) -> Option<Vec<(Keyed, String)>> {
        let list = self.required(name, field)?;
        let mut out = Vec::new();
        for item in list {
            if !item.is_object() {
                self.error(name, "Each item must be an object.");
                return None;
            }
            let parts = serde_json::from_value::<T>(item).ok().map(T::into_parts);
            match parts {
                Some((Some(key), Field::Given(value))) => out.push((key, value)),
                _ => {
                    let message = format!("Each item needs \"{}\" or \"{}\", and \"value\".", keys[0], keys[1]);
                    self.error(name, message);
                    return None;
                }
            }
        }
        Some(out)
    }
}

impl RequestBody for CreateMemberRequest {
    type Parsed = (String, Vec<(Keyed, String)>);
    fn parse(self, c: &mut Check) -> Option<Self::Parsed> {
        let code = c.text("institution_code", self.institution_code);
        let given = c.keyed_values::<CredentialInput>("credentials", self.credentials, ["field_name", "guid"]);
        Some((code?.trim().to_owned(), given?))
    }
}

/// Link a bank: the member is created at the aggregator before the answer; polling follows.
#[utoipa::path(post, path = "/v1/members", tag = "banking", security(("token" = [])), request_body = CreateMemberRequest,
    responses((status = 201, body = MemberView), (status = 400, description = "unknown institution or credential fields"),
        (status = 503, description = "the aggregator is unreachable")))]
async fn create_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Valid((code, given)): Valid<CreateMemberRequest>,
) -> ApiResult<(StatusCode, axum::Json<MemberView>)> {
    let member = state.services.banking.create_member(auth.user.id, &code, given).await?;
    Ok((StatusCode::CREATED, axum::Json(member_view(&state, member).await?)))
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<String>,
}

/// A member; with `?wait=N` the answer comes as soon as its status changes or N seconds pass.
#[utoipa::path(get, path = "/v1/members/{identifier}", tag = "banking", security(("token" = [])),
    params(("identifier" = String, Path), ("wait" = Option<u32>, Query, description = "seconds to wait for a change, at most 30")),
    responses((status = 200, body = MemberView), (status = 404)))]
async fn get_member(
    State(state): State<AppState>,
    auth: AuthUser,
    TextPath(identifier): TextPath,
    QueryParams(q): QueryParams<WaitQuery>,
) -> ApiResult<axum::response::Response> {
    let wait = match q.wait.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        None => 0,
        Some(w) => match w.parse::<u64>() {
            Ok(n) if n <= 30 => n,
            _ => {
                return Err(ApiError::field("wait", "Ensure this value is an integer between 0 and 30."));
            }
        },
    };
    let cache_key = format!("{}/{identifier}", auth.user.id);
    let store = &state.services.store;
    let heard = store.changes.is_live(&store.db);
    if wait == 0
        && heard
        && let Some((_, body)) = state.member_reads.get(&cache_key)
    {
        return Ok(json_bytes(body));
    }
    let mut events = state.member_events.subscribe();
    let read_start = state.member_reads.read_start();
    let mut member = state.services.banking.member(auth.user.id, &identifier).await?;
    if wait > 0 {
        let seen = (member.status.clone(), member.gave_up);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            // Woken by a change in any process (PostgreSQL, while listening to the others);
            // else re-check the database every half second for changes made elsewhere.
            let heard = store.db.backend() == Backend::Postgres && store.changes.is_live(&store.db);
            let tick =
                if heard { deadline } else { deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)) };
            tokio::select! {
                event = events.recv() => {
                    if matches!(&event, Ok(id) if *id != member.id && *id != super::ANY_MEMBER) {
                        continue;
                    }
                }
                _ = tokio::time::sleep_until(tick) => {}
            }
            let now_status = state.services.banking.member_status(member.id).await?;
            if now_status.as_ref() != Some(&seen) || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        member = state.services.banking.member(auth.user.id, &identifier).await?;
    }
    let member_id = member.id;
    let body =
        bytes::Bytes::from(serde_json::to_vec(&member_view(&state, member).await?).map_err(anyhow::Error::from)?);
    if heard {
        state.member_reads.put_read_since(read_start, &cache_key, (member_id, body.clone()));
    }
    Ok(json_bytes(body))
}

fn json_bytes(body: bytes::Bytes) -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(delete, path = "/v1/members/{identifier}", tag = "banking", security(("token" = [])),
    params(("identifier" = String, Path)), responses((status = 204), (status = 404), (status = 503)))]
async fn delete_member(
    State(state): State<AppState>,
    auth: AuthUser,
    TextPath(identifier): TextPath,
) -> ApiResult<StatusCode> {
    state.services.banking.delete_member(auth.user.id, &identifier).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct AnswerInput {
    /// The challenge's `label` (or give its `guid`).
    label: Option<String>,
    guid: Option<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    value: Field<String>,
}

impl KeyedItem for AnswerInput {
    fn into_parts(self) -> (Option<Keyed>, Field<String>) {
        (self.label.map(Keyed::Name).or(self.guid.map(Keyed::Guid)), self.value)
    }
}

#[derive(Default, Deserialize, ToSchema)]
pub struct ResumeRequest {
    #[schema(value_type = Vec<AnswerInput>, required = true)]
    #[serde(default)]
    challenges: Field<Vec<Value>>,
}

impl RequestBody for ResumeRequest {
    type Parsed = Vec<(Keyed, String)>;
    fn parse(self, c: &mut Check) -> Option<Self::Parsed> {
        c.keyed_values::<AnswerInput>("challenges", self.challenges, ["label", "guid"])
    }
}

/// Answer the bank's challenges; polling starts again.
#[utoipa::path(post, path = "/v1/members/resume/{identifier}", tag = "banking", security(("token" = [])),
    params(("identifier" = String, Path)), request_body = ResumeRequest,
    responses((status = 204), (status = 400, description = "not challenged, unknown or unanswered challenge"), (status = 404)))]
async fn resume_member(
    State(state): State<AppState>,
    auth: AuthUser,
    TextPath(identifier): TextPath,
    Valid(answers): Valid<ResumeRequest>,
) -> ApiResult<StatusCode> {
    state.services.banking.resume_member(auth.user.id, &identifier, answers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refresh a linked bank now: the aggregator aggregates the member again, its status moves as
/// after linking, and its accounts and transactions sync when it completes.
#[utoipa::path(post, path = "/v1/members/{identifier}/refresh", tag = "banking", security(("token" = [])),
    params(("identifier" = String, Path)),
    responses((status = 202, body = MemberView), (status = 400, description = "not linked yet"), (status = 404), (status = 503)))]
async fn refresh_member(
    State(state): State<AppState>,
    auth: AuthUser,
    TextPath(identifier): TextPath,
) -> ApiResult<(StatusCode, axum::Json<MemberView>)> {
    let member = state.services.banking.refresh_member(auth.user.id, &identifier).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(member_view(&state, member).await?)))
}
