//! The document's parts no single handler states, and the docs page over it: the responses the
//! shared edge gives every operation (401 without a valid token, 400 for a bad body or query,
//! 404 for an unknown id, 429 when a budget is spent), the operations outside the API routers
//! (`/metrics`, `/v1/openapi.json`, `/docs`), and Swagger UI at `/docs`, its files compiled into
//! the binary.

use axum::Router;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa_swagger_ui::{Config, SwaggerUi};

pub const DOCS_PATH: &str = "/docs";
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// Swagger UI at `/docs` (a redirect to `/docs/`, the page, and its assets under it).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(DOCS_PATH).config(Config::new([OPENAPI_PATH]).persist_authorization(true)).into()
}

/// Paths whose requests spend a rate-limit budget (429 with `Retry-After`).
const RATE_LIMITED: &[&str] = &["/v1/auth/login", "/v1/password/reset/request"];

fn json(description: &str, schema: impl Into<RefOr<Schema>>) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .build()
        .into()
}

fn detail_schema() -> Schema {
    ObjectBuilder::new()
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .required("detail")
        .property("error_code", ObjectBuilder::new().schema_type(Type::String))
        .description(Some("`{\"detail\": \"message\"}`"))
        .into()
}

/// `{"field": ["message", …], …}`: a list of messages per field, `non_field_errors` for the
/// request as a whole.
pub fn field_errors_schema() -> Schema {
    ObjectBuilder::new()
        .additional_properties(Some(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String))))
        .description(Some("`{\"field\": [\"message\"]}` or `{\"non_field_errors\": [\"message\"]}`"))
        .into()
}

fn response_ref(name: &str) -> RefOr<Response> {
    RefOr::Ref(Ref::from_response_name(name))
}

/// Add what the shared edge answers to every operation that has it, as shared responses.
pub fn document(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .responses
        .insert("Unauthorized".into(), json("no valid token (`Authorization: Token <key>`)", detail_schema()));
    components.responses.insert("BadRequest".into(), json("a field or the request is wrong", field_errors_schema()));
    components.responses.insert("NotFound".into(), json("no such object of this user's", detail_schema()));
    components.responses.insert(
        "TooManyRequests".into(),
        json("too many attempts; `Retry-After` says when to try again", detail_schema()),
    );

    for (path, item) in doc.paths.paths.iter_mut() {
        let operations =
            [item.get.as_mut(), item.put.as_mut(), item.post.as_mut(), item.delete.as_mut(), item.patch.as_mut()];
        for operation in operations.into_iter().flatten() {
            add_shared_responses(path, operation);
        }
    }

    let text = |description: &str, media: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(media, ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build())
            .build()
    };
    let operation = |summary: &str, responses: Vec<(&str, Response)>| {
        let mut builder = OperationBuilder::new().tag("operations").summary(Some(summary));
        for (status, response) in responses {
            builder = builder.response(status, response);
        }
        builder.build()
    };
    doc.paths.add_path_operation(
        "/metrics",
        vec![HttpMethod::Get],
        operation(
            "Prometheus text: requests, jobs, outside calls, sign-in failures, the database pool",
            vec![
                ("200", text("the scrape", "text/plain")),
                ("404", ResponseBuilder::new().description("served elsewhere or off (DONKIES_METRICS_LISTEN)").build()),
            ],
        ),
    );
    doc.paths.add_path_operation(
        OPENAPI_PATH,
        vec![HttpMethod::Get],
        operation(
            "This document",
            vec![(
                "200",
                ResponseBuilder::new()
                    .description("OpenAPI 3.1")
                    .content("application/json", ContentBuilder::new().schema(Some(ObjectBuilder::new())).build())
                    .build(),
            )],
        ),
    );
    doc.paths.add_path_operation(
        DOCS_PATH,
        vec![HttpMethod::Get],
        operation(
            "Swagger UI over this document",
            vec![("303", ResponseBuilder::new().description("to `/docs/`, the page").build())],
        ),
    );
    doc.paths.add_path_operation(
        format!("{DOCS_PATH}/"),
        vec![HttpMethod::Get],
        operation("Swagger UI over this document", vec![("200", text("the page", "text/html"))]),
    );
}

fn add_shared_responses(path: &str, operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| response_ref(name));
    };
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let in_query = parameters.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let in_path = parameters.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path));
    if secured {
        add("401", "Unauthorized");
    }
    if operation.request_body.is_some() || in_query {
        add("400", "BadRequest");
    }
    if in_path {
        add("404", "NotFound");
    }
    if RATE_LIMITED.contains(&path) {
        add("429", "TooManyRequests");
    }
}
