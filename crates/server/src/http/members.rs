//! Institutions, their credentials, and members (bank linking with challenges).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use donkies_atrium::AtriumError;
use donkies_atrium::wire::{self, ChallengeAnswer, CredentialValue};
use donkies_domain::present_member;
use donkies_store::institutions::{self, Institution};
use donkies_store::members::{self, Member};
use donkies_store::{StoreError, new_id, now};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{AuthUser, Body, Fields};
use super::page::Page;
use crate::banking::LinkError;
use crate::crypto::new_token;

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
}

pub const DATETIME: &str = "%Y-%m-%dT%H:%M:%S";

pub fn datetime(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(|t| t.format(DATETIME).to_string())
}

impl From<LinkError> for ApiError {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "aggregator unavailable");
                ApiError::Unavailable("The bank aggregator is unavailable. Please try again later.".into())
            }
            LinkError::Refused(AtriumError::NotFound { .. }) => ApiError::NotFound,
            LinkError::Refused(cause) => {
                tracing::warn!(error = %cause, "aggregator refused the request");
                ApiError::non_field(format!("The bank refused the request: {}", refusal_message(&cause)))
            }
            LinkError::Store(e) => e.into(),
            LinkError::Other(e) => ApiError::Internal(e),
        }
    }
}

fn refusal_message(err: &AtriumError) -> String {
    match err {
        AtriumError::Conflict { message } | AtriumError::Other { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// An institution.
#[derive(Serialize, ToSchema)]
pub struct InstitutionView {
    id: String,
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
    Query(q): Query<SearchQuery>,
    page: Page,
) -> ApiResult<axum::response::Response> {
    let list = institutions::list(&state.db, q.search.as_deref(), 10_000).await?;
    Ok(page.respond(list.into_iter().map(InstitutionView::from).collect()))
}

/// One institution.
#[utoipa::path(get, path = "/v1/institutions/{id}", tag = "banking", security(("token" = [])),
    params(("id" = String, Path)), responses((status = 200, body = InstitutionView), (status = 404)))]
async fn get_institution(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InstitutionView>> {
    let inst = institutions::get(&state.db, &id).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(inst.into()))
}

#[derive(Deserialize)]
struct SuggestQuery {
    value: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestion {
    id: String,
    value: String,
}

/// Up to 10 institutions whose name contains `value`.
#[utoipa::path(get, path = "/v1/institutions_suggest", tag = "banking", security(("token" = [])),
    params(("value" = Option<String>, Query)), responses((status = 200, body = [Suggestion])))]
async fn suggest_institutions(
    State(state): State<AppState>,
    _auth: AuthUser,
    Query(q): Query<SuggestQuery>,
) -> ApiResult<axum::Json<Vec<Suggestion>>> {
    let Some(value) = q.value.filter(|v| !v.trim().is_empty()) else {
        return Ok(axum::Json(Vec::new()));
    };
    let list = institutions::list(&state.db, Some(value.trim()), 10).await?;
    Ok(axum::Json(list.into_iter().map(|i| Suggestion { id: i.id, value: i.name }).collect()))
}

/// A credential an institution asks for.
#[derive(Serialize, ToSchema)]
pub struct CredentialView {
    guid: String,
    institution: String,
    field_name: String,
    label: String,
    #[serde(rename = "type")]
    kind: String,
    display_order: i64,
}

async fn credentials_view(
    state: &AppState,
    inst: Option<Institution>,
    live: bool,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = inst.ok_or(ApiError::NotFound)?;
    let creds = if live {
        state.banking.refresh_credentials(&inst.code).await?
    } else {
        let stored = institutions::credentials(&state.db, &inst.id).await?;
        if stored.is_empty() { state.banking.refresh_credentials(&inst.code).await? } else { stored }
    };
    Ok(axum::Json(
        creds
            .into_iter()
            .map(|c| CredentialView {
                guid: c.guid,
                institution: inst.id.clone(),
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
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = institutions::get_by_code(&state.db, &code).await?;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by code, from the stored catalog.
#[utoipa::path(get, path = "/v1/credentials/code/{code}", tag = "banking", security(("token" = [])),
    params(("code" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404)))]
async fn credentials_by_code_alias(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = institutions::get_by_code(&state.db, &code).await?;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by id, from the stored catalog.
#[utoipa::path(get, path = "/v1/credentials/id/{institution_id}", tag = "banking", security(("token" = [])),
    params(("institution_id" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404)))]
async fn credentials_by_id(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = institutions::get(&state.db, &id).await?;
    credentials_view(&state, inst, false).await
}

/// Credentials of an institution by code, read from the aggregator now.
#[utoipa::path(get, path = "/v1/credentials/live/code/{code}", tag = "banking", security(("token" = [])),
    params(("code" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404), (status = 503)))]
async fn live_credentials_by_code(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = institutions::get_by_code(&state.db, &code).await?;
    credentials_view(&state, inst, true).await
}

/// Credentials of an institution by id, read from the aggregator now.
#[utoipa::path(get, path = "/v1/credentials/live/id/{institution_id}", tag = "banking", security(("token" = [])),
    params(("institution_id" = String, Path)), responses((status = 200, body = [CredentialView]), (status = 404), (status = 503)))]
async fn live_credentials_by_id(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Vec<CredentialView>>> {
    let inst = institutions::get(&state.db, &id).await?;
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
    id: String,
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
    let challenges = if m.status == "CHALLENGED" && !m.gave_up {
        members::challenges(&state.db, &m.id)
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
            .collect()
    } else {
        Vec::new()
    };
    Ok(MemberView {
        institution: m.institution().into(),
        status_info: StatusInfo {
            name: presentation.name,
            message: presentation.message,
            is_completed: presentation.is_completed,
            status: m.status.clone(),
        },
        member_status: presentation.member_status,
        aggregated_at: datetime(m.aggregated_at),
        successfully_aggregated_at: datetime(m.successfully_aggregated_at),
        id: m.id,
        identifier: m.identifier,
        name: m.name,
        status: m.status,
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
) -> ApiResult<axum::response::Response> {
    let mut out = Vec::new();
    for m in members::list_for_user(&state.db, &auth.user.id).await? {
        out.push(member_view(&state, m).await?);
    }
    Ok(page.respond(out))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct CredentialInput {
    field_name: Option<String>,
    guid: Option<String>,
    value: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct CreateMemberRequest {
    institution_code: String,
    /// `{"field_name", "value"}` or `{"guid", "value"}` for every credential the institution asks for.
    credentials: Vec<CredentialInput>,
}

/// Pairs of (field name or guid, value) from a list of objects under `field`.
fn keyed_values(
    f: &mut Fields,
    body: &serde_json::Map<String, Value>,
    field: &str,
    keys: [&str; 3],
) -> Option<Vec<(String, String)>> {
    let list = match body.get(field) {
        None | Some(Value::Null) => {
            f.error(field, "This field is required.");
            return None;
        }
        Some(Value::Array(list)) => list.clone(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            // Form posts carry the list as JSON text.
            Ok(Value::Array(list)) => list,
            _ => {
                f.error(field, "Expected a list of items.");
                return None;
            }
        },
        Some(_) => {
            f.error(field, "Expected a list of items.");
            return None;
        }
    };
    let mut out = Vec::new();
    for item in &list {
        let Some(obj) = item.as_object() else {
            f.error(field, "Each item must be an object.");
            return None;
        };
        let key = keys[..2].iter().find_map(|k| obj.get(*k).and_then(Value::as_str).map(|v| format!("{k}:{v}")));
        let value = obj.get(keys[2]).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        match (key, value) {
            (Some(key), Some(value)) => out.push((key, value)),
            _ => {
                f.error(field, format!("Each item needs \"{}\" or \"{}\", and \"{}\".", keys[0], keys[1], keys[2]));
                return None;
            }
        }
    }
    Some(out)
}

/// Link a bank: the member is created at the aggregator before the answer; polling follows.
#[utoipa::path(post, path = "/v1/members", tag = "banking", security(("token" = [])), request_body = CreateMemberRequest,
    responses((status = 201, body = MemberView), (status = 400, description = "unknown institution or credential fields"),
        (status = 503, description = "the aggregator is unreachable")))]
async fn create_member(
    State(state): State<AppState>,
    auth: AuthUser,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<MemberView>)> {
    let raw = body.0.clone();
    let mut f = Fields::new(body);
    let code = f.required_str("institution_code");
    let given = keyed_values(&mut f, &raw, "credentials", ["field_name", "guid", "value"]);
    f.finish()?;
    let (Some(code), Some(given)) = (code, given) else {
        return Err(ApiError::non_field("Invalid data."));
    };
    let inst = institutions::get_by_code(&state.db, code.trim())
        .await?
        .ok_or_else(|| ApiError::field("institution_code", "Institution not found."))?;
    let mut expected = institutions::credentials(&state.db, &inst.id).await?;
    if expected.is_empty() {
        expected = state.banking.refresh_credentials(&inst.code).await?;
    }
    let mut values: HashMap<String, String> = HashMap::new();
    let mut errors = Vec::new();
    for (key, value) in given {
        let found = expected.iter().find(|c| match key.split_once(':') {
            Some(("field_name", name)) => c.field_name.eq_ignore_ascii_case(name),
            Some(("guid", guid)) => c.guid == guid,
            _ => false,
        });
        match found {
            Some(c) => {
                values.insert(c.guid.clone(), value);
            }
            None => errors.push(format!("Unknown credential: {}.", key.split_once(':').map_or("", |(_, k)| k))),
        }
    }
    for c in &expected {
        if values.get(&c.guid).is_none_or(|v| v.is_empty()) {
            errors.push(format!("Missing credential: {}.", c.field_name));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields([("credentials".to_owned(), errors)].into()));
    }
    let credentials: Vec<CredentialValue> =
        values.into_iter().map(|(guid, value)| CredentialValue::new(guid, value)).collect();
    let user_guid = state.banking.ensure_aggregator_user(&auth.user.id).await?;

    if let Some(existing) = members::find_for_institution(&state.db, &auth.user.id, &inst.id).await? {
        let member_guid = existing.guid.clone().unwrap_or_default();
        let updated = state
            .banking
            .aggregator
            .update_member(&user_guid, &member_guid, &wire::MemberUpdate::credentials(credentials))
            .await
            .map_err(LinkError::from)?;
        let mut tx = state.db.begin().await?;
        state.banking.restart_polling(&mut tx, &existing.id, updated.status.as_str()).await?;
        tx.commit().await?;
        state.wake_worker.notify_one();
        state.banking.notify(&existing.id);
        let member = members::get(&state.db, &existing.id).await?.ok_or(ApiError::NotFound)?;
        return Ok((StatusCode::CREATED, axum::Json(member_view(&state, member).await?)));
    }

    let identifier = new_token();
    let request = wire::NewMember {
        institution_code: inst.code.clone(),
        credentials,
        identifier: Some(identifier.clone()),
        metadata: None,
    };
    let created = state.banking.aggregator.create_member(&user_guid, &request).await.map_err(LinkError::from)?;
    let id = new_id();
    let mut tx = state.db.begin().await?;
    let inserted = members::insert(
        &mut tx,
        &members::NewMember {
            id: &id,
            user_id: &auth.user.id,
            institution_id: &inst.id,
            identifier: &identifier,
            guid: &created.guid,
            name: created.name.as_deref().unwrap_or(&inst.name),
            status: created.status.as_str(),
            now: now(),
        },
    )
    .await;
    if let Err(err) = inserted {
        drop(tx);
        // Nothing half-created: take the aggregator's member back.
        let _ = state.banking.aggregator.delete_member(&user_guid, &created.guid).await;
        return Err(match err {
            StoreError::Conflict(_) => ApiError::non_field("This institution is already being linked; try again."),
            other => other.into(),
        });
    }
    state.banking.restart_polling(&mut tx, &id, created.status.as_str()).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    tracing::info!(member = %id, institution = %inst.code, "member created");
    let member = members::get(&state.db, &id).await?.ok_or(ApiError::NotFound)?;
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
    Path(identifier): Path<String>,
    Query(q): Query<WaitQuery>,
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
    if wait == 0
        && let Some((_, body)) = state.banking.member_reads.get(&cache_key)
    {
        return Ok(json_bytes(body));
    }
    let mut events = state.banking.member_events.subscribe();
    let mut member =
        members::find_by_identifier(&state.db, &auth.user.id, &identifier).await?.ok_or(ApiError::NotFound)?;
    if wait > 0 {
        let seen = (member.status.clone(), member.gave_up);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            // Woken by this process's worker, or re-check the database every half second for
            // workers in other processes.
            let tick = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)));
            tokio::select! {
                event = events.recv() => {
                    if matches!(&event, Ok(id) if *id != member.id) {
                        continue;
                    }
                }
                _ = tick => {}
            }
            let now_status = members::status_of(&state.db, &member.id).await?;
            if now_status.as_ref() != Some(&seen) || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        member = members::find_by_identifier(&state.db, &auth.user.id, &identifier).await?.ok_or(ApiError::NotFound)?;
    }
    let member_id = member.id.clone();
    let body =
        bytes::Bytes::from(serde_json::to_vec(&member_view(&state, member).await?).map_err(anyhow::Error::from)?);
    state.banking.member_reads.put(&cache_key, (member_id, body.clone()));
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
    Path(identifier): Path<String>,
) -> ApiResult<StatusCode> {
    let member = members::find_by_identifier(&state.db, &auth.user.id, &identifier).await?.ok_or(ApiError::NotFound)?;
    if let Some(guid) = &member.guid {
        let user_guid = state.banking.ensure_aggregator_user(&auth.user.id).await?;
        match state.banking.aggregator.delete_member(&user_guid, guid).await {
            Ok(()) | Err(AtriumError::NotFound { .. }) => {}
            Err(err) => return Err(LinkError::from(err).into()),
        }
    }
    members::mark_deleted(&state.db, &member.id, now()).await?;
    state.banking.notify(&member.id);
    state.banking.rebalance_debt_shares(&auth.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct AnswerInput {
    label: Option<String>,
    guid: Option<String>,
    value: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ResumeRequest {
    challenges: Vec<AnswerInput>,
}

/// Answer the bank's challenges; polling starts again.
#[utoipa::path(post, path = "/v1/members/resume/{identifier}", tag = "banking", security(("token" = [])),
    params(("identifier" = String, Path)), request_body = ResumeRequest,
    responses((status = 204), (status = 400, description = "not challenged, unknown or unanswered challenge"), (status = 404)))]
async fn resume_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(identifier): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let member = members::find_by_identifier(&state.db, &auth.user.id, &identifier).await?.ok_or(ApiError::NotFound)?;
    let raw = body.0.clone();
    let mut f = Fields::new(body);
    let answers = keyed_values(&mut f, &raw, "challenges", ["label", "guid", "value"]);
    f.finish()?;
    let answers = answers.unwrap_or_default();
    if member.status != "CHALLENGED" || member.gave_up {
        return Err(ApiError::non_field("The member is not waiting for answers to challenges."));
    }
    let challenges = members::challenges(&state.db, &member.id).await?;
    let mut by_guid: HashMap<String, String> = HashMap::new();
    let mut errors = Vec::new();
    for (key, value) in answers {
        let found = challenges.iter().find(|c| match key.split_once(':') {
            Some(("label", label)) => c.label == label || c.label.trim().eq_ignore_ascii_case(label.trim()),
            Some(("guid", guid)) => c.guid == guid,
            _ => false,
        });
        match found {
            Some(c) => {
                by_guid.insert(c.guid.clone(), value);
            }
            None => errors.push(format!("Unknown challenge: {}.", key.split_once(':').map_or("", |(_, k)| k))),
        }
    }
    for c in &challenges {
        if by_guid.get(&c.guid).is_none_or(|v| v.is_empty()) {
            errors.push(format!("Challenge \"{}\" is not answered.", c.label));
        }
    }
    if challenges.is_empty() {
        errors.push("The member has no challenges to answer.".into());
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields([("challenges".to_owned(), errors)].into()));
    }
    let user_guid = state.banking.ensure_aggregator_user(&auth.user.id).await?;
    let answers: Vec<ChallengeAnswer> = challenges
        .iter()
        .filter_map(|c| Some(ChallengeAnswer::new(c.guid.clone(), by_guid.get(&c.guid)?.clone())))
        .collect();
    let member_guid = member.guid.clone().unwrap_or_default();
    let resumed = match state.banking.aggregator.resume_member(&user_guid, &member_guid, &answers).await {
        Ok(m) => m,
        Err(AtriumError::Conflict { .. }) => {
            return Err(ApiError::non_field("The member is not waiting for answers to challenges."));
        }
        Err(err) => return Err(LinkError::from(err).into()),
    };
    let mut tx = state.db.begin().await?;
    state.banking.restart_polling(&mut tx, &member.id, resumed.status.as_str()).await?;
    tx.commit().await?;
    state.wake_worker.notify_one();
    state.banking.notify(&member.id);
    Ok(StatusCode::NO_CONTENT)
}
