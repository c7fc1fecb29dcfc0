//! The OpenAPI 3.1 document, generated from the route table
//! ([`super::routes`]) with utoipa's model: each operation's parameters,
//! body and answers, its scope as the security requirement
//! `bearer: [scope]` and as `x-roster-scope`, and the problem details every
//! error answers with.

use axum::http::StatusCode;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr,
    Required, ResponseBuilder, ResponsesBuilder, Type,
};

use super::problem::PROBLEM_JSON;
use super::{In, Kind, Route, schema};

fn method_of(route: &Route) -> HttpMethod {
    match route.method.as_str() {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn param_schema(kind: Kind) -> RefOr<Schema> {
    match kind {
        Kind::Text => ObjectBuilder::new().schema_type(Type::String).into(),
        Kind::Bool => ObjectBuilder::new().schema_type(Type::Boolean).into(),
        Kind::Int(min, max) => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min as f64))
            .maximum(Some(max as f64))
            .into(),
    }
}

/// The document for `routes`.
pub fn document(routes: &[Route]) -> OpenApi {
    let mut components: Vec<(String, RefOr<Schema>)> = Vec::new();
    let problem = schema::problem(&mut components);
    let mut paths = Paths::new();
    for route in routes {
        let scope = route.scope.as_str();
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.operation_id))
            .summary(Some(route.summary))
            .description(Some(format!(
                "{}{}Scope: `{scope}`.",
                route.description,
                if route.description.is_empty() {
                    ""
                } else {
                    "\n\n"
                }
            )))
            .tag(route.tag)
            .security(SecurityRequirement::new("bearer", [scope]))
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add("x-roster-scope", scope)
                    .build(),
            ));
        for p in &route.params {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(p.name)
                    .parameter_in(match p.location {
                        In::Path => ParameterIn::Path,
                        In::Query => ParameterIn::Query,
                        In::Header => ParameterIn::Header,
                    })
                    .required(if p.required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description((!p.description.is_empty()).then_some(p.description))
                    .schema(Some(param_schema(p.kind))),
            );
        }
        if let Some(body) = &route.body {
            let mut rb = RequestBodyBuilder::new()
                .required(Some(if body.required {
                    Required::True
                } else {
                    Required::False
                }))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some((body.schema)(&mut components)))
                        .build(),
                );
            if let Some(multipart) = body.multipart {
                rb = rb.content(
                    "multipart/form-data",
                    ContentBuilder::new()
                        .schema(Some(multipart(&mut components)))
                        .build(),
                );
            }
            op = op.request_body(Some(rb.build()));
        }
        let mut responses = ResponsesBuilder::new();
        let mut successes = vec![route.ok];
        successes.extend(route.also.iter().copied());
        for (status, schema_fn) in successes {
            let mut resp = ResponseBuilder::new()
                .description(status.canonical_reason().unwrap_or("OK"))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema_fn(&mut components)))
                        .build(),
                );
            if route.etag && status.is_success() {
                resp = resp.header(
                    "ETag",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .description(Some("The plan's version, for If-Match."))
                        .build(),
                );
            }
            if route.paged {
                resp = resp.header(
                    "Link",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .description(Some("`<…>; rel=\"next\"` when there is a next page."))
                        .build(),
                );
            }
            if status == StatusCode::ACCEPTED || status == StatusCode::CREATED {
                resp = resp.header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                );
            }
            responses = responses.response(status.as_str(), resp.build());
        }
        let mut errors = vec![
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::REQUEST_TIMEOUT,
        ];
        if route.body.is_some() {
            errors.extend([
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                StatusCode::UNPROCESSABLE_ENTITY,
            ]);
        }
        errors.extend(route.errors.iter().copied());
        errors.sort();
        errors.dedup();
        for status in errors {
            responses = responses.response(
                status.as_str(),
                ResponseBuilder::new()
                    .description(status.canonical_reason().unwrap_or("Error"))
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new().schema(Some(problem.clone())).build(),
                    )
                    .build(),
            );
        }
        op = op.responses(responses.build());
        paths.add_path_operation(route.path, vec![method_of(route)], op.build());
    }
    let mut seen = std::collections::BTreeSet::new();
    components.retain(|(name, _)| seen.insert(name.clone()));
    let components = ComponentsBuilder::new()
        .schemas_from_iter(components)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rat_…")
                    .description(Some(
                        "An API token (`roster token create --scope … --for PRINCIPAL`).",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("roster REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Every operation acts through roster's application layer as the token's principal: guards, approvals and separation of duties hold as for the CLI. Errors are RFC 9457 problem details with roster's stable `code`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}
